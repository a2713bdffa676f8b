//! Hardware-in-the-loop checks of a built appliance image (scripts/hil.sh,
//! docs/APPLIANCE.md). The image boots under qemu (software emulation: no
//! KVM here) with its web and MQTT ports forwarded to loopback; the chain
//! (anvil) and the physician's enrolment node run on the host, which the
//! guest reaches at 10.0.2.2.
//!
//! amd64: boot to the enrolment page; enrol with the physician's QR picture
//! (setting the web app's PIN); sign in and add a Wi-Fi glucometer on the
//! Devices page; publish a reading with mosquitto_pub (QoS 1: acknowledged
//! once stored); wait until it is sealed and anchored on chain; power the VM
//! down and boot it again; check the hub came back by itself with its state
//! (same PIN, same device credentials, a second reading anchored).
//! arm64: boot to the hub service answering (the enrolment page).

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use clap::Parser;
use glyco_contracts::testkit::{Consortium, accounts::*, ephemeral_devnet};
use glyco_contracts::{Address, EntityKind};
use glyco_tests::form;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

#[derive(Parser)]
struct Args {
    /// amd64 (the full checks) or arm64 (boots to the hub answering).
    #[arg(long, default_value = "amd64")]
    arch: String,
    /// Where image/build.sh wrote the images.
    #[arg(long, default_value = "/var/cache/glyco/image")]
    images: PathBuf,
    /// A scratch directory (the VM's disk overlay, logs, keys).
    #[arg(long)]
    work: PathBuf,
    /// Where to write the figures (JSON).
    #[arg(long)]
    figures: Option<PathBuf>,
    /// How long a boot may take before the check fails.
    #[arg(long, default_value_t = 900)]
    boot_timeout_secs: u64,
    /// Check a real device (a Raspberry Pi flashed with the arm64 image and
    /// not enrolled yet) at this address instead of booting qemu: its web
    /// app on 8080 and MQTT on 1883 (scripts/hil-pi.sh).
    #[arg(long)]
    device: Option<String>,
    /// With --device: this machine's address as the device reaches it (the
    /// dev chain and the enrolment node listen there).
    #[arg(long)]
    host_address: Option<std::net::IpAddr>,
    /// More kernel arguments for qemu, for debugging (for example
    /// `systemd.setenv=RUST_LOG=debug`, which every service inherits).
    #[arg(long, default_value = "")]
    kernel_args: String,
    /// With --device: `user@host` for SSH (an image built with
    /// GLYCO_SSH_AUTHORIZED_KEY): reboots it and checks the unit and the
    /// journal on it. Without it the device is not rebooted.
    #[arg(long)]
    ssh: Option<String>,
    /// The release key and certificate the amd64 image's keyring trusts
    /// (image/build.sh with GLYCO_RELEASE_KEYRING): with both, the
    /// over-the-air update checks run after the others (ota.rs).
    #[arg(long, requires = "release_cert")]
    release_key: Option<PathBuf>,
    #[arg(long)]
    release_cert: Option<PathBuf>,
}

mod ota;
mod vm;

use vm::{UNEXPLAINED_STOPS, Vm, console_shows, tail};

const PIN: &str = "402817";
const DEVICE: &str = "hil-glucometer";

fn free_port() -> Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

fn say(text: &str) {
    println!("hil: {text}");
}

/// Where the hub's web app and MQTT listener answer, from this machine.
struct Ports {
    host: String,
    web: u16,
    mqtt: u16,
}

/// What runs the image: qemu here, or a real device on the network.
enum Target {
    Qemu { vm: Option<Box<Vm>>, boots: u32 },
    Device { ssh: Option<String> },
}

impl Target {
    async fn start(&mut self, args: &Args, work: &Path, ports: &Ports) -> Result<()> {
        if let Self::Qemu { vm, boots } = self {
            *boots += 1;
            *vm = Some(Box::new(Vm::boot(args, work, ports, *boots)?));
        }
        Ok(())
    }

    fn serial(&self) -> Option<&Path> {
        match self {
            Self::Qemu { vm: Some(vm), .. } => Some(&vm.serial),
            _ => None,
        }
    }

