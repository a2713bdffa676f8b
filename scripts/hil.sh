#!/usr/bin/env bash
# Hardware-in-the-loop checks of the appliance image (docs/APPLIANCE.md).
#
#   scripts/hil.sh            amd64: build the image (cached by content hash),
#                             boot it under qemu (TCG, UEFI, GRUB), enrol it
#                             against a dev chain on the host, add a device on
#                             its web app, publish a reading through the
#                             forwarded MQTT port, see it stored and anchored,
#                             power the VM down and up, see the hub come back
#                             with its state; then over-the-air updates
#                             through the clinic node's rollout: an
#                             unpublished bundle refused, a good one kept in
#                             the other slot, a breaking one rolled back
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

packages=(qemu-system-x86 qemu-system-arm qemu-utils ovmf mosquitto-clients e2fsprogs openssl)
need=()
for pkg in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || need+=("$pkg")
done
if ((${#need[@]})); then
  apt-get update -qq
  # All of them in one transaction: apt then picks versions that go
  # together. Naming only the missing ones once let apt remove an
  # installed qemu-utils (a backport) that conflicted with Debian's
  # qemu-system, and qemu-img was gone.
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${packages[@]}" >/dev/null
fi

# Built as ./scripts/test.sh builds them (same features), so after the
# tests nothing is rebuilt.
cargo build --quiet --workspace --all-features --locked --bins
export GLYCO_CLINIC_BIN="$CARGO_TARGET_DIR/debug/glyco-clinic"

# The release key of this bench's images: the image's RAUC keyring trusts
# its certificate, and the OTA checks sign bundles with it. Made once.
release_dir="$images/release-hil"
if [[ ! -s $release_dir/release.pem ]]; then
  mkdir -p "$release_dir"
  chmod 0700 "$release_dir"
  openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes \
    -keyout "$release_dir/release.key" -out "$release_dir/release.pem" -days 3650 \
    -subj "/O=Glyco HIL bench/CN=St Luke's release key" 2>/dev/null
fi
export GLYCO_RELEASE_KEYRING="$release_dir/release.pem"
# The journal on the serial console: a failed run's log shows why.
export GLYCO_KERNEL_ARGS="systemd.journald.forward_to_console=1"

check() {
  local arch=$1 started ota=()
  started=$(date +%s)
  ./image/build.sh "$arch"
  if [[ $arch == amd64 ]]; then
    ota=(--release-key "$release_dir/release.key" --release-cert "$release_dir/release.pem")
  fi
  echo "hil: $arch image ready in $(($(date +%s) - started))s"
  work=$(mktemp -d /tmp/glyco-hil-"$arch".XXXX)
  "$CARGO_TARGET_DIR/debug/glyco-hil" --arch "$arch" --images "$images" --work "$work" \
    --figures "$images/hil-$arch.json" "${ota[@]}"
  for log in "$work"/serial-*.log; do cp "$log" "$images/hil-$arch-${log##*/}"; done
  rm -rf "$work"
}

case "${1:-amd64}" in
  amd64 | arm64) check "$1" ;;
  all) check amd64; check arm64 ;;
  *) echo "usage: scripts/hil.sh [amd64|arm64|all]" >&2; exit 2 ;;
esac
