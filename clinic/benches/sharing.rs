//! Re-encryption figures for docs/BENCHMARKS.md, in one run on one anvil
//! chain:
//!
//! 1. Re-encryptions per second on one core by the proxy's request path
//!    (the physician's EIP-712 signature recovered, kfrag looked up, grant,
//!    hub and anchor checked from the per-block chain view, the batch's hash,
//!    proof, format and hub signature checked, then umbral `reencrypt`),
//!    next to raw umbral-pre `reencrypt` of the same capsule and kfrag. The
//!    access's transaction is not in this loop: it is one per request, not
//!    per capsule, and the chain's figure is measured apart (the
//!    access-log benchmark in docs/BENCHMARKS.md).
//! 2. The time a physician takes to fetch (from a replica's files), verify
//!    and decrypt 24 h of one patient's 1-minute CGM readings through one
//!    proxy over iroh on loopback, access logged on chain, as the hub seals
//!    them by default (a batch a minute, a root a minute: 1,440 batches
//!    under 1,440 anchored roots, one access transaction for all of them).
//!
//!     cargo bench -p glyco-clinic --bench sharing
//!
//! GLYCO_BENCH_ITERATIONS (default 2000) sets the loop length of part 1,
//! GLYCO_BENCH_READS (default 5) the repetitions of part 2.

use std::sync::Arc;
use std::time::{Duration, Instant};

use glyco_clinic::physician::{ProxyPeer, Reader, sources};
use glyco_clinic::proxy::Proxy;
use glyco_clinic::proxy::kfrags::KfragStore;
use glyco_clinic::proxy::service::{Kfrags, ProxyService, Reencryption};
use glyco_clinic::replica::bind;
use glyco_clinic::store::{BatchMeta, HubCursor, ReplicaStore};
use glyco_contracts::keys::Signer as PrivateKeySigner;
use glyco_contracts::testkit::Consortium;
use glyco_contracts::testkit::accounts::{HOSPITAL, HUB, PATIENT, PHYSICIAN, PROXY};
use glyco_contracts::{
    AccessRequest, Address, B256, BatchAnchor, DataKinds, DeviceIdentity, EntityKind, Expiry,
    GrantScope, Role, UnixSeconds, roots_digest,
};
use glyco_seal::body::{BODY_VERSION, BatchBody};
use glyco_seal::reading::{Measurement, Reading, SeqOrigin, Transport};
use glyco_seal::replication::AnchorListing;
use glyco_seal::sharing::{
    BatchClaim, GrantTarget, HubMessage, HubSigned, KFRAG_ALPN, KfragAnswer, KfragDelivery,
    REENCRYPT_ALPN, ReencryptRequest,
};
use glyco_seal::{BatchHeader, InclusionProof, PatientKey, PhysicianKey, SealedBatch, merkle_root};
use iroh::protocol::Router;
use tokio::sync::Semaphore;

const MINUTES_PER_DAY: i64 = 1440;

