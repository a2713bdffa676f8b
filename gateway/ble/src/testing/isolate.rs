//! Running a test body in a child process whose `DBUS_SYSTEM_BUS_ADDRESS`
//! points at a private bus (see the module docs for why).

use std::future::Future;
use std::io::Read;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use super::harness::MockBluez;

/// Set in the child: the directory of its private bus.
const DIR_ENV: &str = "GLYCO_BLE_MOCK_DIR";
/// A child that runs longer is killed and the test fails.
const CHILD_TIMEOUT: Duration = Duration::from_secs(120);
/// Written by the child after the body returned: proof the body ran (a
/// mistyped test filter would otherwise "pass" by running nothing).
const PASSED: &str = "body-passed";

/// Runs `body` with a fresh [`MockBluez`] and bluer pointed at its bus.
/// Call it from a `#[test]` function (not `#[tokio::test]`: the body runs
/// on a runtime made here, in the child process). Panics — failing the
/// test — when the body panics, the mock cannot start, or the child takes
/// longer than two minutes. The body's output is shown with the test's.
pub fn with_mock_bluez<F, Fut>(body: F)
where
    F: FnOnce(MockBluez) -> Fut,
    Fut: Future<Output = ()>,
{
    match std::env::var_os(DIR_ENV) {
        Some(dir) => child(PathBuf::from(dir), body),
        None => parent(),
    }
}

fn bus_address(dir: &std::path::Path) -> String {
    format!("unix:path={}", MockBluez::socket_path(dir).display())
}

fn child<F, Fut>(dir: PathBuf, body: F)
where
    F: FnOnce(MockBluez) -> Fut,
    Fut: Future<Output = ()>,
{
    assert_eq!(
        std::env::var("DBUS_SYSTEM_BUS_ADDRESS").ok(),
        Some(bus_address(&dir)),
        "the child must talk to its private bus only"
    );
    let mock = MockBluez::start(&dir).unwrap_or_else(|e| panic!("{e}"));
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio runtime");
    runtime.block_on(body(mock));
    // The runtime goes before the proof is written: a body that leaves
    // tasks which panic on the way out still fails.
    drop(runtime);
    std::fs::write(dir.join(PASSED), b"ok").expect("writing the pass marker");
}

fn parent() {
    let name = std::thread::current()
        .name()
        .map(str::to_string)
        .filter(|n| n != "main")
        .expect("with_mock_bluez must be called from a #[test] thread (libtest names it after the test)");
    let dir = tempfile::Builder::new()
        .prefix("glyco-ble-mock-")
        .tempdir()
        .expect("temp dir for the private bus");
    let exe = std::env::current_exe().expect("path of the test binary");
    let mut child = Command::new(exe)
        .args([name.as_str(), "--exact", "--nocapture", "--test-threads=1"])
        .env(DIR_ENV, dir.path())
        .env("DBUS_SYSTEM_BUS_ADDRESS", bus_address(dir.path()))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("re-running the test binary");
    let pipe = |mut r: Box<dyn Read + Send>| {
        std::thread::spawn(move || {
            let mut out = Vec::new();
            let _ = r.read_to_end(&mut out);
            String::from_utf8_lossy(&out).into_owned()
        })
    };
    let stdout = pipe(Box::new(child.stdout.take().expect("piped")));
    let stderr = pipe(Box::new(child.stderr.take().expect("piped")));

    let deadline = Instant::now() + CHILD_TIMEOUT;
    let status = loop {
        match child.try_wait().expect("waiting for the test child") {
            Some(status) => break Some(status),
            None if Instant::now() >= deadline => {
                let _ = child.kill();
                let _ = child.wait();
                break None;
            }
            None => std::thread::sleep(Duration::from_millis(20)),
        }
    };
    // Shown by libtest with the test's result (on failure, or with
    // --nocapture).
    print!("{}", stdout.join().unwrap_or_default());
    eprint!("{}", stderr.join().unwrap_or_default());
    let log = std::fs::read_to_string(dir.path().join("mock_bluez.stderr")).unwrap_or_default();
    if !log.is_empty() {
        eprintln!("--- mock BlueZ stderr ---\n{log}");
    }
    match status {
        None => panic!("test child ran longer than {CHILD_TIMEOUT:?} and was killed"),
        Some(status) if !status.success() => panic!("test child failed: {status}"),
        Some(_) => assert!(
            dir.path().join(PASSED).exists(),
            "test child exited cleanly but never ran the body of {name:?}"
        ),
    }
}
