//! Bearer-token verification as every role does it (`TokenVerifier::verify`): any text as
//! a token; a header naming the provider's key with any payload and signature; and any
//! claims signed by the provider's key, checked for issuer, audience, expiry, subject and
//! roles (both the `roles` and the Keycloak `realm_access.roles` layouts). Each token is
//! verified twice, so the second answer comes from the verified-token cache.

#![no_main]

#[path = "../common/oidc_stub.rs"]
mod oidc_stub;

use std::sync::OnceLock;

use arbitrary::Arbitrary;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use flash_sale::adapters::oidc::keys::generate_pem;
use flash_sale::adapters::oidc::{SigningKeys, TokenVerifier};
use flash_sale::domain::identity::{IdentityError, Principal, Role};
use libfuzzer_sys::fuzz_target;
use oidc_stub::{AUDIENCE, LEEWAY_SECS, Stub, now_secs, runtime};
use serde_json::{Map, Value, json};

struct World {
    rt: tokio::runtime::Runtime,
    stub: Stub,
    keys: SigningKeys,
    /// `roles` (built-in issuer) and `realm_access.roles` (Keycloak).
    verifiers: [TokenVerifier; 2],
}

fn world() -> &'static World {
    static WORLD: OnceLock<World> = OnceLock::new();
    WORLD.get_or_init(|| {
        let pem = generate_pem().expect("an RSA key");
        let keys = SigningKeys::from_pem(&pem).expect("the key loads");
        let stub = Stub::start(serde_json::to_vec(keys.jwks()).expect("jwks"));
        let verifiers = [
            stub.verifier("roles", 3600),
            stub.verifier("realm_access.roles", 3600),
        ];
        let world = World {
            rt: runtime(),
            stub,
            keys,
            verifiers,
        };
        // Fetch the keys once: from here on no token makes the verifier call the stub.
        let claims = json!({
            "iss": world.stub.issuer, "aud": AUDIENCE, "sub": "warm-up",
            "exp": now_secs() + 3600,
        });
        let token = world.keys.sign(&claims).expect("sign");
        for verifier in &world.verifiers {
            world
                .rt
                .block_on(verifier.verify(&token))
                .expect("a good token verifies");
        }
        world
    })
}

#[derive(Arbitrary, Debug)]
enum Text<'a> {
    Expected,
    Missing,
    Other(&'a str),
    Number(i64),
    Null,
    List(Vec<&'a str>, bool),
}

#[derive(Arbitrary, Debug)]
enum Time<'a> {
    Missing,
    FromNow(i32),
    Absolute(u64),
    /// Just below the largest integer a claim can hold (`u64::MAX - n`).
    NearMax(u8),
    Float(f64),
    Text(&'a str),
}

#[derive(Arbitrary, Debug)]
struct Claims<'a> {
    iss: Text<'a>,
    aud: Text<'a>,
    sub: Text<'a>,
    email: Text<'a>,
    exp: Time<'a>,
    nbf: Time<'a>,
    roles: Option<Vec<&'a str>>,
    realm_roles: Option<Vec<&'a str>>,
    /// Any JSON, added as claim `x` when it parses.
    extra: &'a str,
}

#[derive(Arbitrary, Debug)]
enum Alg<'a> {
    Rs256,
    Rs512,
    Ps256,
    Hs256,
    None,
    Other(&'a str),
}

#[derive(Arbitrary, Debug)]
enum Input<'a> {
    Raw {
        keycloak: bool,
        token: &'a str,
    },
    KnownKey {
        keycloak: bool,
        alg: Alg<'a>,
        payload: &'a [u8],
        signature: &'a [u8],
    },
    Signed {
        keycloak: bool,
        claims: Claims<'a>,
    },
}

fn text(t: &Text<'_>, expected: &str) -> Option<Value> {
    match t {
        Text::Expected => Some(json!(expected)),
        Text::Missing => None,
        Text::Other(s) => Some(json!(s)),
        Text::Number(n) => Some(json!(n)),
        Text::Null => Some(Value::Null),
        Text::List(items, with_expected) => {
            let mut list: Vec<Value> = items.iter().map(|s| json!(s)).collect();
            if *with_expected {
                list.push(json!(expected));
            }
            Some(Value::Array(list))
        }
    }
}

fn time(t: &Time<'_>, now: u64) -> Option<Value> {
    match t {
        Time::Missing => None,
        Time::FromNow(delta) => Some(json!(now.saturating_add_signed(i64::from(*delta)))),
        Time::Absolute(at) => Some(json!(at)),
        Time::NearMax(n) => Some(json!(u64::MAX - u64::from(*n))),
        Time::Float(at) => Some(json!(at)),
        Time::Text(s) => Some(json!(s)),
    }
}

