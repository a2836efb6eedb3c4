//! Who is calling: users, their credentials as typed values, and the principal a
//! verified token yields.

use super::failure::Failure;
use std::fmt;

/// The identity provider's subject (`sub`): a decimal id for the built-in issuer, a
/// UUID for Keycloak. Stored as text so switching providers needs no migration.
#[derive(
    Debug,
    Clone,
    PartialEq,
    Eq,
    Hash,
    PartialOrd,
    Ord,
    serde::Serialize,
    serde::Deserialize,
    utoipa::ToSchema,
)]
#[serde(transparent)]
pub struct UserId(String);

impl UserId {
    pub const MAX_LEN: usize = 64;

    pub fn parse(raw: &str) -> Result<Self, IdentityError> {
        if raw.is_empty() || raw.len() > Self::MAX_LEN || raw.chars().any(char::is_control) {
            return Err(IdentityError::Unauthorized(
                "token subject is not a valid user id",
            ));
        }
        Ok(Self(raw.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for UserId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// An e-mail address, trimmed and lower-cased: the login. Not verified (per the
/// requirements), only checked for shape.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Email(String);

impl Email {
    pub const MAX_LEN: usize = 254;

    pub fn parse(raw: &str) -> Result<Self, IdentityError> {
        let email = raw.trim().to_lowercase();
        let invalid = |why: &'static str| Err(IdentityError::InvalidEmail(why));
        if email.is_empty() {
            return invalid("e-mail is required");
        }
        if email.len() > Self::MAX_LEN {
            return invalid("e-mail is longer than 254 characters");
        }
        if email.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return invalid("e-mail must not contain spaces");
        }
        let Some((local, domain)) = email.split_once('@') else {
            return invalid("e-mail needs an @");
        };
        if local.is_empty() || local.len() > 64 || domain.contains('@') {
            return invalid("e-mail must look like name@example.com");
        }
        let labels_ok = domain.split('.').count() >= 2
            && domain.split('.').all(|label| {
                !label.is_empty()
                    && !label.starts_with('-')
                    && !label.ends_with('-')
                    && label.chars().all(|c| c.is_alphanumeric() || c == '-')
            });
        if !labels_ok {
            return invalid("e-mail domain must look like example.com");
        }
        Ok(Self(email))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A password that meets the policy. Deliberately not `Debug`/`Display`: it must never
/// reach a log line.
pub struct Password(String);

impl Password {
    pub const MIN_CHARS: usize = 8;
    /// argon2 works on any length; the cap stops hashing from becoming a DoS lever.
    pub const MAX_CHARS: usize = 128;

    pub fn parse(raw: &str) -> Result<Self, IdentityError> {
        let chars = raw.chars().count();
        if chars < Self::MIN_CHARS {
            return Err(IdentityError::WeakPassword(
                "password must have at least 8 characters",
            ));
        }
        if chars > Self::MAX_CHARS {
            return Err(IdentityError::WeakPassword(
                "password must have at most 128 characters",
            ));
        }
        if raw.trim().is_empty() {
            return Err(IdentityError::WeakPassword(
                "password must not be only spaces",
            ));
        }
        Ok(Self(raw.to_owned()))
    }

    /// A candidate password at login: any length up to the cap is checked against the
    /// stored hash (rules may have changed since the user registered).
    pub fn candidate(raw: &str) -> Result<Self, IdentityError> {
        if raw.is_empty() || raw.chars().count() > Self::MAX_CHARS {
            return Err(IdentityError::InvalidCredentials);
        }
        Ok(Self(raw.to_owned()))
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

/// A role a token grants: every user has `user`, administrators also `admin`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    User,
    Admin,
}

impl Role {
    pub fn parse(raw: &str) -> Option<Self> {
        match raw {
            "user" => Some(Self::User),
            "admin" => Some(Self::Admin),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::User => "user",
            Self::Admin => "admin",
        }
    }
}

/// The verified caller of a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    pub user_id: UserId,
    pub email: Option<String>,
    pub roles: Vec<Role>,
    /// Token expiry (seconds since the epoch).
    pub expires_at: u64,
}

impl Principal {
    pub fn is_admin(&self) -> bool {
        self.roles.contains(&Role::Admin)
    }
}

#[derive(Debug, thiserror::Error)]
pub enum IdentityError {
    #[error("{0}")]
    InvalidEmail(&'static str),
    #[error("{0}")]
    WeakPassword(&'static str),
    #[error("an account with this e-mail already exists")]
    EmailTaken,
    /// Same message for an unknown e-mail and a wrong password: no account probing.
    #[error("e-mail or password is wrong")]
    InvalidCredentials,
    /// Expired, revoked (logged out) or never issued: log in again.
    #[error("the refresh token is not valid; log in again")]
    InvalidRefreshToken,
    #[error("too many attempts; try again in {retry_after_secs} s")]
    TooManyAttempts { retry_after_secs: u64 },
    /// The bearer token is missing or not acceptable; the reason is for logs and the
    /// message, never a stack trace.
    #[error("{0}")]
    Unauthorized(&'static str),
    #[error("this needs the admin role")]
    Forbidden,
    #[error("no user with e-mail {0}")]
    UnknownUser(String),
    /// Too many password hashes are running; nothing was decided.
    #[error("the server is busy, try again shortly")]
    Busy,
    /// The identity provider (or its database) did not answer.
    #[error("identity provider failed")]
    Unavailable(#[source] Failure),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn emails_are_normalised() {
        assert_eq!(
            Email::parse("  Ann@Example.COM ").unwrap().as_str(),
            "ann@example.com"
        );
        assert_eq!(
            Email::parse("a.b+tag@sub.example.co").unwrap().as_str(),
            "a.b+tag@sub.example.co"
        );
    }

    #[test]
    fn malformed_emails_are_rejected() {
        for bad in [
            "",
            "   ",
            "plain",
            "@example.com",
            "ann@",
            "ann@example",
            "ann@@example.com",
            "ann@exa mple.com",
            "ann@-example.com",
            "ann@example..com",
            "a@b@example.com",
        ] {
            assert!(Email::parse(bad).is_err(), "{bad:?}");
        }
        let long = format!("{}@example.com", "a".repeat(250));
        assert!(Email::parse(&long).is_err());
    }

    #[test]
    fn password_policy() {
        assert!(Password::parse("short").is_err());
        assert!(Password::parse("        ").is_err());
        assert!(Password::parse(&"x".repeat(129)).is_err());
        assert!(Password::parse("correct horse").is_ok());
        assert!(
            Password::parse("pässwörd").is_ok(),
            "counts characters, not bytes"
        );
        assert!(Password::candidate("").is_err());
        assert!(Password::candidate("short").is_ok());
    }

    #[test]
    fn user_ids_are_bounded() {
        assert!(UserId::parse("42").is_ok());
        assert!(UserId::parse("").is_err());
        assert!(UserId::parse(&"1".repeat(65)).is_err());
        assert!(UserId::parse("a\nb").is_err());
    }
}
