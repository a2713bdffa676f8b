//! Enrolment end to end (docs/APPLIANCE.md): a fresh hub waiting at first
//! boot, the physician's `glyco-clinic physician enrol` issuing a QR code
//! (read back by zbarimg, an independent decoder), the picture uploaded to
//! the hub's page, the patient role offered, accepted and the hub
//! authorised on a real anvil chain; then the hub runs with what it learnt.
//! A spent token, a forged one, an expired code, another consortium's code
//! and a picture without a code are refused.

mod support;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use glyco_contracts::Role;
use glyco_contracts::testkit::accounts::PHYSICIAN;
use glyco_gateway::sim;
use support::clinic::{ClinicProcess, key_file, read};
use support::{HubWorld, free_tcp_port, now_ms};
use tokio::process::Command;

/// The world's config turned into a new hub's: its own empty state
/// directory, no patient, waiting for enrolment on a web port of its own.
fn fresh_hub(world: &mut HubWorld, name: &str) -> SocketAddr {
    let web: SocketAddr = format!("127.0.0.1:{}", free_tcp_port()).parse().unwrap();
    let state = world.dir.path().join(name);
    world.edit_config(|c| {
        c.state_dir = state;
        c.chain.patient = None;
        c.chain.rpc_url = "http://127.0.0.1:9".into();
        c.chain.deployment_file = PathBuf::from("/nonexistent/deployment.json");
        c.chain.device_id_key_file = PathBuf::from("/nonexistent/device-id.key");
        c.web.listen = web;
        c.enrolment.await_enrolment = true;
    });
    web
}

/// `glyco-clinic physician enrol`, serving until the code is used.
async fn issue_code(
    world: &HubWorld,
    keys: &Path,
    name: &str,
    port: u16,
) -> (ClinicProcess, PathBuf) {
    let dir = world.dir.path().join("physician");
    let png = world.dir.path().join(format!("{name}.png"));
    let text = world.dir.path().join(format!("{name}.txt"));
    let key = key_file(world, keys, PHYSICIAN);
    let mut args: Vec<String> = [
        "physician",
        "enrol",
        "--dir",
        dir.to_str().unwrap(),
        "--key",
        &key,
        "--device-id-key",
        world.dir.path().join("device-id.key").to_str().unwrap(),
        "--listen",
        &format!("127.0.0.1:{port}"),
        "--valid-minutes",
        "10",
        "--out",
        png.to_str().unwrap(),
        "--text-out",
        text.to_str().unwrap(),
        "--quiet",
    ]
    .iter()
    .map(|s| (*s).to_owned())
    .collect();
    // The world's chain (its config now describes the fresh hub).
    args.extend([
        "--rpc".to_owned(),
        world.consortium.devnet.rpc_url().to_string(),
        "--deployment".to_owned(),
        world
            .dir
            .path()
            .join("deployment.json")
            .to_string_lossy()
            .into_owned(),
    ]);
    let refs: Vec<&str> = args.iter().map(String::as_str).collect();
    let log = world.dir.path().join(format!("{name}.log"));
    let process = ClinicProcess::start(&refs, log).await;
    assert!(
        process
            .first_line
            .starts_with("enrolment code for physician"),
        "{}",
        process.first_line
    );
    (process, png)
}

