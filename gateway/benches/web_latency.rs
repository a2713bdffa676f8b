//! The web app's heavy pages, timed against the real hub process:
//!
//!     cargo bench -p glyco-gateway --bench web_latency
//!
//! A CGM sends 14 days of 1-minute readings (20,160, the case) to a
//! fresh hub on anvil. Then, signed in as the patient: the 14-day AGP
//! report (`GET /report`) GLYCO_BENCH_PAGES times (default 50), its page
//! weight (the HTML with its inline SVG, plus the stylesheet), and
//! Nightscout's `GET /api/v1/entries.json?count=288` GLYCO_BENCH_API times
//! (default 200). Times are request to last byte on loopback: the server's
//! time plus a loopback round trip.

#[path = "../tests/support/mod.rs"]
mod support;

use std::time::{Duration, Instant};

use support::{HubWorld, now_ms};

fn percentile(sorted: &[f64], p: f64) -> f64 {
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

fn count(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let pages = count("GLYCO_BENCH_PAGES", 50);
    let calls = count("GLYCO_BENCH_API", 200);
    let mut world = HubWorld::new().await;
    world.edit_config(|c| c.limits.max_publishes_per_second = 1000);
    world
        .hub_cli_with_input(&["web", "set-pin"], "592817\n")
        .await;
    let printed = world.hub_cli_with_input(&["web", "api-secret"], "").await;
    let secret = printed
        .lines()
        .find_map(|l| l.strip_prefix("Nightscout API secret (shown once): "))
        .unwrap()
        .to_owned();
    let device_secret = world.register("cgm-bench", "cgm").await;
    let hub = world.start_hub().await;
    hub.wait_registered("cgm-bench").await;
    let now = now_ms();
    let trace =
        glyco_report::synthetic::cgm_trace(now - 14 * 86_400_000 + 60_000, now, 1, 11, false);
    let readings = trace.len();
    let started = Instant::now();
    hub.backfill_cgm("cgm-bench", &device_secret, &trace).await;
    eprintln!(
        "{readings} readings stored in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    let base = format!(
        "http://{}",
        hub.wait_for("the web app", |r| r.web.listen.is_some())
            .await
            .web
            .listen
            .unwrap()
    );
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap();
    let login = http
        .post(format!("{base}/login"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body("pin=592817")
        .send()
        .await
        .unwrap();
    let cookie = login.headers()["set-cookie"]
        .to_str()
        .unwrap()
        .split(';')
        .next()
        .unwrap()
        .to_owned();

    let mut times = Vec::new();
    let mut weight = 0;
    for _ in 0..pages {
        let t = Instant::now();
        let body = http
            .get(format!("{base}/report"))
            .header("cookie", &cookie)
            .send()
            .await
            .unwrap()
            .bytes()
            .await
            .unwrap();
        times.push(t.elapsed().as_secs_f64() * 1000.0);
        weight = body.len();
        let text = String::from_utf8_lossy(&body);
        let shown: usize = text
            .split("<th>Readings</th><td>")
            .nth(1)
            .and_then(|rest| rest.split('<').next())
            .and_then(|n| n.parse().ok())
            .unwrap_or(0);
        // The window moves with the clock while the bench runs.
        assert!(
            shown + 300 >= readings,
            "the report shows {shown} of {readings}"
        );
    }
    let css = http
        .get(format!("{base}/style.css"))
        .send()
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap()
        .len();
    times.sort_by(f64::total_cmp);
    println!(
        "AGP report, 14 days of 1-minute CGM data ({readings} readings), {pages} requests: p50 {:.1} ms, p95 {:.1} ms, worst {:.1} ms; page {:.1} KB + stylesheet {:.1} KB",
        percentile(&times, 0.5),
        percentile(&times, 0.95),
        times[times.len() - 1],
        weight as f64 / 1000.0,
        css as f64 / 1000.0
    );

    let mut times = Vec::new();
    let sha1 = {
        use sha1::Digest;
        hex::encode(sha1::Sha1::digest(secret.as_bytes()))
    };
    for _ in 0..calls {
        let t = Instant::now();
        let body = http
            .get(format!("{base}/api/v1/entries.json?count=288"))
            .header("api-secret", &sha1)
            .send()
            .await
            .unwrap()
            .bytes()
            .await
            .unwrap();
        times.push(t.elapsed().as_secs_f64() * 1000.0);
        let entries: Vec<serde_json::Value> = serde_json::from_slice(&body).unwrap();
        assert_eq!(entries.len(), 288);
    }
    times.sort_by(f64::total_cmp);
    println!(
        "Nightscout entries.json?count=288, {calls} requests: p50 {:.2} ms, p95 {:.2} ms, worst {:.2} ms",
        percentile(&times, 0.5),
        percentile(&times, 0.95),
        times[times.len() - 1]
    );
    assert_eq!(hub.terminate().await.code(), Some(0));
}
