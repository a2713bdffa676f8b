//! `glyco-clinic` processes for the end-to-end tests.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

pub fn clinic_bin() -> PathBuf {
    let path = Path::new(super::HUB_BIN).with_file_name("glyco-clinic");
    assert!(
        path.exists(),
        "{} is missing: run the tests for the whole workspace (cargo nextest run --workspace), which builds it",
        path.display()
    );
    path
}

/// A `glyco-clinic` process whose first stdout line is its address line.
pub struct ClinicProcess {
    pub child: Child,
    pub first_line: String,
}

impl ClinicProcess {
    pub async fn start(args: &[&str], log: PathBuf) -> Self {
        let mut child = Command::new(clinic_bin())
            .args(args)
            .env("RUST_LOG", "info,iroh=warn,iroh_blobs=warn,noq=warn")
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(&log).unwrap())
            .kill_on_drop(true)
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let mut lines = BufReader::new(stdout).lines();
        let first_line = tokio::time::timeout(Duration::from_secs(30), lines.next_line())
            .await
            .unwrap_or_else(|_| panic!("no address line; log:\n{}", read(&log)))
            .unwrap()
            .unwrap_or_else(|| panic!("exited early; log:\n{}", read(&log)));
        tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
        Self { child, first_line }
    }

    pub async fn kill(mut self) {
        self.child.kill().await.unwrap();
    }
}

pub fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_default()
}

/// Runs a `glyco-clinic` command to completion: (success, stdout, stderr).
pub async fn clinic(args: &[&str]) -> (bool, String, String) {
    let out = Command::new(clinic_bin())
        .args(args)
        .env("RUST_LOG", "warn")
        .output()
        .await
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}
