//! Gas per reading for anchoring, three ways, in one run on one anvil chain:
//! one anchor per reading, one per sealed batch, and the hub's way, one
//! Merkle root per anchoring window over many batches.
//!
//!     cargo bench -p glyco-gateway --bench seal_gas
//!
//! The workload is the hub's defaults under the memory benchmark's load:
//! 50 devices at one reading a second, batches of at most 500 readings or
//! 60 s, one root a minute. A minute is 3,000 readings: 6 batches (one root
//! over them). The Merkle and per-batch anchors are sent for real over
//! GLYCO_BENCH_MINUTES minutes (default 3); per-reading anchoring is sent for
//! real for the first GLYCO_BENCH_READING_SAMPLE readings (default 300:
//! every reading is the same call, so their mean gas is what each reading
//! costs; 9,000 transactions would only take longer).

use glyco_contracts::testkit::Consortium;
use glyco_contracts::testkit::accounts::{HOSPITAL, HUB, PATIENT, PHYSICIAN};
use glyco_contracts::{AnchorOutcome, B256, BatchAnchor, DataKinds, EntityKind, GlycoClient};
use glyco_seal::merkle_root;

const READINGS_PER_MINUTE: u64 = 3_000;
const BATCH: u64 = 500;

struct Tally {
    transactions: u64,
    gas: u64,
}

async fn anchor(
    client: &GlycoClient,
    patient: glyco_contracts::Address,
    root: [u8; 32],
    count: u32,
    tally: &mut Tally,
) {
    let batch = BatchAnchor {
        root: B256::from(root),
        window_start: 1_796_000_000,
        window_end: 1_796_000_060,
        count,
        kinds: DataKinds::GLUCOSE,
    };
    match client.anchor(patient, batch).await.unwrap() {
        AnchorOutcome::Anchored(tx) => {
            tally.transactions += 1;
            tally.gas += tx.gas_used;
        }
        AnchorOutcome::AlreadyAnchored(_) => panic!("a fresh root was already anchored"),
    }
}

fn leaf(kind: u8, minute: u64, index: u64) -> [u8; 32] {
    let mut input = vec![kind];
    input.extend_from_slice(&minute.to_be_bytes());
    input.extend_from_slice(&index.to_be_bytes());
    *blake3::hash(&input).as_bytes()
}

#[tokio::main]
async fn main() {
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    let minutes: u64 = std::env::var("GLYCO_BENCH_MINUTES")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(3);
    let sample: u64 = std::env::var("GLYCO_BENCH_READING_SAMPLE")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(300);
    let chain = Consortium::start().await.unwrap();
    chain
        .enrol_entity(HOSPITAL, EntityKind::Hospital, "St Luke's")
        .await
        .unwrap();
    chain.enrol_physician(PHYSICIAN, HOSPITAL).await.unwrap();
    chain.register_patient(PHYSICIAN, PATIENT).await.unwrap();
    chain.authorise_hub(PATIENT, HUB, false).await.unwrap();
    let hub = chain.client(HUB);
    let patient = chain.address(PATIENT);

    let (mut per_reading, mut per_batch, mut merkle) = (
        Tally {
            transactions: 0,
            gas: 0,
        },
        Tally {
            transactions: 0,
            gas: 0,
        },
        Tally {
            transactions: 0,
            gas: 0,
        },
    );
    for minute in 0..minutes {
        let batches: Vec<[u8; 32]> = (0..READINGS_PER_MINUTE / BATCH)
            .map(|b| leaf(1, minute, b))
            .collect();
        anchor(
            &hub,
            patient,
            merkle_root(&batches).unwrap(),
            READINGS_PER_MINUTE as u32,
            &mut merkle,
        )
        .await;
        for batch in &batches {
            anchor(&hub, patient, *batch, BATCH as u32, &mut per_batch).await;
        }
        for reading in 0..READINGS_PER_MINUTE {
            if per_reading.transactions >= sample {
                break;
            }
            anchor(&hub, patient, leaf(2, minute, reading), 1, &mut per_reading).await;
        }
    }
    let readings = minutes * READINGS_PER_MINUTE;
    // Per-reading anchoring covers only the readings it anchored.
    let per = |t: &Tally| {
        let covered = if std::ptr::eq(t, &per_reading) {
            t.transactions
        } else {
            readings
        };
        t.gas as f64 / covered as f64
    };
    println!(
        "| anchoring | readings | transactions | gas in all | gas per reading | × the Merkle way |"
    );
    println!("|---|---:|---:|---:|---:|---:|");
    for (name, tally) in [
        ("one anchor per reading", &per_reading),
        ("one anchor per batch (500 readings)", &per_batch),
        ("one Merkle root a minute (6 batches)", &merkle),
    ] {
        let covered = if std::ptr::eq(tally, &per_reading) {
            tally.transactions
        } else {
            readings
        };
        println!(
            "| {name} | {covered} | {} | {} | {:.1} | {:.0} |",
            tally.transactions,
            tally.gas,
            per(tally),
            per(tally) / per(&merkle)
        );
    }
    chain.devnet.stop().await.unwrap();
}