    /// Powers the VM down (ACPI) and boots it again, or reboots the device
    /// over SSH; how long going down took. None: it cannot be rebooted.
    async fn power_cycle(
        &mut self,
        args: &Args,
        work: &Path,
        ports: &Ports,
    ) -> Result<Option<Duration>> {
        match self {
            Self::Qemu { vm, .. } => {
                let down = vm
                    .take()
                    .context("no VM")?
                    .power_down(Duration::from_secs(300))
                    .await?;
                self.start(args, work, ports).await?;
                Ok(Some(down))
            }
            Self::Device { ssh: None } => Ok(None),
            Self::Device { ssh: Some(ssh) } => {
                let started = Instant::now();
                let _ = ssh_run(ssh, "systemctl reboot").await;
                // Down first, so the wait that follows is for the new boot.
                while started.elapsed() < Duration::from_secs(300) {
                    let address = format!("{}:{}", ports.host, ports.web);
                    if tokio::net::TcpStream::connect(&address).await.is_err() {
                        return Ok(Some(started.elapsed()));
                    }
                    tokio::time::sleep(Duration::from_secs(1)).await;
                }
                bail!("the device did not go down within 5 min of `systemctl reboot`")
            }
        }
    }

    async fn stop(&mut self) -> Result<()> {
        if let Self::Qemu { vm, .. } = self
            && let Some(vm) = vm.take()
        {
            let down = vm.power_down(Duration::from_secs(300)).await?;
            say(&format!("powered down in {down:?}"));
        }
        Ok(())
    }
}

async fn ssh_run(ssh: &str, command: &str) -> Result<String> {
    let out = Command::new("ssh")
        .args([
            "-o",
            "BatchMode=yes",
            "-o",
            "ConnectTimeout=10",
            ssh,
            command,
        ])
        .output()
        .await
        .context("ssh")?;
    if !out.status.success() {
        bail!(
            "ssh {ssh} {command}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

fn http() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(120))
        .build()
        .expect("an HTTP client")
}

/// Polls the web port until a page containing `marker` answers.
async fn wait_for_page(
    target: &Target,
    ports: &Ports,
    marker: &str,
    within: Duration,
) -> Result<Duration> {
    let started = Instant::now();
    let client = http();
    while started.elapsed() < within {
        let url = format!("http://{}:{}/", ports.host, ports.web);
        if let Ok(response) = client.get(url).send().await {
            let location = response
                .headers()
                .get("location")
                .and_then(|v| v.to_str().ok())
                .unwrap_or_default()
                .to_owned();
            let body = response.text().await.unwrap_or_default();
            if body.contains(marker) || location.contains(marker) {
                return Ok(started.elapsed());
            }
        }
        tokio::time::sleep(Duration::from_secs(2)).await;
    }
    bail!(
        "no page with {marker:?} on {}:{} within {within:?}; serial:\n{}",
        ports.host,
        ports.web,
        target.serial().map(tail).unwrap_or_default()
    )
}

/// A signed-in session on the hub's web app.
struct Session {
    base: String,
    cookie: String,
    client: reqwest::Client,
}

impl Session {
    async fn sign_in(ports: &Ports) -> Result<Self> {
        let base = format!("http://{}:{}", ports.host, ports.web);
        let client = http();
        let response = client
            .post(format!("{base}/login"))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(form(&[("pin", PIN)]))
            .send()
            .await?;
        let cookie = response
            .headers()
            .get("set-cookie")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.split(';').next())
            .map(str::to_owned)
            .with_context(|| format!("signing in with the PIN: {}", response.status()))?;
        Ok(Self {
            base,
            cookie,
            client,
        })
    }

    async fn get(&self, path: &str) -> Result<String> {
        Ok(self
            .client
            .get(format!("{}{path}", self.base))
            .header("cookie", &self.cookie)
            .send()
            .await?
            .text()
            .await?)
    }

    async fn post(&self, path: &str, fields: &[(&str, &str)]) -> Result<(u16, String)> {
        let response = self
            .client
            .post(format!("{}{path}", self.base))
            .header("cookie", &self.cookie)
            .header("origin", &self.base)
            .header("content-type", "application/x-www-form-urlencoded")
            .body(form(fields))
            .send()
            .await?;
        Ok((response.status().as_u16(), response.text().await?))
    }
}

fn between<'a>(text: &'a str, start: &str, end: &str) -> Option<&'a str> {
    let rest = &text[text.find(start)? + start.len()..];
    Some(&rest[..rest.find(end)?])
}

