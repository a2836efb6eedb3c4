//! The Keycloak adapter against recorded Keycloak request/response shapes.
//!
//! Keycloak (a JVM server) cannot run on our machines, so this is the one place a
//! stand-in is used: a local HTTP server that answers exactly as Keycloak 26 answered
//! these calls (token endpoint, admin users API), and records what the adapter sent.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use actix_web::{App, HttpRequest, HttpResponse, HttpServer, web};
use flash_sale::adapters::oidc::KeycloakProvider;
use flash_sale::config::KeycloakSettings;
use flash_sale::domain::identity::{Email, IdentityError, Password};
use flash_sale::domain::ports::IdentityProvider;
use secrecy::SecretString;

#[derive(Default)]
struct Recorded {
    token_forms: Vec<Vec<(String, String)>>,
    user_creations: Vec<(Option<String>, serde_json::Value)>,
    users: Vec<String>,
}

type State = web::Data<Arc<Mutex<Recorded>>>;

async fn token(state: State, form: web::Form<Vec<(String, String)>>) -> HttpResponse {
    let form = form.into_inner();
    let field = |name: &str| form.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone());
    state.lock().unwrap().token_forms.push(form.clone());
    if field("client_secret").as_deref() != Some("s3cret") {
        return HttpResponse::Unauthorized().json(serde_json::json!({
            "error": "unauthorized_client", "error_description": "Invalid client or Invalid client credentials"
        }));
    }
    match field("grant_type").as_deref() {
        Some("client_credentials") => HttpResponse::Ok().json(serde_json::json!({
            "access_token": "service-account-token", "expires_in": 300, "refresh_expires_in": 0,
            "token_type": "Bearer", "not-before-policy": 0, "scope": "profile email"
        })),
        Some("password") if field("password").as_deref() == Some("correct horse battery") => {
            HttpResponse::Ok().json(serde_json::json!({
                "access_token": "eyJ-user-access-token", "expires_in": 300, "refresh_expires_in": 1800,
                "refresh_token": "eyJ-refresh", "token_type": "Bearer", "id_token": "eyJ-id",
                "not-before-policy": 0, "session_state": "8f0c", "scope": "openid profile email"
            }))
        }
        _ => HttpResponse::Unauthorized().json(serde_json::json!({
            "error": "invalid_grant", "error_description": "Invalid user credentials"
        })),
    }
}

async fn create_user(
    req: HttpRequest,
    state: State,
    body: web::Json<serde_json::Value>,
) -> HttpResponse {
    let auth = req
        .headers()
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let mut recorded = state.lock().unwrap();
    recorded.user_creations.push((auth.clone(), body.0.clone()));
    if auth.as_deref() != Some("Bearer service-account-token") {
        return HttpResponse::Unauthorized()
            .json(serde_json::json!({"error": "HTTP 401 Unauthorized"}));
    }
    let username = body["username"].as_str().unwrap_or_default().to_owned();
    if recorded.users.contains(&username) {
        return HttpResponse::Conflict()
            .json(serde_json::json!({"errorMessage": "User exists with same username"}));
    }
    recorded.users.push(username);
    HttpResponse::Created()
        .insert_header((
            "Location",
            format!(
                "http://{}/admin/realms/flash-sale/users/0b7e2a4c-8d1f-4b6e-9a53-2f1c7d9e4a10",
                req.connection_info().host()
            ),
        ))
        .finish()
}

#[tokio::test(flavor = "multi_thread")]
async fn register_and_login_through_keycloak_shapes() {
    let state = Arc::new(Mutex::new(Recorded::default()));
    let data = web::Data::new(state.clone());
    let server = HttpServer::new(move || {
        App::new()
            .app_data(data.clone())
            .route(
                "/realms/flash-sale/protocol/openid-connect/token",
                web::post().to(token),
            )
            .route(
                "/admin/realms/flash-sale/users",
                web::post().to(create_user),
            )
    })
    .workers(1)
    .disable_signals()
    .bind("127.0.0.1:0")
    .unwrap();
    let addr = server.addrs()[0];
    let server = server.run();
    let handle = server.handle();
    tokio::spawn(server);

    let keycloak = KeycloakProvider::new(
        &KeycloakSettings {
            base_url: format!("http://{addr}/"),
            realm: "flash-sale".into(),
            client_id: "flash-sale-api".into(),
            client_secret: SecretString::from("s3cret"),
        },
        Duration::from_secs(2),
    )
    .unwrap();
    let email = Email::parse("Kim@Example.com").unwrap();
    let password = Password::parse("correct horse battery").unwrap();

    let user_id = keycloak.register(&email, &password).await.unwrap();
    assert_eq!(user_id.as_str(), "0b7e2a4c-8d1f-4b6e-9a53-2f1c7d9e4a10");
    assert!(matches!(
        keycloak.register(&email, &password).await,
        Err(IdentityError::EmailTaken)
    ));

    let token = keycloak.login(&email, &password).await.unwrap();
    assert_eq!(token.access_token, "eyJ-user-access-token");
    assert_eq!(token.expires_in, 300);
    let wrong = Password::candidate("wrong").unwrap();
    assert!(matches!(
        keycloak.login(&email, &wrong).await,
        Err(IdentityError::InvalidCredentials)
    ));

    {
        let recorded = state.lock().unwrap();
        // One service-account token served both registrations (cached until expiry).
        let grants: Vec<_> = recorded
            .token_forms
            .iter()
            .map(|f| f.iter().find(|(k, _)| k == "grant_type").unwrap().1.clone())
            .collect();
        assert_eq!(grants, ["client_credentials", "password", "password"]);
        let (auth, body) = &recorded.user_creations[0];
        assert_eq!(auth.as_deref(), Some("Bearer service-account-token"));
        assert_eq!(body["username"], "kim@example.com");
        assert_eq!(body["email"], "kim@example.com");
        assert_eq!(body["enabled"], true);
        assert_eq!(body["credentials"][0]["type"], "password");
        assert_eq!(body["credentials"][0]["temporary"], false);
        let login_form = &recorded.token_forms[1];
        assert!(login_form.contains(&("username".into(), "kim@example.com".into())));
        assert!(login_form.contains(&("client_id".into(), "flash-sale-api".into())));
    }

    // Keycloak down: a clear "unavailable", not a hang or a panic.
    handle.stop(true).await;
    let result = keycloak.login(&email, &password).await;
    assert!(
        matches!(result, Err(IdentityError::Unavailable(_))),
        "{result:?}"
    );
}
