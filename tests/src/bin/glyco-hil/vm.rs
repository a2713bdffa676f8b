//! The image under qemu: one VM, kept running across the reboots its
//! guest asks for, until the harness powers it down.
//!
//! qemu runs with `-no-reboot`: when the guest reboots, qemu exits and a
//! new qemu process boots the same disk, as a power cycle would. A warm
//! reset under TCG once hung in the firmware (no output for 20 minutes
//! after the kernel's "machine restart", in an update's reboot), while a
//! cold start has never failed here; a Pi's reboot is a full reset too.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use tokio::process::{Child, Command};
use tokio::task::JoinHandle;

use crate::{Args, Ports, say};

/// Guest stops that were neither a reboot nor a power-off: a hardware
/// watchdog's reset or a kernel panic. A passing run has none.
pub static UNEXPLAINED_STOPS: AtomicU32 = AtomicU32::new(0);

/// One VM: the qemu process of its current boot, restarted when the guest
/// reboots.
pub struct Vm {
    supervisor: JoinHandle<Result<ExitStatus>>,
    powering_down: Arc<AtomicBool>,
    monitor: PathBuf,
    pub serial: PathBuf,
}

impl Drop for Vm {
    fn drop(&mut self) {
        // The task owns the qemu child (killed on drop).
        self.supervisor.abort();
    }
}

/// How to start this VM's qemu, the first time and after each reboot.
struct Launch {
    binary: &'static str,
    args: Vec<String>,
    stderr: PathBuf,
    monitor: PathBuf,
}

impl Launch {
    fn spawn(&self) -> Result<Child> {
        let _ = std::fs::remove_file(&self.monitor);
        let stderr = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.stderr)?;
        Command::new(self.binary)
            .args(&self.args)
            .stdout(Stdio::null())
            .stderr(stderr)
            .kill_on_drop(true)
            .spawn()
            .with_context(|| format!("{} (Debian's qemu-system)", self.binary))
    }
}

/// How the guest's kernel last stopped, from its console.
#[derive(Debug, PartialEq)]
enum GuestStop {
    Restart,
    PowerOff,
    Unknown,
}

fn last_guest_stop(console: &str) -> GuestStop {
    match console.lines().rev().find(|line| line.contains("reboot: ")) {
        Some(line) if line.contains("machine restart") => GuestStop::Restart,
        Some(line) if line.contains("Power down") => GuestStop::PowerOff,
        _ => GuestStop::Unknown,
    }
}

/// Waits for qemu to exit; boots the disk again unless the guest powered
/// off or the harness is powering it down. A guest that stopped without
/// saying why (a panic's reboot, the firmware's watchdog) is reset, as
/// qemu without `-no-reboot` would do.
async fn supervise(
    mut child: Child,
    launch: Launch,
    serial: PathBuf,
    powering_down: Arc<AtomicBool>,
) -> Result<ExitStatus> {
    // Where this boot's console output begins: an earlier boot's
    // "machine restart" must not explain this one's stop.
    let mut boot_began = 0;
    loop {
        let status = child.wait().await?;
        let console = std::fs::read(&serial).unwrap_or_default();
        let this_boot = console.get(boot_began..).unwrap_or_default();
        let stop = last_guest_stop(&String::from_utf8_lossy(this_boot));
        // A failing qemu (exit status not 0) is qemu's error, not the
        // guest's stop: starting it again would only fail again.
        if powering_down.load(Ordering::SeqCst) || stop == GuestStop::PowerOff || !status.success()
        {
            return Ok(status);
        }
        if stop == GuestStop::Unknown {
            UNEXPLAINED_STOPS.fetch_add(1, Ordering::SeqCst);
        }
        say(&format!(
            "the guest stopped ({stop:?}); qemu boots its disk again"
        ));
        boot_began = console.len();
        child = launch.spawn()?;
    }
}

