//! Release keys and RAUC bundles for the update tests, built by Debian's
//! rauc with keys made by openssl.

use std::path::{Path, PathBuf};
use std::process::Command;

use glyco_contracts::B256;
use sha2::{Digest, Sha256};

/// A self-signed release certificate and its key in `dir`: (key, cert).
pub async fn release_key(dir: &Path, name: &str) -> (PathBuf, PathBuf) {
    let (cert, key) = super::self_signed(dir, name, &format!("/O=glyco test/CN={name}"), &[]).await;
    (key, cert)
}

/// A RAUC bundle of a small root-file-system image, signed with `signer`.
pub fn bundle(
    dir: &Path,
    name: &str,
    compatible: &str,
    version: &str,
    signer: &(PathBuf, PathBuf),
) -> PathBuf {
    let input = dir.join(format!("{name}-input"));
    std::fs::create_dir_all(&input).unwrap();
    // Incompressible bytes (squashfs refuses an image under a block), a
    // different stream per bundle.
    let mut state = Sha256::digest(name.as_bytes());
    let mut image = Vec::new();
    while image.len() < 64 * 1024 {
        state = Sha256::digest(state);
        image.extend_from_slice(&state);
    }
    std::fs::write(input.join("rootfs.img"), image).unwrap();
    std::fs::write(
        input.join("manifest.raucm"),
        format!(
            "[update]\ncompatible={compatible}\nversion={version}\n\n[bundle]\nformat=verity\n\n[image.rootfs]\nfilename=rootfs.img\n"
        ),
    )
    .unwrap();
    let out_path = dir.join(format!("{name}.raucb"));
    let out = Command::new("rauc")
        .arg("bundle")
        .arg(format!("--cert={}", signer.1.display()))
        .arg(format!("--key={}", signer.0.display()))
        .arg(&input)
        .arg(&out_path)
        .output()
        .expect("rauc (Debian's) is installed by scripts/bootstrap.sh");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    out_path
}

pub fn sha256(path: &Path) -> B256 {
    B256::from_slice(&Sha256::digest(std::fs::read(path).unwrap()))
}
