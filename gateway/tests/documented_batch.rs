//! docs/BATCH.md's byte-level example is a real batch: this test decodes the
//! hex printed there, checks its CID, its hub's signature and its header,
//! and opens it with the documented patient key seed to the documented
//! readings. (Sealing is randomised, so the example cannot be regenerated
//! byte for byte; `print_a_documented_batch` prints a fresh one.)

use alloy::primitives::B256;
use alloy::signers::local::PrivateKeySigner;
use glyco_contracts::{Address, DeviceIdentity};
use glyco_gateway::reading::{Measurement, Reading, SeqOrigin, Transport};
use glyco_gateway::seal::body::{BODY_VERSION, BatchBody};
use glyco_seal::{BatchHeader, BlobCid, PatientKey, SealedBatch};

const PATIENT_SEED: [u8; 32] = [0x11; 32];
const HUB_KEY: [u8; 32] = [0x22; 32];

fn patient_key() -> PatientKey {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("patient.umbral");
    glyco_contracts::keys::write_secret(&path, &B256::from(PATIENT_SEED)).unwrap();
    PatientKey::load(&path).unwrap()
}

fn documented(section: &str) -> String {
    let doc =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/BATCH.md")).unwrap();
    let start = doc
        .find(&format!("```{section}\n"))
        .unwrap_or_else(|| panic!("docs/BATCH.md has a ```{section} block"));
    let rest = &doc[start + section.len() + 4..];
    rest[..rest.find("```").unwrap()].to_owned()
}

fn readings() -> Vec<(u64, Reading)> {
    let cgm = DeviceIdentity::name("wifi-cgm").unwrap();
    [(1u64, 104.0), (2, 97.0)]
        .into_iter()
        .map(|(seq, mg_dl)| {
            let at = 1_767_571_200_000 + seq as i64 * 300_000;
            (
                seq,
                Reading {
                    device: cgm.clone(),
                    transport: Transport::Mqtt,
                    seq,
                    seq_origin: SeqOrigin::Device,
                    device_time: Some(at),
                    received_at: at + 450,
                    measurement: Measurement::CgmGlucose { mg_dl },
                    reported_unit: "mg/dL".into(),
                    flags: vec![],
                },
            )
        })
        .collect()
}

#[test]
fn the_documented_batch_decodes_verifies_and_opens() {
    let hex: String = documented("hex")
        .lines()
        .map(|l| l.split(';').next().unwrap())
        .flat_map(|l| l.split_whitespace().skip(1))
        .collect();
    let blob = hex::decode(hex).unwrap();
    let cid = BlobCid(*blake3::hash(&blob).as_bytes()).to_string();
    assert!(
        documented("text").contains(&cid),
        "the documented CID is {cid}"
    );
    let batch = SealedBatch::from_bytes(&blob).unwrap();
    let hub = PrivateKeySigner::from_bytes(&B256::from(HUB_KEY)).unwrap();
    assert_eq!(batch.signer().unwrap(), hub.address());
    assert_eq!(batch.header.hub, hub.address());
    assert_eq!(batch.header.count, 2);
    let body = BatchBody::from_bytes(&batch.open(patient_key().secret()).unwrap()).unwrap();
    assert_eq!(body.readings, readings());
}

#[test]
#[ignore = "prints a fresh example for docs/BATCH.md"]
fn print_a_documented_batch() {
    let hub = PrivateKeySigner::from_bytes(&B256::from(HUB_KEY)).unwrap();
    let readings = readings();
    let header = BatchHeader {
        patient: Address::repeat_byte(0x55),
        hub: hub.address(),
        batch_no: 1,
        first_journal_seq: 1,
        last_journal_seq: 2,
        count: 2,
        window_start_ms: readings[0].1.device_time.unwrap(),
        window_end_ms: readings[1].1.device_time.unwrap(),
        kinds: 1,
        sealed_at_ms: 1_767_571_860_000,
        evidence: Vec::new(),
    };
    let body = BatchBody {
        version: BODY_VERSION,
        readings,
        findings: vec![],
        quarantined: Vec::new(),
    }
    .to_bytes()
    .unwrap();
    let blob = SealedBatch::seal(header, &body, patient_key().public(), &hub)
        .unwrap()
        .to_bytes()
        .unwrap();
    println!("CID {}", BlobCid(*blake3::hash(&blob).as_bytes()));
    println!(
        "plaintext body {} bytes, blob {} bytes",
        body.len(),
        blob.len()
    );
    for (i, chunk) in blob.chunks(32).enumerate() {
        println!("{:04x}  {}", i * 32, hex::encode(chunk));
    }
}