fn env_number(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn cgm(minute: i64, start_ms: i64) -> Reading {
    let at = start_ms + minute * 60_000;
    Reading {
        device: DeviceIdentity::Name("cgm-bench".into()),
        transport: Transport::Mqtt,
        seq: minute as u64 + 1,
        seq_origin: SeqOrigin::Device,
        device_time: Some(at),
        received_at: at + 300,
        measurement: Measurement::CgmGlucose {
            mg_dl: 120.0 + 40.0 * ((minute as f64) / 90.0).sin(),
        },
        reported_unit: "mg/dL".into(),
        flags: Vec::new(),
    }
}

/// The day's readings, one every minute, in batches of `per_batch` (the hub
/// seals a single CGM's reading a minute as one batch by default).
fn seal_day(
    patient: Address,
    key: &PatientKey,
    hub: &PrivateKeySigner,
    per_batch: i64,
) -> Vec<(SealedBatch, Vec<u8>)> {
    let start_ms = UnixSeconds::now().get() as i64 * 1000 - MINUTES_PER_DAY * 60_000;
    (0..MINUTES_PER_DAY / per_batch)
        .map(|b| {
            let readings: Vec<(u64, Reading)> = (b * per_batch..(b + 1) * per_batch)
                .map(|minute| (minute as u64 + 1, cgm(minute, start_ms)))
                .collect();
            let first = readings[0].1.measured_at();
            let last = readings[readings.len() - 1].1.measured_at();
            let body = BatchBody {
                version: BODY_VERSION,
                readings,
                findings: Vec::new(),
                quarantined: Vec::new(),
            };
            let header = BatchHeader {
                patient,
                hub: hub.address(),
                batch_no: b as u64 + 1,
                first_journal_seq: (b * per_batch) as u64 + 1,
                last_journal_seq: ((b + 1) * per_batch) as u64,
                count: per_batch as u32,
                window_start_ms: first,
                window_end_ms: last,
                kinds: DataKinds::GLUCOSE.bits(),
                sealed_at_ms: last + 60_000,
                evidence: Vec::new(),
            };
            let sealed =
                SealedBatch::seal(header, &body.to_bytes().unwrap(), key.public(), hub).unwrap();
            let blob = sealed.to_bytes().unwrap();
            (sealed, blob)
        })
        .collect()
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let iterations = env_number("GLYCO_BENCH_ITERATIONS", 2000);
    let reads = env_number("GLYCO_BENCH_READS", 5);
    let per_batch = env_number("GLYCO_BENCH_BATCH_MINUTES", 1).clamp(1, 60) as i64;
    let dir = tempfile::tempdir().unwrap();
    let c = Consortium::start().await.unwrap();
    c.enrol_entity(HOSPITAL, EntityKind::Hospital, "St Luke's")
        .await
        .unwrap();
    c.enrol_physician(PHYSICIAN, HOSPITAL).await.unwrap();
    c.register_patient(PHYSICIAN, PATIENT).await.unwrap();
    c.authorise_hub(PATIENT, HUB, false).await.unwrap();
    let patient = c.address(PATIENT);
    let (patient_key, _) = PatientKey::load_or_create(&dir.path().join("patient.umbral")).unwrap();
    c.client(HUB)
        .set_patient_pre_key(patient, &patient_key.public_bytes())
        .await
        .unwrap();
    let (doctor_key, _) = PhysicianKey::load_or_create(&dir.path().join("doctor.umbral")).unwrap();
    c.client(PHYSICIAN)
        .set_physician_pre_key(&doctor_key.public_bytes())
        .await
        .unwrap();
    let proxy_node = iroh::SecretKey::generate();
    c.client(HOSPITAL)
        .offer_proxy(
            c.address(PROXY),
            B256::from(*proxy_node.public().as_bytes()),
        )
        .await
        .unwrap();
    c.client(PROXY)
        .accept_role(c.address(HOSPITAL), Role::Proxy)
        .await
        .unwrap();
    let policy = B256::repeat_byte(0x77);
    let (_, grant_id) = c
        .client(PATIENT)
        .grant(
            c.address(PHYSICIAN),
            policy,
            GrantScope {
                kinds: DataKinds::GLUCOSE,
                data_from: 0,
                data_until: None,
            },
            Expiry::Never,
        )
        .await
        .unwrap();

    // A day of batches, each under its own anchored root (the hub's
    // one-minute anchoring of one batch), kept as a replica keeps them.
    let hub = c.signer(HUB);
    let day = seal_day(patient, &patient_key, &hub, per_batch);
    let replica = ReplicaStore::open(&dir.path().join("replica")).unwrap();
    for (no, (sealed, blob)) in day.iter().enumerate() {
        let hash = *blake3::hash(blob).as_bytes();
        let root = merkle_root(&[hash]).unwrap();
        let proof = InclusionProof::all(&[hash]).unwrap().remove(0);
        let seconds = |ms: i64| (ms / 1000) as u64;
        c.client(HUB)
            .anchor(
                patient,
                BatchAnchor {
                    root: B256::from(root),
                    window_start: seconds(sealed.header.window_start_ms),
                    window_end: seconds(sealed.header.window_end_ms),
                    count: per_batch as u32,
                    kinds: DataKinds::GLUCOSE,
                },
            )
            .await
            .unwrap();
        replica.put_blob(&hash, blob).unwrap();
        let meta = BatchMeta {
            hub: hub.address(),
            patient,
            batch_no: no as u64 + 1,
            hash: glyco_seal::hexcode::hex(&hash),
            cid: glyco_seal::BlobCid(hash).to_string(),
            bytes: blob.len() as u64,
            first_journal_seq: sealed.header.first_journal_seq,
            last_journal_seq: sealed.header.last_journal_seq,
            count: per_batch as u32,
            fetched_at_ms: 0,
            anchor: Some(AnchorListing {
                anchor_no: no as u64 + 1,
                root: glyco_seal::hexcode::hex(&root),
                proof,
            }),
        };
        replica.put_meta(&meta, &hash).unwrap();
    }
    let n = day.len() as u64;
    replica
        .put_cursor(
            hub.address(),
            &HubCursor {
                stored_through: n,
                proven_through: n,
                hub_newest: n,
            },
        )
        .unwrap();

    // The proxy, with the grant's kfrag delivered as the hub delivers it.
    let (store, _) = KfragStore::open(&dir.path().join("kfrags"), 1000).unwrap();
    let url: glyco_contracts::RpcUrl = c.devnet.rpc_url();
    let proxy = Arc::new(Proxy::new(
        c.address(PROXY),
        c.client(PROXY),
        glyco_contracts::GlycoClient::read_only(url, c.deployment.clone()),
        store,
    ));
    let kfrag = glyco_seal::sharing::make_kfrags(
        &patient_key,
        GrantTarget {
            grant_id,
            policy_id: policy,
            grantee: c.address(PHYSICIAN),
            grantee_key: doctor_key.public(),
        },
        1,
        1,
    )
    .unwrap()
    .remove(0);
    let delivery = KfragDelivery {
        patient,
        hub: hub.address(),
        grantee: c.address(PHYSICIAN),
        grant_id,
        policy_id: policy,
        proxy: c.address(PROXY),
        threshold: 1,
        shares: 1,
        verifying_key: patient_key
            .kfrag_signer()
            .verifying_key()
            .to_compressed_bytes()
            .into_vec(),
        kfrag: kfrag.clone().unverify(),
    };
    let kept = proxy
        .on_hub_message(HubMessage::Deliver(Box::new(
            HubSigned::sign(delivery, &hub).unwrap(),
        )))
        .await;
    assert_eq!(kept, KfragAnswer::Kept);

    // 1. The proxy's path per capsule against raw umbral on one core.
    let (sealed, blob) = &day[0];
    let hash = *blake3::hash(blob).as_bytes();
    let root = B256::from(merkle_root(&[hash]).unwrap());
    let request = AccessRequest {
        patient,
        physician: c.address(PHYSICIAN),
        proxy: c.address(PROXY),
        data_id: roots_digest(&[root]),
        nonce: glyco_contracts::U256::from(1u64),
        deadline: UnixSeconds::now().plus(Duration::from_secs(1800)),
    };
    let signed = request
        .sign(
            &c.signer(PHYSICIAN),
            c.deployment.chain_id,
            c.deployment.contracts.access_log,
        )
        .unwrap();
    let request = ReencryptRequest {
        access: signed,
        roots: vec![root],
        batches: vec![BatchClaim {
            blob: blob.clone(),
            proof: InclusionProof::all(&[hash]).unwrap().remove(0),
        }],
    };
    let warm = proxy.authorise(&request).await.unwrap();
    let _ = Proxy::reencrypt(&warm);
    let started = Instant::now();
    for _ in 0..iterations {
        let authorised = proxy.authorise(&request).await.unwrap();
        std::hint::black_box(glyco_seal::sharing::reencrypt(
            &authorised.capsules[0],
            &authorised.held.kfrag,
        ));
    }
    let one_batch = started.elapsed();
    let started = Instant::now();
    for _ in 0..iterations {
        std::hint::black_box(umbral_pre::reencrypt(&sealed.capsule, kfrag.clone()));
    }
    let raw = started.elapsed();
    let started = Instant::now();
    for _ in 0..iterations {
        std::hint::black_box(SealedBatch::from_bytes(blob).unwrap());
    }
    let decode = started.elapsed();
    // A day in one request: the checks per request are paid once.
    let all: Vec<(B256, BatchClaim)> = day
        .iter()
        .map(|(_, blob)| {
            let hash = *blake3::hash(blob).as_bytes();
            let root = B256::from(merkle_root(&[hash]).unwrap());
            (
                root,
                BatchClaim {
                    blob: blob.clone(),
                    proof: InclusionProof::all(&[hash]).unwrap().remove(0),
                },
            )
        })
        .collect();
    let roots: Vec<B256> = all.iter().map(|(r, _)| *r).collect();
    let day_request = AccessRequest {
        data_id: roots_digest(&roots),
        nonce: glyco_contracts::U256::from(2u64),
        ..request.access.request
    }
    .sign(
        &c.signer(PHYSICIAN),
        c.deployment.chain_id,
        c.deployment.contracts.access_log,
    )
    .unwrap();
    let day_request = ReencryptRequest {
        access: day_request,
        roots,
        batches: all.into_iter().map(|(_, claim)| claim).collect(),
    };
    let _ = proxy.authorise(&day_request).await.unwrap();
    let rounds = (iterations / day.len()).max(2);
    let started = Instant::now();
    for _ in 0..rounds {
        let authorised = proxy.authorise(&day_request).await.unwrap();
        for capsule in &authorised.capsules {
            std::hint::black_box(glyco_seal::sharing::reencrypt(
                capsule,
                &authorised.held.kfrag,
            ));
        }
    }
    let day_path = started.elapsed();
    let per_second = |d: Duration, n: usize| n as f64 / d.as_secs_f64();
    let raw_rate = per_second(raw, iterations);
    println!("re-encryptions per second on one core:");
    println!(
        "  raw umbral-pre reencrypt                       {:>7.0}/s",
        raw_rate
    );
    let one = per_second(one_batch, iterations);
    println!(
        "  proxy, requests of one batch, every check      {:>7.0}/s  ({:.0} % of raw)",
        one,
        100.0 * one / raw_rate
    );
    println!(
        "  decoding a batch from the network alone        {:>7.0}/s  (umbral checks the capsule)",
        per_second(decode, iterations)
    );
    let whole = per_second(day_path, rounds * day.len());
    println!(
        "  proxy, a day ({} batches) in one request    {:>7.0}/s  ({:.0} % of raw)",
        day.len(),
        whole,
        100.0 * whole / raw_rate
    );

    // 2. A physician reads a day through the proxy over iroh.
    let endpoint = bind(proxy_node, "127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    let service = ProxyService {
        proxy: proxy.clone(),
        in_flight: Arc::new(Semaphore::new(8)),
    };
    let router = Router::builder(endpoint.clone())
        .accept(KFRAG_ALPN, Kfrags(service.clone()))
        .accept(REENCRYPT_ALPN, Reencryption(service))
        .spawn();
    let peer = ProxyPeer {
        address: c.address(PROXY),
        addr: endpoint.bound_sockets()[0],
    };
    let physician_endpoint = bind(iroh::SecretKey::generate(), "127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    let doctor = c.client(PHYSICIAN);
    let mut times = Vec::new();
    for _ in 0..reads {
        let started = Instant::now();
        let batches = sources::from_replica(&replica, patient).unwrap();
        let reader = Reader {
            endpoint: &physician_endpoint,
            chain: &doctor,
            key: &doctor_key,
            proxies: std::slice::from_ref(&peer),
            threshold: 1,
        };
        let opened = reader.open(patient, batches).await.unwrap();
        times.push(started.elapsed());
        assert_eq!(opened.readings.len(), MINUTES_PER_DAY as usize);
        assert_eq!(opened.accesses.len(), 1);
    }
    times.sort();
    println!(
        "physician reads 24 h of 1-minute CGM ({} batches of {per_batch} under {} roots, one access):",
        day.len(),
        day.len()
    );
    println!(
        "  median {:.0} ms, best {:.0} ms, worst {:.0} ms over {reads} reads",
        times[times.len() / 2].as_secs_f64() * 1000.0,
        times[0].as_secs_f64() * 1000.0,
        times[times.len() - 1].as_secs_f64() * 1000.0
    );
    router.shutdown().await.ok();
    physician_endpoint.close().await;
}
