//! The clinic side with real processes: anvil, the hub, two re-encryption
//! proxies and a replica (`glyco-clinic`), and the physician's CLI.
//!
//! A granted physician reads through the proxies (2 of 2, then 1 of 2 with a
//! proxy killed), every access is in the on-chain log under the right
//! accessor, and the FHIR export passes an independent validator
//! (fhir.resources). A never-granted physician, a forged, replayed or
//! wrongly signed request, a tampered blob and a revoked physician get
//! nothing. Emergency access works inside its window and is refused after
//! it; the family's shares open the offline emergency kit at the replica,
//! fewer than the threshold or a wrong share do not, and a new split
//! invalidates the old shares.

mod support;

use std::path::{Path, PathBuf};
use std::time::Duration;

use glyco_clinic::physician::{ProxyPeer, exchange, proxy_endpoint};
use glyco_clinic::store::ReplicaStore;
use glyco_contracts::testkit::accounts::*;
use glyco_contracts::{
    AccessAction, AccessRequest, Address, B256, DataKinds, EmergencyPolicy, EntityKind, Expiry,
    GrantScope, U256, UnixSeconds,
};
use glyco_seal::sharing::{
    BatchClaim, ProxyRefusal, REENCRYPT_ALPN, ReencryptAnswer, ReencryptRequest,
};
use support::clinic::{ClinicProcess, ProxyNode, clinic};
use support::{HubWorld, free_udp_port, now_ms};

struct Clinic {
    world: HubWorld,
    keys: PathBuf,
    proxies: Vec<ProxyNode>,
}

impl Clinic {
    fn path(&self, name: &str) -> PathBuf {
        self.world.dir.path().join(name)
    }

    /// Entries in the patient's on-chain access log.
    async fn access_count(&self) -> u64 {
        self.world
            .client(ADMIN)
            .access_count(self.world.patient())
            .await
            .unwrap()
    }

    fn key_file(&self, account: u32) -> String {
        support::clinic::key_file(&self.world, &self.keys, account)
    }

    async fn run(&self, args: &[&str]) -> (bool, String, String) {
        support::clinic::clinic_on_chain(&self.world, args).await
    }

    /// Enrols `account` as a proxy of the hospital.
    async fn enrol_proxy(&mut self, account: u32) {
        let dir = self.path(&format!("proxy-{account}"));
        let node = ProxyNode::enrol(&self.world, account, dir).await;
        self.proxies.push(node);
    }

    async fn start_proxy(&self, i: usize) -> ClinicProcess {
        let node = &self.proxies[i];
        let log = self.path(&format!("proxy-{}-{}.log", node.account, now_ms()));
        node.start(&self.world, &self.keys, log).await
    }

    fn proxy_arg(&self, i: usize) -> String {
        self.proxies[i].arg(&self.world)
    }

    fn peer(&self, i: usize) -> ProxyPeer {
        self.proxy_arg(i).parse().unwrap()
    }

    /// A physician's machine: umbral key made and published on chain.
    async fn physician(&self, account: u32) -> PathBuf {
        let dir = self.path(&format!("physician-{account}"));
        support::clinic::physician_machine(&self.world, dir, &self.keys, account).await
    }

    /// `physician read` from the replica through `proxies`.
    async fn read(
        &self,
        account: u32,
        dir: &Path,
        source: &[&str],
        proxies: &[usize],
        threshold: usize,
        extra: &[&str],
    ) -> (bool, String, String) {
        let key = self.key_file(account);
        let patient = format!("{:#x}", self.world.patient());
        let threshold = threshold.to_string();
        let mut args = vec![
            "physician",
            "read",
            "--dir",
            dir.to_str().unwrap(),
            "--key",
            &key,
            "--patient",
            &patient,
            "--threshold",
            &threshold,
        ];
        args.extend_from_slice(source);
        let proxy_args: Vec<String> = proxies.iter().map(|&i| self.proxy_arg(i)).collect();
        for p in &proxy_args {
            args.push("--proxy");
            args.push(p);
        }
        args.extend_from_slice(extra);
        self.run(&args).await
    }
}

