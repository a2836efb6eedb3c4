//! Identity: the built-in issuer end to end, the token rejection matrix, rotation, and
//! a third-party issuer (npm `oauth2-mock-server`, a real OIDC implementation) to show
//! that switching providers is configuration only.

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use flash_sale::adapters::oidc::{SigningKeys, keys::generate_pem};
use flash_sale::roles::Role;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{Value, json};

use crate::fixtures::{assert_login_gives_no_account_away, credentials};
use crate::helpers::{TestApp, TestContext, free_port};

const PASSWORD: &str = "correct horse battery";

fn now() -> i64 {
    chrono::Utc::now().timestamp()
}

#[tokio::test(flavor = "multi_thread")]
async fn register_login_me() {
    let ctx = TestContext::new().await;
    let app = ctx.spawn(Role::Api).await;

    let (status, body) = app
        .post_json(
            "/api/auth/register",
            &credentials("  Ann@Example.com ", PASSWORD),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    let user_id = body["user_id"].as_str().unwrap().to_owned();

    let (status, body) = app
        .post_json("/api/auth/login", &credentials("ann@example.com", PASSWORD))
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["token_type"], "Bearer");
    assert!(body["expires_in"].as_u64().unwrap() > 0);
    let token = body["access_token"].as_str().unwrap();

    let (status, me) = app.get_authed("/api/me", token).await;
    assert_eq!(status, 200, "{me}");
    assert_eq!(me["user_id"], user_id.as_str());
    assert_eq!(me["email"], "ann@example.com", "stored normalised");
    assert_eq!(me["roles"], json!(["user"]));

    // The stored hash is argon2id, never the password.
    let hash: String = {
        use diesel::prelude::*;
        use diesel_async::RunQueryDsl;
        use flash_sale::adapters::mysql::schema::users;
        let mut conn = ctx.mysql().await;
        users::table
            .select(users::password_hash)
            .first(&mut conn)
            .await
            .unwrap()
    };
    assert!(hash.starts_with("$argon2id$"), "{hash}");
    assert!(!hash.contains(PASSWORD));
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn registration_errors() {
    let ctx = TestContext::new().await;
    let app = ctx.spawn(Role::Api).await;
    app.register_and_login("bob@example.com", PASSWORD).await;

    for (email, password, status, code) in [
        ("BOB@example.com", PASSWORD, 409, "EMAIL_TAKEN"),
        ("not-an-email", PASSWORD, 422, "INVALID_EMAIL"),
        ("", PASSWORD, 422, "INVALID_EMAIL"),
        ("carol@example.com", "short", 422, "WEAK_PASSWORD"),
    ] {
        let (got, body) = app
            .post_json("/api/auth/register", &credentials(email, password))
            .await;
        assert_eq!(got, status, "{email}/{password}: {body}");
        assert_eq!(body["error"]["code"], code, "{body}");
    }
    // A body that is not the expected JSON is a 400 with a JSON error, never a 500.
    let (status, body) = app
        .post_json("/api/auth/register", &json!({"email": "x@y.z"}))
        .await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["error"]["code"], "INVALID_REQUEST");
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn wrong_password_and_unknown_email_get_the_same_401() {
    let ctx = TestContext::new().await;
    let app = ctx.spawn(Role::Api).await;
    app.register_and_login("dan@example.com", PASSWORD).await;

    assert_login_gives_no_account_away(&app, "dan@example.com", PASSWORD).await;
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn login_attempts_are_rate_limited_per_email() {
    let ctx = TestContext::new().await;
    let limit = ctx.settings.identity.login_attempts_per_email;
    let app = ctx.spawn(Role::Api).await;
    // A successful login resets the e-mail's count: only failures after it add up.
    app.register_and_login("eve@example.com", PASSWORD).await;
    let wrong = credentials("eve@example.com", "guess guess");
    for _ in 0..limit {
        assert_eq!(app.post_json("/api/auth/login", &wrong).await.0, 401);
    }
    let response = app
        .client
        .post(app.url("/api/auth/login"))
        .json(&wrong)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 429);
    let retry_after: u64 = response.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=60).contains(&retry_after), "{retry_after}");
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"]["code"], "TOO_MANY_ATTEMPTS");

    // Even the right password waits out the window; another e-mail is unaffected.
    let right = credentials("eve@example.com", PASSWORD);
    assert_eq!(app.post_json("/api/auth/login", &right).await.0, 429);
    let other = credentials("frank@example.com", PASSWORD);
    assert_eq!(app.post_json("/api/auth/login", &other).await.0, 401);
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn promoted_user_gets_the_admin_role_at_next_login() {
    let ctx = TestContext::new().await;
    let app = ctx.spawn(Role::Api).await;
    let before = app.register_and_login("gail@example.com", PASSWORD).await;
    let mysql = flash_sale::adapters::mysql::MysqlPool::new(&ctx.settings.mysql).unwrap();
    flash_sale::app::identity::set_admin(&mysql, "GAIL@example.com", true)
        .await
        .unwrap();
    assert!(matches!(
        flash_sale::app::identity::set_admin(&mysql, "nobody@example.com", true).await,
        Err(flash_sale::domain::identity::IdentityError::UnknownUser(_))
    ));
    let (_, me) = app.get_authed("/api/me", &before).await;
    assert_eq!(
        me["roles"],
        json!(["user"]),
        "an issued token keeps its roles"
    );
    let (_, body) = app
        .post_json(
            "/api/auth/login",
            &credentials("gail@example.com", PASSWORD),
        )
        .await;
    let (_, me) = app
        .get_authed("/api/me", body["access_token"].as_str().unwrap())
        .await;
    assert_eq!(me["roles"], json!(["user", "admin"]));
    app.stop().await;
}

