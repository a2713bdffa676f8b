//! The web app over HTTPS: curl, verifying the hub's certificate, signs in
//! and gets a session cookie marked Secure; plain HTTP is not spoken there.

mod support;

use glyco_gateway::config::TlsConfig;
use support::HubWorld;
use tokio::process::Command;

#[tokio::test]
async fn over_tls_the_session_cookie_is_secure_and_plain_http_is_refused() {
    let mut world = HubWorld::new().await;
    let dir = world.dir.path().to_owned();
    let (cert, key) = support::throwaway_cert(&dir).await;
    world.edit_config(|c| {
        c.web.tls = Some(TlsConfig {
            cert_file: cert.clone(),
            key_file: key.clone(),
        })
    });
    world
        .hub_cli_with_input(&["web", "set-pin"], "605172\n")
        .await;
    let hub = world.start_hub().await;
    let listen = hub
        .wait_for("the web app", |r| r.web.listen.is_some())
        .await
        .web
        .listen
        .unwrap();
    let curl = |args: Vec<String>| async move {
        Command::new("curl")
            .args(["-sS", "--max-time", "20"])
            .args(args)
            .output()
            .await
            .unwrap()
    };
    let signed_in = curl(vec![
        "-i".into(),
        "--cacert".into(),
        cert.to_string_lossy().into_owned(),
        "-d".into(),
        "pin=605172".into(),
        format!("https://{listen}/login"),
    ])
    .await;
    let head = String::from_utf8_lossy(&signed_in.stdout).to_string();
    assert!(
        signed_in.status.success(),
        "{}",
        String::from_utf8_lossy(&signed_in.stderr)
    );
    assert!(head.starts_with("HTTP/1.1 303"), "{head}");
    let cookie_line = head
        .lines()
        .find(|l| l.to_ascii_lowercase().starts_with("set-cookie:"))
        .expect("a session cookie");
    assert!(
        cookie_line.contains("; Secure") && cookie_line.contains("HttpOnly"),
        "{cookie_line}"
    );
    let cookie = cookie_line
        .split_once(':')
        .unwrap()
        .1
        .split(';')
        .next()
        .unwrap()
        .trim()
        .to_owned();
    let page = curl(vec![
        "--cacert".into(),
        cert.to_string_lossy().into_owned(),
        "-H".into(),
        format!("Cookie: {cookie}"),
        format!("https://{listen}/hub"),
    ])
    .await;
    assert!(
        String::from_utf8_lossy(&page.stdout).contains("Hub address"),
        "the session works over TLS"
    );
    let plain = curl(vec![format!("http://{listen}/login")]).await;
    assert!(
        !String::from_utf8_lossy(&plain.stdout).contains("Sign in"),
        "plain HTTP on the TLS port must not be answered"
    );
    assert_eq!(hub.terminate().await.code(), Some(0));
}