async fn clinic_world(proxies: &[u32], threshold: u32) -> Clinic {
    let mut world = HubWorld::new().await;
    let keys = world.dir.path().join("keys");
    std::fs::create_dir_all(&keys).unwrap();
    let hub_port = free_udp_port();
    world.edit_config(|c| {
        c.seal.max_batch_readings = 10;
        c.seal.max_batch_wait_secs = 1;
        c.seal.anchor_interval_secs = 1;
        c.seal.max_batches_per_anchor = 3;
        c.seal.iroh_listen = format!("127.0.0.1:{hub_port}").parse().unwrap();
        c.seal.share_poll_secs = 1;
        c.limits.max_publishes_per_second = 1000;
    });
    let mut clinic = Clinic {
        world,
        keys,
        proxies: Vec::new(),
    };
    for &p in proxies {
        clinic.enrol_proxy(p).await;
    }
    let targets: Vec<String> = (0..proxies.len()).map(|i| clinic.proxy_arg(i)).collect();
    clinic.world.edit_config(|c| {
        c.seal.proxies = targets;
        c.seal.proxy_threshold = threshold;
    });
    clinic
}

fn value_of(seq: u64) -> f64 {
    80.0 + (seq % 150) as f64
}

async fn stream(hub: &support::Hub, secret: &str, seqs: std::ops::RangeInclusive<u64>) {
    support::stream_cgm(hub, "cgm-share", secret, seqs, value_of).await;
}

async fn wait_all_anchored(hub: &support::Hub, readings: u64) {
    hub.wait_for_within(Duration::from_secs(60), "every reading anchored", |r| {
        r.seal.readings_sealed >= readings
            && r.seal.readings_unsealed == 0
            && r.seal.batches_anchored == r.seal.batches_sealed
    })
    .await;
}

async fn start_replica(c: &Clinic, hub: &support::Hub, entity: u32) -> (ClinicProcess, PathBuf) {
    let dir = c.path("replica");
    let d = dir.to_str().unwrap().to_owned();
    let key = c.key_file(entity);
    let (ok, _, err) = c
        .run(&["enrol-node", "--dir", &d, "--entity-key", &key])
        .await;
    assert!(ok, "{err}");
    let report = hub
        .wait_for("the iroh node", |r| r.seal.node_id.is_some())
        .await;
    let peer = format!(
        "{}@{}",
        report.seal.node_id.unwrap(),
        c.world.config.seal.iroh_listen
    );
    let log = c.path("replica.log");
    let p = ClinicProcess::start(
        &["replica", "--dir", &d, "--hub", &peer, "--poll-ms", "200"],
        log,
    )
    .await;
    (p, dir)
}