fn csrf(page: &str) -> Result<String> {
    between(page, "name=\"csrf\" value=\"", "\"")
        .map(str::to_owned)
        .context("a form with a CSRF token")
}

/// (resident MiB, CPU seconds) from the Hub page.
async fn process_figures(session: &Session) -> Result<(f64, f64)> {
    let page = session.get("/hub").await?;
    let row = between(&page, "<th>Process</th><td>", "</td>").context("the Process row")?;
    let rss = row
        .split(" MiB resident")
        .next()
        .and_then(|v| v.trim().parse().ok())
        .context("resident MiB")?;
    let cpu = between(row, "· ", " s CPU")
        .and_then(|v| v.trim().parse().ok())
        .context("CPU seconds")?;
    Ok((rss, cpu))
}

async fn publish(ports: &Ports, secret: &str, seq: u64) -> Result<()> {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)?
        .as_millis() as i64;
    let payload = String::from_utf8(glyco_gateway::sim::glucose_payload(seq, now, 6.2, "mmol/L"))?;
    let status = Command::new("mosquitto_pub")
        .args([
            "-h",
            &ports.host,
            "-p",
            &ports.mqtt.to_string(),
            "-u",
            DEVICE,
            "-P",
            secret,
        ])
        .args([
            "-i",
            DEVICE,
            "-q",
            "1",
            "-t",
            &format!("glyco/v1/readings/{DEVICE}"),
        ])
        .args(["-m", &payload])
        .status()
        .await
        .context("mosquitto_pub (Debian's mosquitto-clients)")?;
    if !status.success() {
        bail!("mosquitto_pub failed: the hub did not acknowledge reading {seq}");
    }
    Ok(())
}

async fn wait_anchors(
    consortium: &Consortium,
    patient: Address,
    at_least: u64,
) -> Result<Duration> {
    let started = Instant::now();
    let chain = consortium.client(ADMIN);
    while started.elapsed() < Duration::from_secs(600) {
        if chain.anchor_count(patient).await? >= at_least {
            return Ok(started.elapsed());
        }
        tokio::time::sleep(Duration::from_secs(2)).await;
    }
    bail!("the patient's anchors did not reach {at_least} within 10 min")
}