impl Vm {
    pub fn boot(args: &Args, work: &Path, ports: &Ports, boot_no: u32) -> Result<Self> {
        let image = |ext: &str| args.images.join(format!("glyco-{}.{ext}", args.arch));
        let overlay = work.join("disk.qcow2");
        if !overlay.exists() {
            // The built image stays pristine; the VM writes to an overlay.
            let status = std::process::Command::new("qemu-img")
                .args(["create", "-q", "-f", "qcow2", "-F", "raw", "-b"])
                .arg(image("img"))
                .arg(&overlay)
                .status()
                .context("qemu-img (Debian's qemu-utils)")?;
            if !status.success() {
                bail!("qemu-img create failed");
            }
        }
        let monitor = work.join("monitor.sock");
        // One console log per boot_no, across the guest's own reboots.
        let serial = work.join(format!("serial-{boot_no}.log"));
        std::fs::File::create(&serial)?;
        let net = format!(
            "user,id=n0,hostfwd=tcp:127.0.0.1:{}-:8080,hostfwd=tcp:127.0.0.1:{}-:1883",
            ports.web, ports.mqtt
        );
        let (binary, machine): (_, &[&str]) = match args.arch.as_str() {
            "amd64" => ("qemu-system-x86_64", &["-M", "q35"]),
            _ => ("qemu-system-aarch64", &["-M", "virt", "-cpu", "cortex-a72"]),
        };
        let mut qemu: Vec<String> = machine.iter().map(|s| s.to_string()).collect();
        let mut push = |items: &[&str]| qemu.extend(items.iter().map(|s| s.to_string()));
        push(&[
            "-accel",
            "tcg",
            "-m",
            "1024",
            "-smp",
            "2",
            "-display",
            "none",
            "-no-reboot",
        ]);
        push(&[
            "-chardev",
            &format!("file,id=console,path={},append=on", serial.display()),
            "-serial",
            "chardev:console",
            "-monitor",
            &format!("unix:{},server,nowait", monitor.display()),
        ]);
        // An entropy source, as real hardware has one: without it the
        // guest's early getrandom() calls fall back to the kernel's jitter
        // entropy, which under TCG once spun for minutes (udev workers in
        // soft lockups, a boot that never finished).
        push(&["-device", "virtio-rng-pci"]);
        if args.arch == "amd64" {
            // RDRAND too (the CPU model with every feature TCG emulates), so
            // the kernel's random pool is ready before any module loads.
            push(&["-cpu", "max"]);
            // UEFI firmware, then GRUB from the image picks the root slot
            // (A/B); kernel arguments come from the image's GRUB
            // environment (GLYCO_KERNEL_ARGS when it was built).
            push(&["-bios", "/usr/share/ovmf/OVMF.fd"]);
        } else {
            push(&[
                "-kernel",
                &image("vmlinuz").display().to_string(),
                "-initrd",
                &image("initrd").display().to_string(),
                "-append",
                // The journal on the serial console too: the log of a
                // failed run shows why the hub did what it did.
                &format!(
                    "root=LABEL=glyco-root rw console=ttyAMA0 panic=10 systemd.journald.forward_to_console=1 {}",
                    args.kernel_args
                ),
            ]);
        }
        push(&[
            "-drive",
            &format!("file={},if=virtio,format=qcow2", overlay.display()),
            "-netdev",
            &net,
            "-device",
            "virtio-net-pci,netdev=n0",
        ]);
        let launch = Launch {
            binary,
            args: qemu,
            stderr: work.join(format!("qemu-{boot_no}.log")),
            monitor: monitor.clone(),
        };
        let child = launch.spawn()?;
        let powering_down = Arc::new(AtomicBool::new(false));
        let supervisor = tokio::spawn(supervise(
            child,
            launch,
            serial.clone(),
            powering_down.clone(),
        ));
        Ok(Self {
            supervisor,
            powering_down,
            monitor,
            serial,
        })
    }

