//! Accesses recorded per second by one proxy, each from a physician's
//! freshly signed request, on anvil with 1-second blocks.
//!
//!     cargo bench -p glyco-contracts --bench access_throughput
//!
//! Each access is the full path a proxy takes: the physician signs an
//! EIP-712 request (one RPC for the chain's clock), the proxy checks the
//! nonce, sends `recordAccess` (estimate, nonce, send) and waits for the
//! receipt. `concurrent` requests are in flight at once; the proxy's sends
//! are serialised by its key's send lock, receipts are awaited in parallel.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use glyco_contracts::devnet::DevnetConfig;
use glyco_contracts::testkit::{Consortium, accounts::*, ephemeral_devnet};
use glyco_contracts::{B256, BatchAnchor, DataKinds, EntityKind, Expiry, GrantScope};

const RUN: Duration = Duration::from_secs(15);

#[tokio::main]
async fn main() {
    let consortium = Consortium::start_with(DevnetConfig {
        block_time_secs: 1,
        ..ephemeral_devnet()
    })
    .await
    .expect("dev chain starts");
    let c = &consortium;
    c.enrol_entity(HOSPITAL, EntityKind::Hospital, "St Luke's")
        .await
        .unwrap();
    c.enrol_physician(PHYSICIAN, HOSPITAL).await.unwrap();
    c.enrol_proxy(HOSPITAL, PROXY).await.unwrap();
    c.register_patient(PHYSICIAN, PATIENT).await.unwrap();
    c.authorise_hub(PATIENT, HUB, false).await.unwrap();
    let patient = c.address(PATIENT);
    c.client(PATIENT)
        .grant(
            c.address(PHYSICIAN),
            B256::repeat_byte(0x42),
            GrantScope::EVERYTHING,
            Expiry::Never,
        )
        .await
        .unwrap();
    let root = B256::repeat_byte(0xa1);
    c.client(HUB)
        .anchor(
            patient,
            BatchAnchor {
                root,
                window_start: 1_700_000_000,
                window_end: 1_700_003_599,
                count: 60,
                kinds: DataKinds::GLUCOSE,
            },
        )
        .await
        .unwrap();

    println!("| requests in flight | seconds | accesses recorded | accesses/s | mean gas |");
    println!("|---:|---:|---:|---:|---:|");
    for concurrent in [1usize, 8, 32, 128] {
        let done = Arc::new(AtomicU64::new(0));
        let gas = Arc::new(AtomicU64::new(0));
        let started = Instant::now();
        let mut tasks = Vec::new();
        for _ in 0..concurrent {
            let (physician, proxy) = (c.client(PHYSICIAN), c.client(PROXY));
            let proxy_addr = c.address(PROXY);
            let (done, gas) = (done.clone(), gas.clone());
            tasks.push(tokio::spawn(async move {
                while started.elapsed() < RUN {
                    let request = physician
                        .sign_access_request(patient, proxy_addr, root, Duration::from_secs(600))
                        .await
                        .expect("the physician signs");
                    let outcome = proxy
                        .record_access(&request)
                        .await
                        .expect("the access is recorded");
                    if let Some(tx) = outcome.tx {
                        gas.fetch_add(tx.gas_used, Ordering::Relaxed);
                    }
                    done.fetch_add(1, Ordering::Relaxed);
                }
            }));
        }
        for task in tasks {
            task.await.unwrap();
        }
        let seconds = started.elapsed().as_secs_f64();
        let n = done.load(Ordering::Relaxed);
        let count = consortium
            .client(STRANGER)
            .access_count(patient)
            .await
            .unwrap();
        println!(
            "| {concurrent} | {seconds:.1} | {n} | {:.1} | {} |",
            n as f64 / seconds,
            gas.load(Ordering::Relaxed) / n.max(1),
        );
        assert!(count >= n, "every recorded access is in the log");
    }
}
