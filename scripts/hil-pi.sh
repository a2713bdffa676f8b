#!/usr/bin/env bash
# The hardware-in-the-loop checks against a real Raspberry Pi 4/5
# (docs/APPLIANCE.md). It needs the hardware and a bench network, so it
# cannot run on the CI machine; scripts/hil.sh runs the same checks on
# qemu there.
#
#   1. Build a test image with your SSH key and flash it:
#        GLYCO_SSH_AUTHORIZED_KEY=~/.ssh/id_ed25519.pub ./image/build.sh arm64
#        zstdcat /var/cache/glyco/image/glyco-arm64.img.zst | sudo dd of=/dev/sdX bs=4M conv=fsync
#   2. Boot the Pi on the bench network (wired, DHCP) and find its address.
#   3. scripts/hil-pi.sh <pi address> <this machine's address on that network>
#
# The dev chain and the physician's enrolment node run on this machine,
# listening on its bench address; the Pi must not be enrolled yet. The
# checks: the enrolment page answers; the QR picture enrols the Pi; a
# glucometer added on its web app publishes a reading that is acknowledged
# and anchored; over SSH, glyco-hub is active, its journal entries carry
# GLYCO_DEVICE, and its systemd-analyze security line is printed; the Pi is
# rebooted and comes back with its PIN, its device and both readings.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"
pi=${1:?usage: scripts/hil-pi.sh <pi address> <this machine\'s bench address>}
here=${2:?usage: scripts/hil-pi.sh <pi address> <this machine\'s bench address>}

./scripts/bootstrap.sh
source scripts/env.sh
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-/var/cache/glyco/target}
# Built as ./scripts/test.sh builds them (same features), so after the
# tests nothing is rebuilt.
cargo build --quiet --workspace --all-features --locked --bins
export GLYCO_CLINIC_BIN="$CARGO_TARGET_DIR/debug/glyco-clinic"
work=$(mktemp -d /tmp/glyco-hil-pi.XXXX)
"$CARGO_TARGET_DIR/debug/glyco-hil" --arch arm64 --device "$pi" --host-address "$here" \
  --ssh "root@$pi" --work "$work" --figures "$work/hil-pi.json"
echo "figures: $work/hil-pi.json"
