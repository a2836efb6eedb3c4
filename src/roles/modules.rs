//! The HTTP modules a role mounts, with their state built once, and the token issuer
//! they trust.

use std::net::SocketAddr;

use actix_web::web;

#[cfg(feature = "api")]
use super::api;
#[cfg(feature = "ws")]
use super::ws;
use super::{Role, StartupError};
use crate::adapters::Adapters;
use crate::adapters::oidc::TokenVerifier;
use crate::app::access::Authenticator;
use crate::config::{IdentityProviderKind, Settings};
use crate::metrics::Metrics;
use crate::shutdown::Shutdown;

/// The HTTP modules a role mounts, with their state built once.
#[derive(Clone)]
pub(super) struct Modules {
    /// Verifies bearer tokens (api and ws).
    verifier: Option<web::Data<Authenticator>>,
    #[cfg(feature = "api")]
    api: Option<api::ApiModules>,
    #[cfg(feature = "ws")]
    ws: Option<ws::WsModules>,
}

impl Modules {
    #[cfg_attr(not(all(feature = "api", feature = "ws")), allow(unused_variables))]
    pub(super) async fn build(
        settings: &Settings,
        role: Role,
        adapters: &Adapters,
        addr: SocketAddr,
        metrics: &Metrics,
        shutdown: &Shutdown,
        server_id: &str,
    ) -> Result<Self, StartupError> {
        let serves_api = role.parts().contains(&Role::Api);
        let needs_tokens = role
            .parts()
            .iter()
            .any(|r| matches!(r, Role::Api | Role::Ws));
        if !needs_tokens {
            return Ok(Self {
                verifier: None,
                #[cfg(feature = "api")]
                api: None,
                #[cfg(feature = "ws")]
                ws: None,
            });
        }
        let issuer = resolve_issuer(settings, serves_api, addr)?;
        let verifier = TokenVerifier::new(&settings.identity, issuer.clone())
            .map_err(|e| StartupError::Configuration(e.to_string()))?;
        metrics
            .register(verifier.collector())
            .map_err(StartupError::runtime)?;
        Ok(Self {
            verifier: Some(web::Data::new(Authenticator::new(verifier))),
            #[cfg(feature = "api")]
            api: if serves_api {
                Some(api::ApiModules::build(settings, adapters, issuer, metrics, shutdown).await?)
            } else {
                None
            },
            #[cfg(feature = "ws")]
            ws: if role.parts().contains(&Role::Ws) {
                Some(ws::WsModules::build(
                    settings,
                    adapters,
                    server_id.to_owned(),
                    metrics,
                    shutdown,
                )?)
            } else {
                None
            },
        })
    }

    pub(super) fn configure(&self, cfg: &mut web::ServiceConfig) {
        if let Some(verifier) = &self.verifier {
            cfg.app_data(verifier.clone());
        }
        #[cfg(feature = "api")]
        if let Some(api) = &self.api {
            api.configure(cfg);
        }
        #[cfg(feature = "ws")]
        if let Some(ws) = &self.ws {
            ws.configure(cfg);
        }
        #[cfg(feature = "api")]
        if let Some(api) = &self.api {
            api.configure_pages(cfg);
        }
    }
}

/// The issuer URL tokens must carry: the configured one, or (embedded issuer in this
/// very process) this server's own address.
fn resolve_issuer(
    settings: &Settings,
    serves_api: bool,
    addr: SocketAddr,
) -> Result<String, StartupError> {
    let configured = settings.identity.issuer.trim_end_matches('/');
    if !configured.is_empty() {
        return Ok(configured.to_owned());
    }
    if !serves_api || settings.identity.provider != IdentityProviderKind::Embedded {
        return Err(StartupError::Configuration(
            "configuration error: identity.issuer: must be set when this process does not \
             serve the built-in issuer (e.g. the URL of the api role)"
                .to_owned(),
        ));
    }
    let host = if addr.ip().is_unspecified() {
        std::net::IpAddr::from([127, 0, 0, 1])
    } else {
        addr.ip()
    };
    Ok(format!("http://{}", SocketAddr::new(host, addr.port())))
}
