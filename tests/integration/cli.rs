//! The binary as an operator runs it: exit codes, messages, signals.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::helpers::{NO_ISSUER, TestContext, flash_sale_command, free_port};

fn flash_sale(ctx: &TestContext) -> Command {
    flash_sale_command(ctx)
}

#[tokio::test(flavor = "multi_thread")]
async fn invalid_config_value_exits_2_naming_the_key() {
    let ctx = TestContext::new().await;
    for (var, value, key) in [
        ("FLASH__SERVER__PORT", "eighty", "server.port"),
        ("FLASH__REDIS__URL", "localhost:6379", "redis.url"),
        ("FLASH__KAFKA__BROKERS", "nohost", "kafka.brokers"),
    ] {
        let output = flash_sale(&ctx).env(var, value).output().unwrap();
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
    let output = flash_sale(&ctx)
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
    let output = flash_sale(&ctx)
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
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(2))
        .build()
        .unwrap();
    for role in ["api", "payment", "ws", "all"] {
        let port = free_port();
        let mut command = flash_sale(&ctx);
        if role == "ws" {
            command.env("FLASH__IDENTITY__ISSUER", NO_ISSUER);
        }
        let mut child = command
            .args(["--role", role])
            .env("FLASH__SERVER__PORT", port.to_string())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let url = format!("http://127.0.0.1:{port}/readyz");
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Ok(response) = http.get(&url).send().await
                && response.status() == 200
            {
                break;
            }
            assert!(Instant::now() < deadline, "{role} not ready in time");
            assert!(child.try_wait().unwrap().is_none(), "{role} exited early");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }

        let stopping = Instant::now();
        let killed = Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status()
            .unwrap();
        assert!(killed.success());
        let status = loop {
            if let Some(status) = child.try_wait().unwrap() {
                break status;
            }
            assert!(
                stopping.elapsed() < Duration::from_secs(5),
                "{role} still running 5 s after SIGTERM"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        };
        assert_eq!(status.code(), Some(0), "{role} exit status");
    }
}