fn b64(value: &Value) -> String {
    URL_SAFE_NO_PAD.encode(serde_json::to_vec(value).unwrap())
}

fn sign(claims: &Value, pem: &str, kid: &str) -> String {
    let mut header = Header::new(Algorithm::RS256);
    header.kid = Some(kid.to_owned());
    jsonwebtoken::encode(
        &header,
        claims,
        &EncodingKey::from_rsa_pem(pem.as_bytes()).unwrap(),
    )
    .unwrap()
}

/// Every way a token can be wrong is a 401 with a JSON error, never a 500.
#[tokio::test(flavor = "multi_thread")]
async fn token_rejection_matrix() {
    let ctx = TestContext::new().await;
    let app = ctx.spawn(Role::Api).await;
    let valid = app.register_and_login("hal@example.com", PASSWORD).await;
    assert_eq!(app.get_authed("/api/me", &valid).await.0, 200);

    let issuer = app.issuer().await;
    let pem = std::fs::read_to_string(&ctx.settings.identity.embedded.signing_key).unwrap();
    let kid = SigningKeys::from_pem(&pem).unwrap().active_kid().to_owned();
    let (_, jwks) = app.get_json("/.well-known/jwks.json").await;
    let n = jwks["keys"][0]["n"].as_str().unwrap().to_owned();

    let claims = |patch: Value| {
        let mut c = json!({
            "iss": issuer, "sub": "1", "aud": "flash-sale", "email": "hal@example.com",
            "roles": ["user", "admin"], "iat": now(), "nbf": now() - 5, "exp": now() + 300,
            "jti": "t",
        });
        for (k, v) in patch.as_object().unwrap() {
            c[k] = v.clone();
        }
        c
    };
    // Sanity: our crafted token with the real key is accepted.
    assert_eq!(
        app.get_authed("/api/me", &sign(&claims(json!({})), &pem, &kid))
            .await
            .0,
        200
    );

    let other_pem = generate_pem().unwrap();
    let parts: Vec<&str> = valid.split('.').collect();
    let mut payload: Value =
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(parts[1]).unwrap()).unwrap();
    payload["roles"] = json!(["user", "admin"]);
    let tampered = format!("{}.{}.{}", parts[0], b64(&payload), parts[2]);
    let alg_none = format!(
        "{}.{}.",
        b64(&json!({"alg": "none", "typ": "JWT", "kid": kid})),
        b64(&claims(json!({})))
    );
    let mut hs_header = Header::new(Algorithm::HS256);
    hs_header.kid = Some(kid.clone());
    let hs256_with_public_key = jsonwebtoken::encode(
        &hs_header,
        &claims(json!({})),
        &EncodingKey::from_secret(n.as_bytes()),
    )
    .unwrap();

    let cases: Vec<(&str, Option<String>)> = vec![
        ("missing header", None),
        ("malformed", Some("not.a.jwt".into())),
        ("garbage", Some("%%%".into())),
        (
            "expired",
            Some(sign(
                &claims(json!({"exp": now() - 3600, "iat": now() - 7200, "nbf": now() - 7200})),
                &pem,
                &kid,
            )),
        ),
        (
            "not yet valid",
            Some(sign(&claims(json!({"nbf": now() + 3600})), &pem, &kid)),
        ),
        (
            "wrong issuer",
            Some(sign(
                &claims(json!({"iss": "https://evil.example.com"})),
                &pem,
                &kid,
            )),
        ),
        (
            "wrong audience",
            Some(sign(&claims(json!({"aud": "someone-else"})), &pem, &kid)),
        ),
        (
            "no subject",
            Some(sign(
                &{
                    let mut c = claims(json!({}));
                    c.as_object_mut().unwrap().remove("sub");
                    c
                },
                &pem,
                &kid,
            )),
        ),
        ("alg none", Some(alg_none)),
        (
            "HS256 signed with the public key",
            Some(hs256_with_public_key),
        ),
        (
            "unknown kid",
            Some(sign(&claims(json!({})), &other_pem, "unknown-kid")),
        ),
        ("tampered payload", Some(tampered)),
        (
            "signed by another key",
            Some(sign(&claims(json!({})), &other_pem, &kid)),
        ),
    ];
    for (case, token) in cases {
        let mut request = app.client.get(app.url("/api/me"));
        if let Some(token) = &token {
            request = request.bearer_auth(token);
        }
        let response = request.send().await.unwrap();
        assert_eq!(response.status(), 401, "{case}");
        assert_eq!(response.headers()["www-authenticate"], "Bearer", "{case}");
        let body: Value = response.json().await.unwrap();
        assert_eq!(body["error"]["code"], "UNAUTHORIZED", "{case}: {body}");
    }
    // A non-Bearer scheme is the same as no token.
    let response = app
        .client
        .get(app.url("/api/me"))
        .header("Authorization", format!("Basic {valid}"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 401);
    app.stop().await;
}

