//! The verifier's key fetch: discovery document, then a JWKS body that is the fuzz input,
//! parsed and turned into decoding keys by `TokenVerifier`, then a good token checked
//! against whatever keys came out. Each run starts with no keys (an empty JWKS is fetched
//! first), so a run does not depend on the one before.
//!
//! In the input, `KID`, `$N` and `$E` stand for the provider key's id, modulus and
//! exponent (the key is made anew each process). `FUZZ_VERBOSE=1` prints each outcome.

#![no_main]

#[path = "../common/oidc_stub.rs"]
mod oidc_stub;

use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use flash_sale::adapters::oidc::keys::generate_pem;
use flash_sale::adapters::oidc::{SigningKeys, TokenVerifier};
use flash_sale::domain::identity::IdentityError;
use libfuzzer_sys::fuzz_target;
use oidc_stub::{AUDIENCE, Stub, now_secs, runtime};
use serde_json::json;

struct World {
    rt: tokio::runtime::Runtime,
    stub: Stub,
    verifier: TokenVerifier,
    kid: String,
    n: String,
    e: String,
    keys: SigningKeys,
    issuer: String,
    /// Tokens differ from run to run (`jti`), so none is answered from the verified cache.
    runs: AtomicU64,
    reset_token: String,
    verbose: bool,
}

fn world() -> &'static World {
    static WORLD: OnceLock<World> = OnceLock::new();
    WORLD.get_or_init(|| {
        let pem = generate_pem().expect("an RSA key");
        let keys = SigningKeys::from_pem(&pem).expect("the key loads");
        let jwk = serde_json::to_value(&keys.jwks().keys[0]).expect("jwk");
        let stub = Stub::start(b"{\"keys\":[]}".to_vec());
        // Every unknown key id refetches (no minimum interval).
        let verifier = stub.verifier("roles", 0);
        let header = json!({ "alg": "RS256", "typ": "JWT", "kid": "reset" });
        let reset_token = format!("{}.e30.AA", URL_SAFE_NO_PAD.encode(header.to_string()));
        World {
            rt: runtime(),
            issuer: stub.issuer.clone(),
            stub,
            verifier,
            kid: keys.active_kid().to_owned(),
            n: jwk["n"].as_str().expect("n").to_owned(),
            e: jwk["e"].as_str().expect("e").to_owned(),
            keys,
            runs: AtomicU64::new(0),
            reset_token,
            verbose: std::env::var_os("FUZZ_VERBOSE").is_some_and(|v| v == "1"),
        }
    })
}

fn substitute(data: &[u8], w: &World) -> Vec<u8> {
    let mut out = Vec::with_capacity(data.len() + 512);
    let mut rest = data;
    'outer: while !rest.is_empty() {
        for (from, to) in [
            (&b"KID"[..], &w.kid),
            (&b"$N"[..], &w.n),
            (&b"$E"[..], &w.e),
        ] {
            if let Some(tail) = rest.strip_prefix(from) {
                out.extend_from_slice(to.as_bytes());
                rest = tail;
                continue 'outer;
            }
        }
        out.push(rest[0]);
        rest = &rest[1..];
    }
    out
}

fuzz_target!(|data: &[u8]| {
    let w = world();
    // Forget the keys of the previous run: fetch an empty set.
    w.stub.set_jwks(b"{\"keys\":[]}".to_vec());
    let reset = w.rt.block_on(w.verifier.verify(&w.reset_token));
    assert!(
        matches!(reset, Err(IdentityError::Unauthorized(_))),
        "reset: {reset:?}"
    );

    let body = substitute(data, w);
    w.stub.set_jwks(body.clone());
    let run = w.runs.fetch_add(1, Ordering::Relaxed);
    let token = w
        .keys
        .sign(&json!({
            "iss": w.issuer, "aud": AUDIENCE, "sub": "jwks-user", "jti": run,
            "exp": now_secs() + 3600, "roles": ["user"],
        }))
        .expect("sign");
    let before = w.stub.requests();
    let result = w.rt.block_on(w.verifier.verify(&token));
    if w.verbose {
        eprintln!("JWKS {} -> {result:?}", String::from_utf8_lossy(&body));
    }
    assert_eq!(
        w.stub.requests(),
        before + 2,
        "discovery and JWKS, once each"
    );
    match result {
        Ok(principal) => {
            assert_eq!(principal.user_id.as_str(), "jwks-user");
            let jwks: serde_json::Value =
                serde_json::from_slice(&body).expect("a JWKS that worked is JSON");
            let listed = jwks["keys"]
                .as_array()
                .is_some_and(|keys| keys.iter().any(|k| k["kid"] == w.kid.as_str()));
            assert!(listed, "verified with a key the JWKS does not list");
        }
        // The key is missing or wrong, or the JWKS does not parse.
        Err(IdentityError::Unauthorized(_) | IdentityError::Unavailable(_)) => {}
        Err(e) => panic!("unexpected answer {e:?}"),
    }
});
