//! A dependency's failure as the use cases see it: gone for now (the caller may retry)
//! or holding data that breaks an invariant (a bug or tampering: retrying will not
//! help). The adapter's own error stays attached as the source, so the log line of the
//! failure carries the whole chain.

pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

#[derive(Debug, thiserror::Error)]
pub enum Failure {
    #[error("a dependency is unavailable")]
    Unavailable(#[source] BoxError),
    #[error("stored data violates an invariant")]
    Corrupt(#[source] BoxError),
}

impl Failure {
    pub fn unavailable(cause: impl Into<BoxError>) -> Self {
        Self::Unavailable(cause.into())
    }

    pub fn corrupt(cause: impl Into<BoxError>) -> Self {
        Self::Corrupt(cause.into())
    }

    pub fn is_corrupt(&self) -> bool {
        matches!(self, Self::Corrupt(_))
    }
}

/// An error and its sources, outermost first, for one log line.
pub fn chain(error: &(dyn std::error::Error + 'static)) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_chain_keeps_every_cause() {
        let failure = Failure::corrupt("row 7 has a negative stock");
        assert!(failure.is_corrupt());
        assert_eq!(
            chain(&failure),
            "stored data violates an invariant: row 7 has a negative stock"
        );
    }
}