fn claims_json(c: &Claims<'_>, issuer: &str, now: u64) -> Value {
    let mut map = Map::new();
    let mut put = |name: &str, value: Option<Value>| {
        if let Some(value) = value {
            map.insert(name.to_owned(), value);
        }
    };
    put("iss", text(&c.iss, issuer));
    put("aud", text(&c.aud, AUDIENCE));
    put("sub", text(&c.sub, "user-1"));
    put("email", text(&c.email, "ann@example.com"));
    put("exp", time(&c.exp, now));
    put("nbf", time(&c.nbf, now));
    put("roles", c.roles.as_ref().map(|r| json!(r)));
    put(
        "realm_access",
        c.realm_roles.as_ref().map(|r| json!({ "roles": r })),
    );
    put("x", serde_json::from_str::<Value>(c.extra).ok());
    Value::Object(map)
}

fn unauthorized(result: &Result<Principal, IdentityError>) {
    match result {
        Err(IdentityError::Unauthorized(_)) => {}
        other => panic!("a token not signed by the provider must be 401, got {other:?}"),
    }
}

/// What a verified principal must say about the claims it came from.
fn check_principal(p: &Principal, claims: &Value, keycloak: bool) {
    // jsonwebtoken also takes an `iss` array that holds the expected issuer.
    let issuer = world().stub.issuer.as_str();
    let iss = &claims["iss"];
    assert!(
        iss.as_str() == Some(issuer)
            || iss
                .as_array()
                .is_some_and(|l| l.iter().any(|i| i == issuer)),
        "accepted issuer {iss}"
    );
    assert_eq!(Some(p.user_id.as_str()), claims["sub"].as_str());
    assert_eq!(p.email.as_deref(), claims["email"].as_str());
    assert!(p.roles.contains(&Role::User), "every caller is a user");
    let listed = if keycloak {
        &claims["realm_access"]["roles"]
    } else {
        &claims["roles"]
    };
    let admin_listed = listed
        .as_array()
        .is_some_and(|roles| roles.iter().any(|r| r == "admin"));
    assert_eq!(p.is_admin(), admin_listed, "admin only when granted");
}

fuzz_target!(|input: Input<'_>| {
    let world = world();
    let verify = |keycloak: bool, token: &str| {
        let verifier = &world.verifiers[usize::from(keycloak)];
        world.rt.block_on(verifier.verify(token))
    };
    match input {
        Input::Raw { keycloak, token } => {
            unauthorized(&verify(keycloak, token));
            unauthorized(&verify(keycloak, token));
        }
        Input::KnownKey {
            keycloak,
            alg,
            payload,
            signature,
        } => {
            let alg = match alg {
                Alg::Rs256 => "RS256",
                Alg::Rs512 => "RS512",
                Alg::Ps256 => "PS256",
                Alg::Hs256 => "HS256",
                Alg::None => "none",
                Alg::Other(other) => other,
            };
            let header = json!({ "alg": alg, "typ": "JWT", "kid": world.keys.active_kid() });
            let token = format!(
                "{}.{}.{}",
                URL_SAFE_NO_PAD.encode(header.to_string()),
                URL_SAFE_NO_PAD.encode(payload),
                URL_SAFE_NO_PAD.encode(signature),
            );
            unauthorized(&verify(keycloak, &token));
            unauthorized(&verify(keycloak, &token));
        }
        Input::Signed { keycloak, claims } => {
            let now = now_secs();
            let claims = claims_json(&claims, &world.stub.issuer, now);
            let token = world.keys.sign(&claims).expect("claims sign");
            let first = verify(keycloak, &token);
            let second = verify(keycloak, &token);
            for result in [&first, &second] {
                match result {
                    Ok(principal) => check_principal(principal, &claims, keycloak),
                    Err(IdentityError::Unauthorized(_)) => {}
                    Err(e) => panic!("a signed token is accepted or 401, got {e:?}"),
                }
            }
            // Away from the expiry and not-before edges, the cache answers as the first
            // verification did.
            let settled = |claim: &str, later: bool| {
                claims[claim].as_u64().is_none_or(|at| {
                    if later {
                        at > now + LEEWAY_SECS + 5 || at.saturating_add(LEEWAY_SECS + 5) < now
                    } else {
                        at.saturating_add(5) < now || at > now + LEEWAY_SECS + 5
                    }
                })
            };
            if let Ok(p) = &first
                && settled("exp", true)
                && settled("nbf", false)
            {
                assert_eq!(
                    second.as_ref().ok(),
                    Some(p),
                    "the cache changed the answer"
                );
            }
        }
    }
    // Known keys: no token makes the verifier fetch them again.
    assert_eq!(world.stub.requests(), 4, "the verifier refetched the JWKS");
});