/// Rotation: after the key changes, tokens signed by the previous key still verify
/// while it is listed in `previous_signing_keys`, and new tokens use the new key.
#[tokio::test(flavor = "multi_thread")]
async fn rotated_key_keeps_old_tokens_valid() {
    let ctx = TestContext::new().await;
    let app = ctx.spawn(Role::Api).await;
    let old_token = app.register_and_login("ida@example.com", PASSWORD).await;
    app.stop().await;

    let old_path = ctx.settings.identity.embedded.signing_key.clone();
    let new_path = old_path.with_extension("next.pem");
    std::fs::write(&new_path, generate_pem().unwrap()).unwrap();
    let mut settings = ctx.settings.clone();
    settings.identity.embedded.signing_key = new_path.clone();
    settings.identity.embedded.previous_signing_keys = vec![old_path];
    let app = ctx.spawn_with(Role::Api, settings).await;

    let (_, jwks) = app.get_json("/.well-known/jwks.json").await;
    assert_eq!(jwks["keys"].as_array().unwrap().len(), 2);
    // The issuer URL changed with the port, so mint an old-key token for this instance.
    let issuer = app.issuer().await;
    let old_pem = std::fs::read_to_string(&ctx.settings.identity.embedded.signing_key).unwrap();
    let old_kid = SigningKeys::from_pem(&old_pem)
        .unwrap()
        .active_kid()
        .to_owned();
    let claims = json!({
        "iss": issuer, "sub": "1", "aud": "flash-sale", "roles": ["user"],
        "iat": now(), "nbf": now(), "exp": now() + 60,
    });
    let (status, _) = app
        .get_authed("/api/me", &sign(&claims, &old_pem, &old_kid))
        .await;
    assert_eq!(status, 200, "old key still verifies");
    // The token from the previous instance names another issuer (other port): rejected.
    assert_eq!(app.get_authed("/api/me", &old_token).await.0, 401);

    let (_, body) = app
        .post_json("/api/auth/login", &credentials("ida@example.com", PASSWORD))
        .await;
    let new_token = body["access_token"].as_str().unwrap();
    let header = jsonwebtoken::decode_header(new_token).unwrap();
    assert_ne!(
        header.kid.as_deref(),
        Some(old_kid.as_str()),
        "new tokens use the new key"
    );
    assert_eq!(app.get_authed("/api/me", new_token).await.0, 200);
    app.stop().await;
    let _ = std::fs::remove_file(new_path);
}