/// Waits until the replica has every batch the hub anchored.
async fn wait_replicated(dir: &Path, hub: &support::Hub, hub_address: Address) {
    let anchored = hub.status().await.unwrap().seal.batches_anchored;
    let store = ReplicaStore::open(dir).unwrap();
    for _ in 0..300 {
        if store.cursor(hub_address).unwrap().proven_through >= anchored {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("the replica did not get {anchored} anchored batches");
}

fn opened_count(stdout: &str) -> u64 {
    stdout
        .lines()
        .find_map(|l| l.strip_prefix("opened "))
        .and_then(|l| l.split(": ").nth(1))
        .and_then(|l| l.split(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no 'opened' line in {stdout}"))
}

/// A request to proxy `i` for the first anchored root, signed by `signer`.
async fn direct_request(
    c: &Clinic,
    replica: &Path,
    physician: u32,
    signer: u32,
    i: usize,
) -> (ReencryptRequest, iroh::EndpointAddr) {
    let store = ReplicaStore::open(replica).unwrap();
    let batches =
        glyco_clinic::physician::sources::from_replica(&store, c.world.patient()).unwrap();
    let first = &batches[0];
    let request = AccessRequest {
        patient: c.world.patient(),
        physician: c.world.consortium.address(physician),
        proxy: c.world.consortium.address(c.proxies[i].account),
        data_id: glyco_contracts::roots_digest(&[first.root]),
        nonce: U256::from(now_ms() as u64),
        deadline: UnixSeconds::now().plus(Duration::from_secs(600)),
    };
    let deployment = &c.world.consortium.deployment;
    let signed = request
        .sign(
            &c.world.consortium.signer(signer),
            deployment.chain_id,
            deployment.contracts.access_log,
        )
        .unwrap();
    let to = proxy_endpoint(&c.world.client(ADMIN), &c.peer(i))
        .await
        .unwrap();
    (
        ReencryptRequest {
            access: signed,
            roots: vec![first.root],
            batches: vec![BatchClaim {
                blob: first.blob.clone(),
                proof: first.proof.clone(),
            }],
        },
        to,
    )
}

async fn ask(to: &iroh::EndpointAddr, request: &ReencryptRequest) -> ReencryptAnswer {
    let endpoint =
        glyco_clinic::replica::bind(iroh::SecretKey::generate(), "127.0.0.1:0".parse().unwrap())
            .await
            .unwrap();
    let answer = exchange(&endpoint, to.clone(), REENCRYPT_ALPN, request)
        .await
        .unwrap();
    endpoint.close().await;
    answer
}

fn refusal(answer: ReencryptAnswer) -> ProxyRefusal {
    match answer {
        ReencryptAnswer::Refused { reason } => reason,
        ReencryptAnswer::Reencrypted(_) => panic!("the proxy re-encrypted"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn physicians_read_only_what_they_were_granted_through_the_proxies() {
    let mut c = clinic_world(&[PROXY, SECOND_PROXY], 2).await;
    let consortium = &c.world.consortium;
    consortium.enrol_physician(LOCUM, HOSPITAL).await.unwrap();
    let secret = c.world.register("cgm-share", "cgm").await;
    let proxy_one = c.start_proxy(0).await;
    let proxy_two = c.start_proxy(1).await;
    let hub = c.world.start_hub().await;
    hub.wait_registered("cgm-share").await;
    stream(&hub, &secret, 1..=40).await;
    wait_all_anchored(&hub, 40).await;

    // The patient grants the physician glucose for an hour.
    let doctor = c.physician(PHYSICIAN).await;
    let (_, grant) = c
        .world
        .client(PATIENT)
        .grant(
            c.world.consortium.address(PHYSICIAN),
            B256::repeat_byte(0x51),
            GrantScope {
                kinds: DataKinds::GLUCOSE,
                data_from: 0,
                data_until: None,
            },
            Expiry::after(Duration::from_secs(3600)),
        )
        .await
        .unwrap();
    hub.wait_for("the grant's kfrags at both proxies", |r| {
        r.seal
            .sharing
            .as_ref()
            .is_some_and(|s| s.delivered_grants == 1)
    })
    .await;
    let hub_address = c.world.consortium.address(HUB);
    let (_replica, replica) = start_replica(&c, &hub, HOSPITAL).await;
    wait_replicated(&replica, &hub, hub_address).await;
    let source = ["--replica", replica.to_str().unwrap()];

    // 2 of 2: both proxies re-encrypt, the physician opens every reading.
    let fhir = c.path("bundle.json");
    let (ok, out, err) = c
        .read(
            PHYSICIAN,
            &doctor,
            &source,
            &[0, 1],
            2,
            &["--fhir", fhir.to_str().unwrap(), "--rows", "100"],
        )
        .await;
    assert!(ok, "{out}{err}");
    assert_eq!(opened_count(&out), 40, "{out}");
    for seq in [1u64, 17, 40] {
        assert!(
            out.contains(&format!("{:.0} mg/dL", value_of(seq))),
            "reading {seq} missing:\n{out}"
        );
    }
    assert!(out.contains("time in ranges"), "{out}");
    // Every access is on chain, with the physician as accessor and each proxy.
    let log = c
        .world
        .client(ADMIN)
        .access_log_of(c.world.patient(), 0)
        .await
        .unwrap();
    let reported = out.matches("in the patient's on-chain log").count();
    assert_eq!(log.len(), reported, "{out}");
    assert!(log.len() >= 2);
    for entry in &log {
        assert_eq!(entry.physician, c.world.consortium.address(PHYSICIAN));
        assert_eq!(entry.grant_id, grant);
        assert_eq!(entry.action, Some(AccessAction::Read));
    }
    for proxy in [PROXY, SECOND_PROXY] {
        assert!(
            log.iter()
                .any(|e| e.proxy == c.world.consortium.address(proxy))
        );
    }
    // An independent FHIR validator accepts the export.
    let python = Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/python/.venv/bin/python");
    let checker = Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/python/validate_fhir.py");
    let checked = std::process::Command::new(&python)
        .arg(&checker)
        .arg(&fhir)
        .output()
        .unwrap_or_else(|e| panic!("{}: {e} (run scripts/bootstrap.sh)", python.display()));
    let verdict = String::from_utf8_lossy(&checked.stdout);
    assert!(
        checked.status.success(),
        "{verdict}{}",
        String::from_utf8_lossy(&checked.stderr)
    );
    assert!(
        verdict.starts_with("valid collection 40 {\"99504-3\": 40}"),
        "{verdict}"
    );

    // A physician the patient never granted gets nothing.
    let locum = c.physician(LOCUM).await;
    let (ok, out, err) = c.read(LOCUM, &locum, &source, &[0, 1], 1, &[]).await;
    assert!(!ok, "{out}");
    assert!(err.contains("holds no kfrag"), "{err}");

    // Forged, replayed and wrongly signed requests are refused.
    let (request, to) = direct_request(&c, &replica, PHYSICIAN, STRANGER, 0).await;
    assert!(matches!(
        refusal(ask(&to, &request).await),
        ProxyRefusal::WrongSigner { .. }
    ));
    let (mut forged, to) = direct_request(&c, &replica, PHYSICIAN, PHYSICIAN, 0).await;
    forged.access.request.patient = c.world.consortium.address(SECOND_PATIENT);
    assert!(matches!(
        refusal(ask(&to, &forged).await),
        ProxyRefusal::WrongSigner { .. }
    ));
    let (good, to) = direct_request(&c, &replica, PHYSICIAN, PHYSICIAN, 0).await;
    assert!(matches!(
        ask(&to, &good).await,
        ReencryptAnswer::Reencrypted(_)
    ));
    assert_eq!(refusal(ask(&to, &good).await), ProxyRefusal::NonceUsed);
    // A tampered blob: the physician's reader stops before asking anyone,
    // and a proxy asked directly refuses it.
    let (mut tampered, to) = direct_request(&c, &replica, PHYSICIAN, PHYSICIAN, 0).await;
    let last = tampered.batches[0].blob.len() - 1;
    tampered.batches[0].blob[last] ^= 1;
    assert!(matches!(
        refusal(ask(&to, &tampered).await),
        ProxyRefusal::BadBatch { .. }
    ));
    let copy = c.path("tampered-replica");
    copy_dir(&replica, &copy);
    let blob = std::fs::read_dir(copy.join("blobs"))
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    let mut bytes = std::fs::read(&blob).unwrap();
    bytes[20] ^= 0x40;
    std::fs::write(&blob, bytes).unwrap();
    let before = c.access_count().await;
    let (ok, out, err) = c
        .read(
            PHYSICIAN,
            &doctor,
            &["--replica", copy.to_str().unwrap()],
            &[0, 1],
            2,
            &[],
        )
        .await;
    assert!(!ok, "{out}");
    assert!(
        err.contains("does not lead to the anchored root") || err.contains("not a sealed batch"),
        "{err}"
    );
    assert_eq!(
        c.access_count().await,
        before,
        "nothing was logged for the tampered read"
    );

    // One of two proxies killed: 2 of 2 fails clearly...
    proxy_two.kill().await;
    let (ok, out, err) = c.read(PHYSICIAN, &doctor, &source, &[0, 1], 2, &[]).await;
    assert!(!ok, "{out}");
    assert!(err.contains("only 1 of 2 proxies"), "{err}");
    // ...and with the hub sharing 1 of 2, the live proxy is enough.
    hub.terminate().await;
    c.world.edit_config(|cfg| cfg.seal.proxy_threshold = 1);
    let hub = c.world.start_hub().await;
    let proxy_address = format!("{}", c.world.consortium.address(PROXY));
    for _ in 0..300 {
        if hub.log_text().contains("kfrag delivered")
            && hub.log_text().contains(&proxy_address[..10])
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let (ok, out, err) = c.read(PHYSICIAN, &doctor, &source, &[1, 0], 1, &[]).await;
    assert!(ok, "{out}{err}\nhub log:\n{}", hub.log_text());
    assert_eq!(opened_count(&out), 40);

    // The patient revokes: the next block's access is refused even at a
    // proxy that still holds the kfrag; the hub has every proxy drop it, and
    // readings sealed afterwards are out of the physician's reach.
    c.world
        .client(PATIENT)
        .revoke(c.world.consortium.address(PHYSICIAN))
        .await
        .unwrap();
    let (request, to) = direct_request(&c, &replica, PHYSICIAN, PHYSICIAN, 0).await;
    let refused = refusal(ask(&to, &request).await);
    assert!(
        matches!(refused, ProxyRefusal::NoLiveGrant | ProxyRefusal::NoKfrag),
        "{refused:?}"
    );
    // The live proxy drops its share (told by the hub, or by its own sweep).
    let kept = c.proxies[0]
        .dir
        .join("kfrags")
        .join(format!("{grant}.cbor"));
    for _ in 0..300 {
        if !kept.exists() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        !kept.exists(),
        "the proxy still keeps the revoked grant's kfrag"
    );
    stream(&hub, &secret, 41..=60).await;
    wait_all_anchored(&hub, 60).await;
    wait_replicated(&replica, &hub, hub_address).await;
    let before = c.access_count().await;
    let (ok, out, err) = c
        .read(
            PHYSICIAN,
            &doctor,
            &source,
            &[0],
            1,
            &["--since-hours", "1"],
        )
        .await;
    assert!(!ok, "{out}");
    assert!(
        err.contains("holds no kfrag") || err.contains("no live grant"),
        "{err}"
    );
    assert_eq!(c.access_count().await, before);
    proxy_one.kill().await;
    drop(c);
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), target).unwrap();
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn emergency_access_ends_with_its_window_and_family_shares_open_the_offline_kit() {
    let c = clinic_world(&[PROXY], 1).await;
    let consortium = &c.world.consortium;
    consortium
        .enrol_entity(
            EMERGENCY_SERVICE,
            EntityKind::EmergencyService,
            "City Ambulance",
        )
        .await
        .unwrap();
    consortium
        .enrol_physician(PARAMEDIC, EMERGENCY_SERVICE)
        .await
        .unwrap();
    // The patient's emergency policy: glucose of the last day, for 25 s.
    c.world
        .client(PATIENT)
        .set_emergency_policy(EmergencyPolicy {
            kinds: DataKinds::GLUCOSE,
            max_duration_secs: 25,
            lookback_secs: 86_400,
            enabled: true,
        })
        .await
        .unwrap();
    let secret = c.world.register("cgm-share", "cgm").await;
    let _proxy = c.start_proxy(0).await;
    let hub = c.world.start_hub().await;
    hub.wait_registered("cgm-share").await;
    stream(&hub, &secret, 1..=20).await;
    wait_all_anchored(&hub, 20).await;

    // The paramedic opens emergency access (no patient signature) and reads
    // straight from the hub (its machine enrolled by the ambulance service).
    let medic = c.physician(PARAMEDIC).await;
    let (ok, out, err) = clinic(&["physician", "init", "--dir", medic.to_str().unwrap()]).await;
    assert!(ok, "{err}");
    let node: iroh::EndpointId = out
        .lines()
        .find_map(|l| l.strip_prefix("iroh node "))
        .unwrap()
        .parse()
        .unwrap();
    consortium
        .client(EMERGENCY_SERVICE)
        .enrol_node(B256::from(*node.as_bytes()))
        .await
        .unwrap();
    let key = c.key_file(PARAMEDIC);
    let patient = format!("{:#x}", c.world.patient());
    let (ok, out, err) = c
        .run(&[
            "physician",
            "emergency-access",
            "--key",
            &key,
            "--patient",
            &patient,
        ])
        .await;
    assert!(ok, "{out}{err}");
    let opened_at = std::time::Instant::now();
    hub.wait_for("the patient told of the emergency access", |r| {
        r.emergency_accesses
            .iter()
            .any(|e| e.physician == consortium.address(PARAMEDIC))
    })
    .await;
    hub.wait_for("the emergency grant's kfrags at the proxy", |r| {
        r.seal
            .sharing
            .as_ref()
            .is_some_and(|s| s.delivered_grants == 1)
    })
    .await;
    let report = hub.status().await.unwrap();
    let hub_peer = format!(
        "{}@{}",
        report.seal.node_id.unwrap(),
        c.world.config.seal.iroh_listen
    );
    let source = ["--hub", hub_peer.as_str()];
    let (ok, out, err) = c.read(PARAMEDIC, &medic, &source, &[0], 1, &[]).await;
    assert!(ok, "{out}{err}");
    assert_eq!(opened_count(&out), 20);
    let log = c
        .world
        .client(ADMIN)
        .access_log_of(c.world.patient(), 0)
        .await
        .unwrap();
    assert!(!log.is_empty());
    assert!(
        log.iter()
            .all(|e| e.physician == consortium.address(PARAMEDIC)
                && e.action == Some(AccessAction::EmergencyRead))
    );

    // After the window: refused, on chain and by the proxy's sweep.
    let window = Duration::from_secs(27);
    if let Some(left) = window.checked_sub(opened_at.elapsed()) {
        tokio::time::sleep(left).await;
    }
    let (ok, out, err) = c.read(PARAMEDIC, &medic, &source, &[0], 1, &[]).await;
    assert!(!ok, "{out}");
    assert!(
        err.contains("no live grant") || err.contains("holds no kfrag"),
        "{err}"
    );

    // The offline kit: made on the hub, kept at the replica, opened with
    // two of three family shares.
    let (_replica, replica) = start_replica(&c, &hub, HOSPITAL).await;
    let profile = c.path("profile.txt");
    std::fs::write(
        &profile,
        "Type 1 since 2009; basal 18 U glargine; penicillin allergy",
    )
    .unwrap();
    let shares = c.path("shares");
    let make_kit = || async {
        let out = c
            .world
            .hub_cli(&[
                "emergency-kit",
                "--threshold",
                "2",
                "--shares",
                "3",
                "--profile",
                profile.to_str().unwrap(),
                "--out",
                shares.to_str().unwrap(),
            ])
            .await;
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        std::fs::read_to_string(shares.join("share-1.txt")).unwrap()
    };
    let first_share = make_kit().await;
    let kit = replica
        .join("hubs")
        .join(format!("{:#x}", consortium.address(HUB)))
        .join("emergency.kit");
    let kept = |expected_share: &str| {
        let kit = kit.clone();
        let expected = expected_share.to_owned();
        async move {
            for _ in 0..300 {
                if let Ok(bytes) = std::fs::read(&kit)
                    && let Ok(k) = glyco_seal::emergency::EmergencyKit::from_bytes(&bytes)
                    && expected.contains(&format!(":{}:", k.header.generation))
                {
                    return;
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            panic!("the replica did not keep the kit");
        }
    };
    kept(&first_share).await;
    let share = |n: u32| {
        shares
            .join(format!("share-{n}.txt"))
            .to_string_lossy()
            .into_owned()
    };
    let kit_arg = kit.to_str().unwrap().to_owned();
    let open = |list: Vec<String>| {
        let kit_arg = kit_arg.clone();
        async move {
            let mut args = vec!["emergency-open".to_owned(), "--kit".into(), kit_arg];
            for s in list {
                args.push("--share".into());
                args.push(s);
            }
            let refs: Vec<&str> = args.iter().map(String::as_str).collect();
            clinic(&refs).await
        }
    };
    let (ok, out, err) = open(vec![share(1), share(3)]).await;
    assert!(ok, "{err}");
    assert!(out.contains("penicillin allergy"), "{out}");
    assert!(out.contains(&format!("{:.0} mg/dL", value_of(20))), "{out}");
    // The QR code carries the same share (read by zbarimg, not our code).
    let qr = std::process::Command::new("zbarimg")
        .args(["--raw", "-q"])
        .arg(shares.join("share-2.png"))
        .output()
        .expect("zbarimg (scripts/bootstrap.sh installs zbar-tools)");
    let decoded = String::from_utf8_lossy(&qr.stdout).trim().to_owned();
    assert_eq!(decoded, std::fs::read_to_string(share(2)).unwrap().trim());
    let (ok, out, _) = open(vec![decoded.clone(), share(1)]).await;
    assert!(ok, "{out}");
    // Fewer than two shares reveal nothing; a wrong share is named.
    let (ok, _, err) = open(vec![share(2)]).await;
    assert!(!ok);
    assert!(err.contains("2 needed"), "{err}");
    let mut wrong = std::fs::read_to_string(share(3)).unwrap();
    let fields: Vec<&str> = wrong.trim().split(':').collect();
    let mut value: Vec<char> = fields[5].chars().collect();
    value[10] = if value[10] == '0' { '1' } else { '0' };
    let value: String = value.into_iter().collect();
    let body = [&fields[..5], &[value.as_str()]].concat().join(":");
    let check = &blake3::hash(body.as_bytes()).to_hex()[..8];
    wrong = format!("{body}:{check}");
    let (ok, _, err) = open(vec![share(1), wrong]).await;
    assert!(!ok);
    assert!(err.contains("share 3 is wrong"), "{err}");
    // A family change: split again; the old shares no longer open it.
    let old = [
        std::fs::read_to_string(share(1)).unwrap(),
        std::fs::read_to_string(share(2)).unwrap(),
    ];
    tokio::time::sleep(Duration::from_millis(5)).await;
    let new_first = make_kit().await;
    assert_ne!(new_first, first_share);
    kept(&new_first).await;
    let (ok, _, err) = open(old.iter().map(|s| s.trim().to_owned()).collect()).await;
    assert!(!ok);
    assert!(err.contains("split again"), "{err}");
    let (ok, _, err) = open(vec![share(2), share(3)]).await;
    assert!(ok, "{err}");
}
