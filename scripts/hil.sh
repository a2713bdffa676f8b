#!/usr/bin/env bash
# Hardware-in-the-loop checks of the appliance image (docs/APPLIANCE.md).
#
#   scripts/hil.sh            amd64: build the image (cached by content hash),
#                             boot it under qemu (TCG), enrol it against a dev
#                             chain on the host, add a device on its web app,
#                             publish a reading through the forwarded MQTT
#                             port, see it stored and anchored, power the VM
#                             down and up, see the hub come back with its state
#   scripts/hil.sh arm64      the Pi image boots under qemu-system-aarch64 to
#                             glyco-hub answering (its enrolment page)
#   scripts/hil.sh all        both
#
# Figures go to $GLYCO_IMAGE_DIR/hil-<arch>.json. A real Pi is checked with
# scripts/hil-pi.sh (it needs the hardware; it cannot run here).
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"

./scripts/bootstrap.sh
source scripts/env.sh
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-/var/cache/glyco/target}
images=${GLYCO_IMAGE_DIR:-/var/cache/glyco/image}

need=()
for pkg in qemu-system-x86 qemu-system-arm qemu-utils mosquitto-clients; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || need+=("$pkg")
done
if ((${#need[@]})); then
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi

# Built as ./scripts/test.sh builds them (same features), so after the
# tests nothing is rebuilt.
cargo build --quiet --workspace --all-features --locked --bins
export GLYCO_CLINIC_BIN="$CARGO_TARGET_DIR/debug/glyco-clinic"

check() {
  local arch=$1 started
  started=$(date +%s)
  ./image/build.sh "$arch"
  echo "hil: $arch image ready in $(($(date +%s) - started))s"
  work=$(mktemp -d /tmp/glyco-hil-"$arch".XXXX)
  "$CARGO_TARGET_DIR/debug/glyco-hil" --arch "$arch" --images "$images" --work "$work" \
    --figures "$images/hil-$arch.json"
  for log in "$work"/serial-*.log; do cp "$log" "$images/hil-$arch-${log##*/}"; done
  rm -rf "$work"
}

case "${1:-amd64}" in
  amd64 | arm64) check "$1" ;;
  all) check amd64; check arm64 ;;
  *) echo "usage: scripts/hil.sh [amd64|arm64|all]" >&2; exit 2 ;;
esac
