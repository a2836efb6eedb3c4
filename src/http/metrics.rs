//! Request counter and latency histogram per route pattern (not per raw path, so ids in
//! URLs do not explode the label set).

use std::time::Instant;

use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::middleware::Next;
use actix_web::web;

use crate::metrics::Metrics;

pub async fn record(
    req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    let started = Instant::now();
    let metrics = req.app_data::<web::Data<Metrics>>().cloned();
    let method = method_label(req.method());
    let response = next.call(req).await?;
    if let Some(metrics) = metrics {
        let route = response
            .request()
            .match_pattern()
            .unwrap_or_else(|| "<unmatched>".to_owned());
        let status = response.status().as_u16().to_string();
        metrics
            .http_requests
            .with_label_values(&[method, route.as_str(), status.as_str()])
            .inc();
        metrics
            .http_duration
            .with_label_values(&[method, route.as_str()])
            .observe(started.elapsed().as_secs_f64());
    }
    Ok(response)
}

/// The method as a label: the standard ones by name, anything else a client invents as
/// OTHER, so the number of series stays bounded.
fn method_label(method: &actix_web::http::Method) -> &'static str {
    use actix_web::http::Method;
    match *method {
        Method::GET => "GET",
        Method::HEAD => "HEAD",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::PATCH => "PATCH",
        Method::DELETE => "DELETE",
        Method::OPTIONS => "OPTIONS",
        _ => "OTHER",
    }
}

#[cfg(test)]
mod tests {
    use actix_web::http::Method;

    use super::method_label;

    #[test]
    fn invented_methods_share_one_label() {
        assert_eq!(method_label(&Method::POST), "POST");
        for invented in ["PURGE", "X-1", "get", "BREW"] {
            let method = Method::from_bytes(invented.as_bytes()).unwrap();
            assert_eq!(method_label(&method), "OTHER", "{invented}");
        }
    }
}