/// The mock OIDC provider from npm, as a child process killed on drop.
struct MockProvider {
    child: Child,
    issuer: String,
}

impl MockProvider {
    #[expect(
        clippy::zombie_processes,
        reason = "the child is owned by MockProvider, whose Drop kills and waits"
    )]
    async fn start() -> Self {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/oidc-provider");
        assert!(
            dir.join("node_modules/oauth2-mock-server").is_dir(),
            "run `npm ci` in {} (make test does)",
            dir.display()
        );
        let port = free_port();
        let child = Command::new("node")
            .arg("server.mjs")
            .arg(port.to_string())
            .arg("flash-sale")
            .current_dir(&dir)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("node must be installed (make test installs it)");
        let issuer = format!("http://localhost:{port}");
        let http = reqwest::Client::new();
        for _ in 0..100 {
            if http
                .get(format!("{issuer}/.well-known/openid-configuration"))
                .send()
                .await
                .is_ok()
            {
                return Self { child, issuer };
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("oauth2-mock-server did not start on port {port}");
    }

    async fn token(&self) -> String {
        let body: Value = reqwest::Client::new()
            .post(format!("{}/token", self.issuer))
            .form(&[
                ("grant_type", "client_credentials"),
                ("client_id", "flash-sale"),
            ])
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        body["access_token"].as_str().unwrap().to_owned()
    }
}

impl Drop for MockProvider {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

async fn me_status(app: &TestApp, token: &str) -> u16 {
    app.get_authed("/api/me", token).await.0
}

#[tokio::test(flavor = "multi_thread")]
async fn third_party_issuer_is_accepted_only_when_configured() {
    let ctx = TestContext::new().await;
    let provider = MockProvider::start().await;
    let token = provider.token().await;

    let mut settings = ctx.settings.clone();
    settings.identity.issuer = provider.issuer.clone();
    let configured = ctx.spawn_with(Role::Api, settings).await;
    let (status, me) = configured.get_authed("/api/me", &token).await;
    assert_eq!(status, 200, "{me}");
    assert_eq!(me["user_id"], "mock-user-1");
    assert_eq!(me["roles"], json!(["user"]));
    configured.stop().await;

    let default = ctx.spawn(Role::Api).await;
    assert_eq!(
        me_status(&default, &token).await,
        401,
        "another issuer is rejected"
    );
    default.stop().await;
}
