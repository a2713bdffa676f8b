//! Over-the-air updates under qemu (docs/FLEET.md, "Updates"): the amd64
//! image's two slots, RAUC, GRUB's one try, and the health check, driven
//! the way a clinic drives them, through its fleet node's rollout.
//!
//! 1. A bundle whose hash the consortium did not publish: the hub fetches
//!    it, refuses it, and the rollout halts.
//! 2. A good bundle (the image relabelled as the next release), published:
//!    installed into the other slot, booted, passes its health check and is
//!    kept; a reading still goes through to the chain.
//! 3. A published bundle whose hub does not start: installed, booted, fails
//!    its health check, is marked bad and the hub reboots into the slot it
//!    came from, which it reports.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use glyco_contracts::B256;
use glyco_contracts::testkit::{Consortium, accounts::ADMIN};

use crate::say;

/// The clinic's release key and certificate (the image's keyring).
pub struct ReleaseKey {
    pub key: PathBuf,
    pub cert: PathBuf,
}

/// One bundle built for the checks.
pub struct Bundle {
    pub path: PathBuf,
    pub version: String,
    pub sha256: B256,
    pub bytes: u64,
}

/// A copy of the image's slot image named as release `version`; `broken`
/// swaps the hub for one that fails to start (`run` exits 1; every other
/// command, the health check's among them, still works).
pub fn slot_image(images: &Path, work: &Path, version: &str, broken: bool) -> Result<PathBuf> {
    let source = images.join("glyco-amd64.rootfs.ext4");
    let out = work.join(format!("rootfs-{version}.ext4"));
    run(std::process::Command::new("cp")
        .arg("--sparse=always")
        .arg(&source)
        .arg(&out))?;
    let os_release = debugfs_cat(&out, "/usr/lib/os-release")?;
    let relabelled: String = os_release
        .lines()
        .filter(|l| !l.starts_with("IMAGE_VERSION="))
        .map(|l| format!("{l}\n"))
        .chain(std::iter::once(format!("IMAGE_VERSION={version}\n")))
        .collect();
    let local = work.join(format!("os-release-{version}"));
    std::fs::write(&local, relabelled)?;
    let mut commands = format!(
        "rm /usr/lib/os-release\nwrite {} /usr/lib/os-release\nsif /usr/lib/os-release mode 0100644\nsif /usr/lib/os-release uid 0\nsif /usr/lib/os-release gid 0\n",
        local.display()
    );
    if broken {
        let wrapper = work.join("broken-hub");
        std::fs::write(
            &wrapper,
            "#!/bin/sh\n# A release whose hub does not start (the HIL's breaking bundle).\ncase \" $* \" in *\" run \"*) echo 'glyco-hub: this release is broken on purpose' >&2; exit 1 ;; esac\nexec /usr/bin/glyco-hub.real \"$@\"\n",
        )?;
        // ln and unlink leave the link count alone: net, one link.
        commands.push_str(&format!(
            "ln /usr/bin/glyco-hub /usr/bin/glyco-hub.real\nunlink /usr/bin/glyco-hub\nwrite {} /usr/bin/glyco-hub\nsif /usr/bin/glyco-hub mode 0100755\nsif /usr/bin/glyco-hub uid 0\nsif /usr/bin/glyco-hub gid 0\n",
            wrapper.display()
        ));
    }
    let script = work.join(format!("debugfs-{version}"));
    std::fs::write(&script, commands)?;
    run(std::process::Command::new("debugfs")
        .arg("-w")
        .arg("-f")
        .arg(&script)
        .arg(&out))?;
    // The edited file system must be sound, or the test tests debugfs.
    run(std::process::Command::new("e2fsck").arg("-fn").arg(&out))?;
    if !debugfs_cat(&out, "/usr/lib/os-release")?.contains(&format!("IMAGE_VERSION={version}")) {
        bail!("the relabelled slot image does not name {version}");
    }
    Ok(out)
}

fn debugfs_cat(image: &Path, file: &str) -> Result<String> {
    let out = std::process::Command::new("debugfs")
        .arg("-R")
        .arg(format!("cat {file}"))
        .arg(image)
        .output()
        .context("debugfs (Debian's e2fsprogs)")?;
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

fn run(command: &mut std::process::Command) -> Result<String> {
    let out = command.output().with_context(|| format!("{command:?}"))?;
    if !out.status.success() {
        bail!(
            "{command:?}: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// Signs `rootfs` into a bundle with image/bundle.sh.
pub fn bundle(rootfs: &Path, version: &str, key: &ReleaseKey, work: &Path) -> Result<Bundle> {
    let path = work.join(format!("glyco-amd64-{version}.raucb"));
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../image/bundle.sh");
    let line = run(std::process::Command::new(script)
        .arg("--cert")
        .arg(&key.cert)
        .arg("--key")
        .arg(&key.key)
        .arg("--rootfs")
        .arg(rootfs)
        .arg("--version")
        .arg(version)
        .arg("--out")
        .arg(&path)
        .env("TMPDIR", work))?;
    let field = |name: &str| {
        line.split_whitespace()
            .skip_while(|w| *w != name)
            .nth(1)
            .map(str::to_owned)
    };
    Ok(Bundle {
        path,
        version: version.to_owned(),
        sha256: field("sha256")
            .and_then(|s| s.parse().ok())
            .context("bundle.sh names the SHA-256")?,
        bytes: field("bytes")
            .and_then(|s| s.parse().ok())
            .context("bundle.sh names the size")?,
    })
}

/// The consortium publishes the bundle's hash and version on chain.
pub async fn publish(consortium: &Consortium, bundle: &Bundle) -> Result<()> {
    consortium
        .client(ADMIN)
        .publish_release(bundle.sha256, &bundle.version)
        .await
        .context("publishing the release")?;
    Ok(())
}

/// Waits until the fleet node's view of the (only) hub says `update` (an
/// outcome and version, `kept 2026.12.2`); returns the row.
pub async fn wait_update(
    fleet_url: &str,
    update: &str,
    within: Duration,
) -> Result<serde_json::Value> {
    let started = Instant::now();
    let mut last = serde_json::Value::Null;
    while started.elapsed() < within {
        if let Ok(response) = crate::http().get(fleet_url).send().await
            && let Ok(fleet) = response.json::<serde_json::Value>().await
            && let Some(row) = fleet["hubs"].as_array().and_then(|h| h.first())
        {
            if row["update"].as_str() == Some(update) {
                say(&format!(
                    "the node sees {update}: release {}, reasons {}; rollout {}",
                    row["release"], row["reasons"], fleet["rollout"]
                ));
                return Ok(fleet);
            }
            if row["update"] != last["update"] {
                say(&format!("the hub reports update {}", row["update"]));
            }
            last = row.clone();
        }
        tokio::time::sleep(Duration::from_secs(3)).await;
    }
    bail!("the hub did not report {update} within {within:?}; its last row: {last}")
}