#[tokio::main]
async fn main() -> Result<()> {
    let args = Args::parse();
    glyco_contracts::client::install_tls_provider();
    let work = &args.work;
    std::fs::create_dir_all(work)?;
    let _ = std::fs::remove_file(work.join("disk.qcow2"));
    let (ports, mut target, reach_host) = match &args.device {
        Some(device) => (
            Ports {
                host: device.clone(),
                web: 8080,
                mqtt: 1883,
            },
            Target::Device {
                ssh: args.ssh.clone(),
            },
            args.host_address
                .context("--device needs --host-address (this machine as the device reaches it)")?,
        ),
        None => (
            Ports {
                host: "127.0.0.1".into(),
                web: free_port()?,
                mqtt: free_port()?,
            },
            Target::Qemu { vm: None, boots: 0 },
            // qemu's user network: the host's loopback is 10.0.2.2.
            std::net::IpAddr::from([10, 0, 2, 2]),
        ),
    };
    let boot_timeout = Duration::from_secs(args.boot_timeout_secs);
    let mut figures = serde_json::Map::new();
    let mut record = |key: &str, value: serde_json::Value| {
        say(&format!("{key} = {value}"));
        figures.insert(key.to_owned(), value);
    };

    if args.arch != "amd64" && args.device.is_none() {
        target.start(&args, work, &ports).await?;
        let up = wait_for_page(&target, &ports, "waiting for enrolment", boot_timeout).await?;
        record(
            "boot_to_hub_answering_secs",
            up.as_secs_f64().round().into(),
        );
        target.stop().await?;
        write_figures(&args, figures)?;
        say(&format!(
            "{}: the image boots and glyco-hub answers",
            args.arch
        ));
        return Ok(());
    }

    say("a dev chain with a hospital and a physician on this machine");
    let devnet = glyco_contracts::devnet::DevnetConfig {
        // Loopback for qemu (the guest reaches it as 10.0.2.2); the bench's
        // network for a real device.
        host: if args.device.is_some() {
            reach_host
        } else {
            std::net::IpAddr::from([127, 0, 0, 1])
        },
        ..ephemeral_devnet()
    };
    let consortium = Consortium::start_with(devnet).await?;
    consortium
        .enrol_entity(HOSPITAL, EntityKind::Hospital, "St Luke's")
        .await?;
    consortium.enrol_physician(PHYSICIAN, HOSPITAL).await?;
    let deployment = work.join("deployment.json");
    consortium.deployment.save(&deployment)?;
    let device_id_key = work.join("device-id.key");
    let _ = std::fs::remove_file(&device_id_key);
    consortium.device_id_key.save_new(&device_id_key)?;
    let physician_key = work.join("physician.key");
    glyco_tests::write_key(&physician_key, &consortium.signer(PHYSICIAN))?;
    let rpc = consortium.devnet.rpc_url().to_string();
    let rpc_port = rpc
        .rsplit(':')
        .next()
        .and_then(|p| p.trim_end_matches('/').parse::<u16>().ok())
        .context("the chain's port")?;

    say("starting the image");
    target.start(&args, work, &ports).await?;
    let up = wait_for_page(&target, &ports, "waiting for enrolment", boot_timeout).await?;
    record(
        "boot_to_hub_answering_secs",
        up.as_secs_f64().round().into(),
    );
    if let Some(serial) = target.serial() {
        // The image's system.conf.d: PID 1 opens the watchdog once its
        // driver loads (after PID 1 starts) and resets the machine if it
        // hangs. The OTA checks below run under it.
        let armed = "Watchdog running with a hardware timeout of 15s";
        if !console_shows(serial, armed, Duration::from_secs(60)).await {
            bail!("no \"{armed}\" on the console: the hardware watchdog is not armed");
        }
        say("PID 1 feeds the hardware watchdog (15 s)");
    }

    let listen = if args.device.is_some() {
        reach_host
    } else {
        std::net::IpAddr::from([127, 0, 0, 1])
    };
    let clinic = std::env::var("GLYCO_CLINIC_BIN").unwrap_or_else(|_| "glyco-clinic".into());

    // St Luke's node: the inbox the code names, and the fleet node the
    // hub sends its heartbeats to.
    say("St Luke's clinic node (alert inbox and fleet)");
    let clinic_node = ClinicNode {
        program: clinic.clone(),
        dir: work.join("clinic-node"),
        listen: format!("{listen}:{}", free_port()?),
        http: format!("127.0.0.1:{}", free_port()?),
        rpc: rpc.clone(),
        deployment: deployment.clone(),
    };
    let (node, node_id) = clinic_node.start(&[], work.join("clinic-node.log")).await?;
    let node_port = clinic_node
        .listen
        .rsplit(':')
        .next()
        .context("port")?
        .to_owned();

    say("the physician issues an enrolment code");
    let enrol_port = free_port()?;
    let png = work.join("enrol.png");
    let mut physician = Command::new(&clinic)
        .args(["physician", "enrol", "--dir"])
        .arg(work.join("physician"))
        .arg("--key")
        .arg(&physician_key)
        .args(["--rpc", &rpc, "--deployment"])
        .arg(&deployment)
        .arg("--device-id-key")
        .arg(&device_id_key)
        .args(["--hub-rpc", &format!("http://{reach_host}:{rpc_port}")])
        .args(["--listen", &format!("{listen}:{enrol_port}")])
        .args(["--advertise", &format!("{reach_host}:{enrol_port}")])
        .args(["--inbox", &format!("{node_id}@{reach_host}:{node_port}")])
        .arg("--out")
        .arg(&png)
        .arg("--quiet")
        .stdout(Stdio::piped())
        .stderr(std::fs::File::create(work.join("enrol.log"))?)
        .kill_on_drop(true)
        .spawn()
        .with_context(|| clinic.clone())?;
    let mut lines = BufReader::new(physician.stdout.take().context("stdout")?).lines();
    let first = tokio::time::timeout(Duration::from_secs(60), lines.next_line())
        .await
        .context("the enrolment code")??
        .unwrap_or_default();
    say(&first);

    say("the patient uploads the QR code's picture to the hub, choosing a PIN");
    let started = Instant::now();
    let picture = format!(
        "data:image/png;base64,{}",
        data_encoding::BASE64.encode(&std::fs::read(&png)?)
    );
    let base = format!("http://{}:{}", ports.host, ports.web);
    let response = http()
        .post(format!("{base}/enrol"))
        .header("content-type", "application/x-www-form-urlencoded")
        .header("origin", &base)
        .body(form(&[("picture", &picture), ("pin", PIN)]))
        .send()
        .await?;
    let status = response.status();
    let answer = response.text().await?;
    if !status.is_success() {
        bail!("enrolment refused ({status}): {answer}");
    }
    say(&answer);
    record(
        "enrolment_secs",
        started.elapsed().as_secs_f64().round().into(),
    );
    let mut patient = None;
    while let Ok(Some(line)) = lines.next_line().await {
        say(&line);
        if let Some(rest) = line.split(" for patient ").nth(1) {
            patient = rest
                .split(':')
                .next()
                .and_then(|p| p.trim().parse::<Address>().ok());
        }
    }
    let patient = patient.context("the physician's tool names the enrolled patient")?;
    physician.wait().await?;

    say("the hub runs as enrolled; the web app asks for the PIN");
    wait_for_page(&target, &ports, "login", Duration::from_secs(180)).await?;
    let session = Session::sign_in(&ports).await?;
    let devices = session.get("/devices").await?;
    let (status, page) = session
        .post(
            "/devices",
            &[
                ("csrf", &csrf(&devices)?),
                ("name", DEVICE),
                ("kind", "glucometer"),
            ],
        )
        .await?;
    if status != 200 {
        bail!("adding the glucometer on the Devices page: {status}: {page}");
    }
    let secret = between(&page, "<code class=\"password\">", "</code>")
        .context("the device's password on the page")?
        .to_owned();
    say(&format!(
        "{DEVICE} registered on chain through the hub's web app"
    ));

    publish_until_acknowledged(&ports, &secret, 1).await?;
    say("reading 1 acknowledged by the hub (stored)");
    let anchored = wait_anchors(&consortium, patient, 1).await?;
    record(
        "reading_to_anchor_secs",
        anchored.as_secs_f64().round().into(),
    );
    let hub_page = session.get("/hub").await?;
    if !hub_page.contains("1 readings in the journal") {
        bail!("the Hub page does not show the stored reading");
    }
    let (rss, cpu_before) = process_figures(&session).await?;
    tokio::time::sleep(Duration::from_secs(60)).await;
    let (_, cpu_after) = process_figures(&session).await?;
    record("hub_rss_mib", ((rss * 10.0).round() / 10.0).into());
    record(
        "hub_idle_cpu_percent",
        (((cpu_after - cpu_before) / 60.0 * 1000.0).round() / 10.0).into(),
    );
    if let Target::Device { ssh: Some(ssh) } = &target {
        on_device_checks(ssh).await?;
    }

    // The hub's signed heartbeats reached St Luke's node over iroh, with
    // the image's release.
    let fleet_url = format!("http://{}/fleet.json", clinic_node.http);
    let mut seen = None;
    for _ in 0..60 {
        let fleet: serde_json::Value = http().get(&fleet_url).send().await?.json().await?;
        if let Some(row) = fleet["hubs"].as_array().and_then(|h| h.first()) {
            seen = Some(row.clone());
            break;
        }
        tokio::time::sleep(Duration::from_secs(2)).await;
    }
    let row = seen.context("no heartbeat from the hub reached the clinic node in 2 min")?;
    let release = row["release"]
        .as_str()
        .context("the heartbeat names no image release (IMAGE_VERSION)")?;
    say(&format!(
        "heartbeats reach St Luke's node: hub {}, release {release}, flags {}",
        row["hub"], row["flags"]
    ));

    say("power cycle");
    let Some(down) = target.power_cycle(&args, work, &ports).await? else {
        write_figures(&args, figures)?;
        say("no --ssh: the device was not rebooted; the checks before it passed");
        return Ok(());
    };
    record("power_down_secs", down.as_secs_f64().round().into());
    let up = wait_for_page(&target, &ports, "login", boot_timeout).await?;
    record("reboot_to_web_app_secs", up.as_secs_f64().round().into());
    let session = Session::sign_in(&ports).await?;
    publish_until_acknowledged(&ports, &secret, 2).await?;
    wait_anchors(&consortium, patient, 2).await?;
    let hub_page = session.get("/hub").await?;
    if !hub_page.contains("2 readings in the journal") {
        bail!("after the reboot the Hub page does not show both readings");
    }
    say(
        "after the reboot: same PIN, same device credentials, both readings stored, the second anchored",
    );
    if let (Some(key), Some(cert), Target::Qemu { .. }) =
        (&args.release_key, &args.release_cert, &target)
    {
        drop(node);
        let release = release.to_owned();
        let checks = OtaRun {
            args: &args,
            consortium: &consortium,
            clinic_node: &clinic_node,
            fleet_url: &fleet_url,
            ports: &ports,
            secret: &secret,
            patient,
            release: &release,
            key: ota::ReleaseKey {
                key: key.clone(),
                cert: cert.clone(),
            },
        };
        let ota_figures = checks.run().await?;
        for (name, value) in ota_figures {
            record(&name, value);
        }
    }
    target.stop().await?;
    let unexplained = UNEXPLAINED_STOPS.load(std::sync::atomic::Ordering::SeqCst);
    if unexplained > 0 {
        bail!(
            "the guest was reset {unexplained} time(s) without rebooting (a watchdog's reset or a panic): see the serial logs"
        );
    }
    write_figures(&args, figures)?;
    say(&format!("{}: all checks passed", args.arch));
    Ok(())
}

