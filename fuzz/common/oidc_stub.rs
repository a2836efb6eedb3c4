//! A stand-in identity provider for the token targets: a plain HTTP server on 127.0.0.1
//! serving the discovery document and a JWKS the harness sets, so `TokenVerifier` runs
//! unchanged and never reaches past this machine.

#![allow(dead_code)] // each target uses part of it

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use flash_sale::adapters::oidc::TokenVerifier;
use flash_sale::config::IdentitySettings;

pub const AUDIENCE: &str = "flash-sale";
pub const LEEWAY_SECS: u64 = 30;

pub struct Stub {
    pub issuer: String,
    jwks: Arc<Mutex<Vec<u8>>>,
    requests: Arc<AtomicUsize>,
}

impl Stub {
    pub fn start(jwks: Vec<u8>) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1");
        let issuer = format!("http://{}", listener.local_addr().expect("local address"));
        let stub = Self {
            issuer: issuer.clone(),
            jwks: Arc::new(Mutex::new(jwks)),
            requests: Arc::new(AtomicUsize::new(0)),
        };
        let (jwks, requests) = (stub.jwks.clone(), stub.requests.clone());
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                requests.fetch_add(1, Ordering::Relaxed);
                let _ = answer(stream, &issuer, &jwks);
            }
        });
        stub
    }

    pub fn set_jwks(&self, body: Vec<u8>) {
        *self.jwks.lock().expect("jwks lock") = body;
    }

    pub fn requests(&self) -> usize {
        self.requests.load(Ordering::Relaxed)
    }

    /// A verifier of this issuer's tokens, configured as in `config/default.toml`.
    pub fn verifier(&self, roles_claim: &str, jwks_min_refresh_secs: u64) -> TokenVerifier {
        let settings: IdentitySettings = serde_json::from_value(serde_json::json!({
            "provider": "keycloak",
            "issuer": self.issuer,
            "audience": AUDIENCE,
            "leeway_secs": LEEWAY_SECS,
            "roles_claim": roles_claim,
            "jwks_min_refresh_secs": jwks_min_refresh_secs,
            "http_timeout_ms": 2000,
            "login_attempts_per_email": 10,
            "login_attempts_per_ip": 100,
            "registrations_per_ip": 20,
            "registrations_total": 1200,
            "trust_proxy_headers": false,
            "embedded": {
                "token_ttl_secs": 900,
                "signing_key": "unused.pem",
                "previous_signing_keys": [],
                "generate_key_if_missing": false,
            },
            "keycloak": {
                "base_url": "http://127.0.0.1:1",
                "realm": "unused",
                "client_id": "unused",
                "client_secret": "",
            },
        }))
        .expect("identity settings");
        TokenVerifier::new(&settings, self.issuer.clone()).expect("token verifier")
    }
}

fn answer(mut stream: TcpStream, issuer: &str, jwks: &Mutex<Vec<u8>>) -> std::io::Result<()> {
    let mut head = Vec::new();
    let mut buf = [0u8; 1024];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") && head.len() < 64 * 1024 {
        let n = stream.read(&mut buf)?;
        if n == 0 {
            break;
        }
        head.extend_from_slice(&buf[..n]);
    }
    let head = String::from_utf8_lossy(&head);
    let path = head.split_whitespace().nth(1).unwrap_or_default();
    let (status, body) = match path {
        "/.well-known/openid-configuration" => (
            "200 OK",
            serde_json::json!({
                "issuer": issuer,
                "jwks_uri": format!("{issuer}/jwks.json"),
            })
            .to_string()
            .into_bytes(),
        ),
        "/jwks.json" => ("200 OK", jwks.lock().expect("jwks lock").clone()),
        _ => ("404 Not Found", Vec::new()),
    };
    // One write: small writes would wait on Nagle's algorithm and delayed ACKs.
    let mut response = format!(
        "HTTP/1.1 {status}\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
        body.len()
    )
    .into_bytes();
    response.extend_from_slice(&body);
    stream.set_nodelay(true)?;
    stream.write_all(&response)?;
    stream.flush()
}

pub fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("tokio runtime")
}

pub fn now_secs() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}
