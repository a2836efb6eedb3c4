//! The binary as an operator runs it: exit codes, messages, signals.

use std::time::Duration;

use crate::helpers::{ChildApp, TestContext, flash_sale_command};

#[tokio::test(flavor = "multi_thread")]
async fn invalid_config_value_exits_2_naming_the_key() {
    let ctx = TestContext::new().await;
    for (var, value, key) in [
        ("FLASH__SERVER__PORT", "eighty", "server.port"),
        ("FLASH__REDIS__URL", "localhost:6379", "redis.url"),
        ("FLASH__KAFKA__BROKERS", "nohost", "kafka.brokers"),
    ] {
        let output = flash_sale_command(&ctx)
            .env("FLASH__REDIS__MODE", "standalone")
            .env(var, value)
            .output()
            .unwrap();
        assert_eq!(output.status.code(), Some(2), "{var}={value}");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(stderr.lines().count(), 1, "one line: {stderr}");
        assert!(stderr.contains(key), "{var}={value}: {stderr}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn port_in_use_exits_2_with_one_clear_line() {
    let ctx = TestContext::new().await;
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port();
    let output = flash_sale_command(&ctx)
        .args(["--role", "ws"])
        .env("FLASH__SERVER__PORT", port.to_string())
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains(&format!("cannot listen on 127.0.0.1:{port}")),
        "{stderr}"
    );
    assert!(stderr.contains("server.port"), "{stderr}");
}

#[tokio::test(flavor = "multi_thread")]
async fn unknown_role_is_rejected_by_the_cli() {
    let ctx = TestContext::new().await;
    let output = flash_sale_command(&ctx)
        .args(["--role", "billing"])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2), "clap usage errors exit 2");
    assert!(String::from_utf8_lossy(&output.stderr).contains("billing"));
}

/// Each role as a process: ready, then SIGTERM stops it cleanly within 5 s.
#[tokio::test(flavor = "multi_thread")]
async fn each_role_process_stops_cleanly_on_sigterm() {
    let ctx = TestContext::new().await;
    for role in ["api", "payment", "ws", "all"] {
        let mut app = ChildApp::start(&ctx, role).await;
        app.signal("TERM");
        let status = app
            .exit_within(Duration::from_secs(5))
            .await
            .unwrap_or_else(|| panic!("{role} still running 5 s after SIGTERM"));
        assert_eq!(status.code(), Some(0), "{role} exit status");
    }
}