/// St Luke's clinic node (alert inbox and fleet), started again with other
/// arguments for each rollout; its key, and so its id, stay the same.
struct ClinicNode {
    program: String,
    dir: PathBuf,
    listen: String,
    http: String,
    rpc: String,
    deployment: PathBuf,
}

impl ClinicNode {
    async fn start(&self, extra: &[String], log: PathBuf) -> Result<(Child, String)> {
        let mut node = Command::new(&self.program)
            .args(["alert-inbox", "--dir"])
            .arg(&self.dir)
            .args(["--listen", &self.listen, "--http", &self.http])
            .args(["--rpc", &self.rpc, "--deployment"])
            .arg(&self.deployment)
            .args(extra)
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(log)?)
            .kill_on_drop(true)
            .spawn()
            .with_context(|| self.program.clone())?;
        let mut lines = BufReader::new(node.stdout.take().context("stdout")?).lines();
        let line = tokio::time::timeout(Duration::from_secs(120), lines.next_line())
            .await
            .context("the clinic node's address")??
            .unwrap_or_default();
        let id = line
            .split_whitespace()
            .nth(3)
            .context("the clinic node's id")?
            .to_owned();
        tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
        Ok((node, id))
    }
}

/// The over-the-air checks (ota.rs), with what they need from the run.
struct OtaRun<'a> {
    args: &'a Args,
    consortium: &'a Consortium,
    clinic_node: &'a ClinicNode,
    fleet_url: &'a str,
    ports: &'a Ports,
    secret: &'a str,
    patient: Address,
    release: &'a str,
    key: ota::ReleaseKey,
}