    /// ACPI power button: systemd shuts down cleanly and qemu exits.
    pub async fn power_down(mut self, within: Duration) -> Result<Duration> {
        let started = Instant::now();
        self.powering_down.store(true, Ordering::SeqCst);
        // The monitor is briefly absent while a rebooting guest's qemu is
        // started again.
        let mut socket = loop {
            match std::os::unix::net::UnixStream::connect(&self.monitor) {
                Ok(socket) => break socket,
                Err(_) if self.supervisor.is_finished() => {
                    bail!("the VM was not running; serial:\n{}", tail(&self.serial))
                }
                Err(e) if started.elapsed() > Duration::from_secs(30) => {
                    return Err(e).context("qemu's monitor");
                }
                Err(_) => tokio::time::sleep(Duration::from_millis(200)).await,
            }
        };
        socket.write_all(b"system_powerdown\n")?;
        match tokio::time::timeout(within, &mut self.supervisor).await {
            Ok(joined) => {
                joined??;
                Ok(started.elapsed())
            }
            Err(_) => bail!(
                "the VM did not power down within {within:?}; serial:\n{}",
                tail(&self.serial)
            ),
        }
    }
}

/// Waits until the guest's console shows `text`; false when it does not
/// within `within`.
pub async fn console_shows(serial: &Path, text: &str, within: Duration) -> bool {
    let started = Instant::now();
    loop {
        if std::fs::read_to_string(serial).is_ok_and(|console| console.contains(text)) {
            return true;
        }
        if started.elapsed() > within {
            return false;
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

pub fn tail(path: &Path) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(40)..].join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_console_tells_a_restart_from_a_power_off() {
        let restart = "[ 1.0] reboot: Restarting system\n[ 1.1] reboot: machine restart\n";
        assert_eq!(last_guest_stop(restart), GuestStop::Restart);
        let off = format!("{restart}BdsDxe: starting\n[ 2.0] reboot: Power down\n");
        assert_eq!(last_guest_stop(&off), GuestStop::PowerOff);
        assert_eq!(
            last_guest_stop("Kernel panic - not syncing"),
            GuestStop::Unknown
        );
    }

    /// A stand-in for qemu: each run appends what its boot number says to
    /// the console, as the guest would, and exits 0, as qemu with
    /// `-no-reboot` does.
    #[tokio::test]
    async fn a_reboot_boots_again_an_unexplained_stop_is_counted_and_a_power_off_ends() {
        let dir = tempfile::tempdir().unwrap();
        let serial = dir.path().join("serial.log");
        let boots = dir.path().join("boots");
        std::fs::write(&serial, "").unwrap();
        let script = format!(
            r#"echo x >> {boots}; n=$(wc -l < {boots});
            case $n in
              1) echo "[ 9.1] reboot: machine restart" ;;
              2) echo "[ 3.0] hung; reset by the watchdog" ;;
              *) echo "[ 5.2] reboot: Power down" ;;
            esac >> {serial}"#,
            boots = boots.display(),
            serial = serial.display()
        );
        let launch = Launch {
            binary: "sh",
            args: vec!["-c".into(), script],
            stderr: dir.path().join("stderr.log"),
            monitor: dir.path().join("monitor.sock"),
        };
        let before = UNEXPLAINED_STOPS.load(Ordering::SeqCst);
        let first = launch.spawn().unwrap();
        let status = supervise(first, launch, serial, Arc::default())
            .await
            .unwrap();
        assert!(status.success());
        // Booted three times: the reboot and the unexplained stop (whose
        // console still holds the first boot's "machine restart") were
        // booted again; the power-off ended it.
        assert_eq!(std::fs::read_to_string(&boots).unwrap().lines().count(), 3);
        assert_eq!(UNEXPLAINED_STOPS.load(Ordering::SeqCst), before + 1);
    }

    #[tokio::test]
    async fn a_failing_qemu_is_not_started_again() {
        let dir = tempfile::tempdir().unwrap();
        let launch = Launch {
            binary: "false",
            args: vec![],
            stderr: dir.path().join("stderr.log"),
            monitor: dir.path().join("monitor.sock"),
        };
        let first = launch.spawn().unwrap();
        let status = supervise(first, launch, dir.path().join("none.log"), Arc::default())
            .await
            .unwrap();
        assert!(!status.success());
    }
}