async fn wait_for_page(web: SocketAddr) -> String {
    for _ in 0..300 {
        if let Ok(response) = reqwest::get(format!("http://{web}/")).await {
            return response.text().await.unwrap();
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("the enrolment page did not come up on {web}");
}

async fn post(
    web: SocketAddr,
    content_type: &str,
    body: Vec<u8>,
    origin: Option<&str>,
) -> (u16, String) {
    let mut request = reqwest::Client::new()
        .post(format!("http://{web}/enrol"))
        .header("content-type", content_type)
        .body(body);
    if let Some(origin) = origin {
        request = request.header("origin", origin);
    }
    let response = request.send().await.unwrap();
    (response.status().as_u16(), response.text().await.unwrap())
}

fn mode(path: &Path) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

#[tokio::test]
async fn a_new_hub_enrols_from_the_physicians_qr_picture_and_runs_with_it() {
    let mut world = HubWorld::new().await;
    let keys = world.dir.path().join("keys");
    std::fs::create_dir_all(&keys).unwrap();
    let web = fresh_hub(&mut world, "new-hub");
    let port = free_tcp_port();
    let (mut physician, png) = issue_code(&world, &keys, "code", port).await;

    // An independent decoder reads the same text the tool wrote.
    let zbar = Command::new("zbarimg")
        .args(["--raw", "-q", png.to_str().unwrap()])
        .output()
        .await
        .expect("zbarimg is installed (scripts/bootstrap.sh)");
    let text = read(&png.with_extension("txt"));
    assert_eq!(String::from_utf8_lossy(&zbar.stdout).trim(), text);
    assert!(text.starts_with("GLYCO-ENROL-1:"));
    assert!(
        !text.contains(&format!("{}", world.consortium.device_id_key.to_bytes())),
        "the device-id key is not in the code"
    );
    assert_eq!(mode(&png), 0o600);

    // The hub starts, makes its keys and waits; the status socket appears
    // only once it is enrolled and running.
    let starting = tokio::spawn({
        let config_path = world.config_path.clone();
        async move {
            let output = Command::new(support::HUB_BIN)
                .args(["--config", config_path.to_str().unwrap(), "identity"])
                .output()
                .await
                .unwrap();
            String::from_utf8_lossy(&output.stdout).into_owned()
        }
    });
    let identity = starting.await.unwrap();
    let patient: glyco_contracts::Address = identity
        .lines()
        .find_map(|l| l.strip_prefix("patient "))
        .unwrap()
        .parse()
        .unwrap();
    let enrolling = async {
        let page = wait_for_page(web).await;
        assert!(page.contains("waiting for enrolment"), "{page}");
        assert!(page.contains(&format!("{patient:#x}")), "{page}");
        let picture = std::fs::read(&png).unwrap();
        // Another site's form is refused before anything happens.
        let (status, _) = post(
            web,
            "image/png",
            picture.clone(),
            Some("http://evil.example"),
        )
        .await;
        assert_eq!(status, 403);
        // A picture with no code in it.
        let blank = glyco_webkit::qr::png("not an enrolment code").unwrap();
        let (status, body) = post(web, "image/png", blank, None).await;
        assert_eq!(status, 422, "{body}");
        assert!(body.contains("not a Glyco enrolment code"), "{body}");
        let (status, body) = post(web, "image/png", picture, None).await;
        assert_eq!(status, 200, "{body}");
        body
    };
    let (hub, answer) = tokio::join!(world.start_hub(), enrolling);
    assert!(answer.contains("enrolled with physician"), "{answer}");
    let status = tokio::time::timeout(Duration::from_secs(10), physician.child.wait())
        .await
        .unwrap()
        .unwrap();
    assert!(
        status.success(),
        "{}",
        read(&world.dir.path().join("code.log"))
    );

    // On chain: the patient accepted the physician's offer and authorised
    // this hub (it registers devices below with the delegated power).
    let chain = world.client(PHYSICIAN);
    assert_eq!(chain.role_of(patient).await.unwrap(), Some(Role::Patient));
    let state = &world.config.state_dir;
    for file in [
        "enrolled.toml",
        "device-id.key",
        "patient.eth",
        "hub.key",
        "deployment.json",
    ] {
        assert_eq!(mode(&state.join(file)), 0o600, "{file}");
    }
    // The hub serves its patient: a device added through it, a reading stored.
    let secret = world.register("wifi-glucometer", "glucometer").await;
    hub.wait_registered("wifi-glucometer").await;
    let payload = String::from_utf8(sim::glucose_payload(1, now_ms(), 6.4, "mmol/L")).unwrap();
    let published = Command::new("mosquitto_pub")
        .args([
            "-h",
            &hub.mqtt.ip().to_string(),
            "-p",
            &hub.mqtt.port().to_string(),
            "-u",
            "wifi-glucometer",
            "-P",
            &secret,
            "-i",
            "wifi-glucometer",
            "-t",
            "glyco/v1/readings/wifi-glucometer",
            "-q",
            "1",
            "-m",
            &payload,
        ])
        .status()
        .await
        .unwrap();
    assert!(published.success());
    hub.wait_for("the reading", |r| r.readings_stored == 1)
        .await;
    hub.terminate().await;

    // A second enrolment of the same hub is refused by the hub itself.
    let again = Command::new(support::HUB_BIN)
        .args(["--config", world.config_path.to_str().unwrap(), "enrol"])
        .arg(png.with_extension("txt"))
        .output()
        .await
        .unwrap();
    assert!(!again.status.success());
}

#[tokio::test]
async fn spent_forged_expired_and_foreign_codes_are_refused() {
    let mut world = HubWorld::new().await;
    let keys = world.dir.path().join("keys");
    std::fs::create_dir_all(&keys).unwrap();
    let port = free_tcp_port();
    let enrol = |world: &HubWorld, code: &Path| {
        let config = world.config_path.clone();
        let code = code.to_owned();
        async move {
            let out = Command::new(support::HUB_BIN)
                .args(["--config", config.to_str().unwrap(), "enrol"])
                .arg(code)
                .env("RUST_LOG", "warn")
                .output()
                .await
                .unwrap();
            (
                out.status.success(),
                format!(
                    "{}{}",
                    String::from_utf8_lossy(&out.stdout),
                    String::from_utf8_lossy(&out.stderr)
                ),
            )
        }
    };

    // The first hub uses the code (its text, through the CLI).
    fresh_hub(&mut world, "first-hub");
    let (mut first, png) = issue_code(&world, &keys, "first", port).await;
    let used = png.with_extension("txt");
    let (ok, out) = enrol(&world, &used).await;
    assert!(ok, "{out}");
    first.child.wait().await.unwrap();

    // A second hub replays it to the physician's next session (the same
    // node and port): the token is spent.
    fresh_hub(&mut world, "second-hub");
    let (mut second, _) = issue_code(&world, &keys, "second", port).await;
    let (ok, out) = enrol(&world, &used).await;
    assert!(!ok);
    assert!(out.contains("the token was already used"), "{out}");

    // A forged token for the same node: never issued.
    let mut forged: glyco_seal::enrolment::Invitation =
        serde_json::from_str(read(&used).strip_prefix("GLYCO-ENROL-1:").unwrap()).unwrap();
    forged.token = glyco_seal::enrolment::new_token();
    forged.expires_at = now_ms() as u64 / 1000 + 600;
    let forged_path = world.dir.path().join("forged.txt");
    std::fs::write(&forged_path, forged.to_text()).unwrap();
    let (ok, out) = enrol(&world, &forged_path).await;
    assert!(!ok);
    assert!(out.contains("the token was never issued here"), "{out}");

    // An expired code is refused by the hub before it asks anyone.
    forged.expires_at = now_ms() as u64 / 1000 - 1;
    std::fs::write(&forged_path, forged.to_text()).unwrap();
    let (ok, out) = enrol(&world, &forged_path).await;
    assert!(!ok);
    assert!(out.contains("expired"), "{out}");

    // A hub pinned to another consortium refuses this one's codes.
    let second_code = read(&world.dir.path().join("second.txt"));
    world.edit_config(|c| c.enrolment.chain_id = 1);
    let code_path = world.dir.path().join("second.txt");
    let (ok, out) = enrol(&world, &code_path).await;
    assert!(!ok);
    assert!(out.contains("only takes codes for chain 1"), "{out}");
    assert!(second_code.starts_with("GLYCO-ENROL-1:"));

    // The physician's book: the first token spent, the second still live.
    second.child.kill().await.unwrap();
    let book = read(&world.dir.path().join("physician/enrolment-tokens.json"));
    assert_eq!(book.matches("\"spent\": null").count(), 1, "{book}");
}