impl OtaRun<'_> {
    async fn run(&self) -> Result<Vec<(String, serde_json::Value)>> {
        let mut figures = Vec::new();
        let work = &self.args.work;
        let within = Duration::from_secs(20 * 60);
        say(
            "over-the-air updates: bundles from the image's slot image, signed with the release key",
        );
        let next = format!("{}.ota1", self.release);
        let broken = format!("{}.ota2-broken", self.release);
        let unpublished = format!("{}.ota0-unpublished", self.release);
        let good_rootfs = ota::slot_image(&self.args.images, work, &next, false)?;
        let good = ota::bundle(&good_rootfs, &next, &self.key, work)?;
        let stray = ota::bundle(&good_rootfs, &unpublished, &self.key, work)?;
        let broken_rootfs = ota::slot_image(&self.args.images, work, &broken, true)?;
        let bad = ota::bundle(&broken_rootfs, &broken, &self.key, work)?;
        figures.push(("bundle_bytes".to_owned(), good.bytes.into()));
        say(&format!("bundles of {} MiB each", good.bytes >> 20));

        let rollout = |bundle: &ota::Bundle| {
            vec![
                "--release-bundle".to_owned(),
                bundle.path.display().to_string(),
                "--release-version".to_owned(),
                bundle.version.clone(),
            ]
        };
        let log = |name: &str| work.join(format!("clinic-node-{name}.log"));

        say("1. a bundle the consortium did not publish: offered, fetched, refused");
        let started = Instant::now();
        let (node, _) = self
            .clinic_node
            .start(&rollout(&stray), log("unpublished"))
            .await?;
        let fleet =
            ota::wait_update(self.fleet_url, &format!("refused {unpublished}"), within).await?;
        if fleet["rollout"]["halted_at_ms"].is_null() {
            bail!(
                "the rollout did not halt on the refusal: {}",
                fleet["rollout"]
            );
        }
        figures.push((
            "ota_refused_secs".into(),
            started.elapsed().as_secs().into(),
        ));
        drop(node);

        say("2. a good release, published on chain: installed into the other slot, booted, kept");
        ota::publish(self.consortium, &good).await?;
        let started = Instant::now();
        let (node, _) = self.clinic_node.start(&rollout(&good), log("good")).await?;
        let fleet = ota::wait_update(self.fleet_url, &format!("kept {next}"), within).await?;
        let row = &fleet["hubs"][0];
        if row["release"].as_str() != Some(next.as_str()) {
            bail!("kept, but the hub runs release {}", row["release"]);
        }
        figures.push(("ota_kept_secs".into(), started.elapsed().as_secs().into()));
        publish_until_acknowledged(self.ports, self.secret, 3).await?;
        wait_anchors(self.consortium, self.patient, 3).await?;
        say("on the new slot: the same device's reading 3 stored and anchored");
        drop(node);

        say(
            "3. a published release whose hub does not start: booted, failed its health check, rolled back",
        );
        ota::publish(self.consortium, &bad).await?;
        let started = Instant::now();
        let (node, _) = self
            .clinic_node
            .start(&rollout(&bad), log("broken"))
            .await?;
        let fleet =
            ota::wait_update(self.fleet_url, &format!("rolled_back {broken}"), within).await?;
        let row = &fleet["hubs"][0];
        if row["release"].as_str() != Some(next.as_str()) {
            bail!("rolled back, but the hub runs release {}", row["release"]);
        }
        if fleet["rollout"]["halted_at_ms"].is_null() {
            bail!("the rollout did not halt on the rollback");
        }
        figures.push((
            "ota_rollback_secs".into(),
            started.elapsed().as_secs().into(),
        ));
        publish_until_acknowledged(self.ports, self.secret, 4).await?;
        wait_anchors(self.consortium, self.patient, 4).await?;
        say("back on the good slot: reading 4 stored and anchored");
        drop(node);
        Ok(figures)
    }
}

/// The hub's mirror follows a new registration within seconds; until then
/// a reading is refused and mosquitto_pub fails, so retry for a while.
async fn publish_until_acknowledged(ports: &Ports, secret: &str, seq: u64) -> Result<()> {
    let started = Instant::now();
    loop {
        match publish(ports, secret, seq).await {
            Ok(()) => return Ok(()),
            Err(e) if started.elapsed() > Duration::from_secs(120) => return Err(e),
            Err(_) => tokio::time::sleep(Duration::from_secs(2)).await,
        }
    }
}

/// On a real device: the unit is active, confined, and its journal entries
/// carry the hub's fields.
async fn on_device_checks(ssh: &str) -> Result<()> {
    let active = ssh_run(ssh, "systemctl is-active glyco-hub").await?;
    if active.trim() != "active" {
        bail!("glyco-hub is {active}");
    }
    let entries = ssh_run(
        ssh,
        &format!("journalctl -u glyco-hub -o json GLYCO_DEVICE=name:{DEVICE} --no-pager | head -1"),
    )
    .await?;
    if !entries.contains("GLYCO_DEVICE") {
        bail!("no journal entry with GLYCO_DEVICE=name:{DEVICE}");
    }
    let exposure = ssh_run(
        ssh,
        "systemd-analyze security glyco-hub --no-pager | tail -1",
    )
    .await?;
    say(&format!(
        "on the device: glyco-hub active; journal fields present; {}",
        exposure.trim()
    ));
    Ok(())
}

fn write_figures(args: &Args, figures: serde_json::Map<String, serde_json::Value>) -> Result<()> {
    if let Some(path) = &args.figures {
        let mut all = serde_json::Map::new();
        all.insert("arch".into(), args.arch.clone().into());
        all.extend(figures);
        std::fs::write(path, serde_json::to_string_pretty(&all)?)?;
    }
    Ok(())
}
