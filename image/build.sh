#!/usr/bin/env bash
# Builds the Glyco hub's appliance images from Debian packages and the
# project's binaries (docs/APPLIANCE.md), without loop devices or a
# privileged container: debootstrap into a directory, mke2fs -d into a
# partition image, mkfs.vfat + mcopy for the Pi's firmware partition.
#
#   image/build.sh amd64    the qemu image: glyco-amd64.img (ext4 root) with
#                           its kernel and initrd beside it (qemu boots them)
#   image/build.sh arm64    the Raspberry Pi 4/5 image: glyco-arm64.img (MBR:
#                           FAT firmware partition + ext4 root), and .img.zst
#   image/build.sh all      both
#
# Output goes to $GLYCO_IMAGE_DIR (default /var/cache/glyco/image). Each
# image is keyed by a content hash of everything that goes into it (package
# lists, Debian suite, the hub binary, units, files, this script): an
# unchanged image is not rebuilt. The Debian base is cached by its own key.
# Needs root (debootstrap, file ownership in the image).
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"

suite=bookworm
mirror=${GLYCO_DEBIAN_MIRROR:-http://deb.debian.org/debian}
out=${GLYCO_IMAGE_DIR:-/var/cache/glyco/image}
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-/var/cache/glyco/target}
# Every timestamp in the image: the commit's time (reproducible builds).
export SOURCE_DATE_EPOCH=${SOURCE_DATE_EPOCH:-$(git log -1 --format=%ct 2>/dev/null || echo 1767225600)}
# Fixed file-system identities, so the same inputs give the same bytes.
root_uuid=6c0a3d5e-9b1f-4c1e-8f6a-67c0f1a9e2b1
boot_volid=6C0A3D5E

log() { echo "image: $*" >&2; }

need_packages() {
  local missing=() pkg
  for pkg in "$@"; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
  done
  if ((${#missing[@]})); then
    log "installing Debian packages: ${missing[*]}"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  fi
}

tools() {
  [[ $(id -u) == 0 ]] || { log "run as root (debootstrap, ownership in the image)"; exit 1; }
  need_packages debootstrap e2fsprogs dosfstools mtools fdisk zstd systemd
  if [[ $1 == arm64 ]]; then
    if ! dpkg --print-foreign-architectures | grep -qx arm64; then
      dpkg --add-architecture arm64
    fi
    need_packages qemu-user-static gcc-aarch64-linux-gnu libc6-dev-arm64-cross \
      rustc-web cargo-web libstd-rust-web-dev:arm64 libdbus-1-dev:arm64
    # debootstrap's second stage runs arm64 programs: qemu-user through
    # binfmt_misc (the F flag keeps the interpreter usable in the chroot).
    if [[ ! -e /proc/sys/fs/binfmt_misc/register ]]; then
      mount -t binfmt_misc binfmt_misc /proc/sys/fs/binfmt_misc
    fi
    if [[ ! -e /proc/sys/fs/binfmt_misc/qemu-aarch64 ]]; then
      cat /usr/lib/binfmt.d/qemu-aarch64.conf >/proc/sys/fs/binfmt_misc/register
    fi
  fi
}

# The hub binary for $1; prints its path.
build_hub() {
  if [[ $1 == amd64 ]]; then
    cargo build --quiet --release --locked -p glyco-gateway --bin glyco-hub >&2
    echo "$CARGO_TARGET_DIR/release/glyco-hub"
  else
    # Debian's toolchain (rustc-web 1.96 with libstd for arm64): rustup
    # cannot download targets here.
    env -u RUSTUP_TOOLCHAIN RUSTC=/usr/bin/rustc RUSTDOC=/usr/bin/rustdoc \
      CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_LINKER=aarch64-linux-gnu-gcc \
      CC_aarch64_unknown_linux_gnu=aarch64-linux-gnu-gcc \
      AR_aarch64_unknown_linux_gnu=aarch64-linux-gnu-ar \
      PKG_CONFIG_ALLOW_CROSS=1 PKG_CONFIG_PATH=/usr/lib/aarch64-linux-gnu/pkgconfig \
      /usr/bin/cargo build --quiet --release --locked --target aarch64-unknown-linux-gnu \
      -p glyco-gateway --bin glyco-hub >&2
    echo "$CARGO_TARGET_DIR/aarch64-unknown-linux-gnu/release/glyco-hub"
  fi
}

package_list() {
  cat image/packages.txt "image/packages-$1.txt" | sed 's/#.*//' | tr -s ' \n' '\n' | grep -v '^$' | sort -u
}

# The Debian base for $1 as a tarball in the cache; prints its path.
base_rootfs() {
  local arch=$1 key tar dir
  key=$( (echo "$arch $suite $mirror"; debootstrap --version; package_list "$arch") | sha256sum | cut -c1-16)
  tar="$out/cache/base-$arch-$key.tar"
  if [[ -s $tar ]]; then
    log "$arch: Debian base cached ($tar)"
    echo "$tar"
    return
  fi
  mkdir -p "$out/cache"
  dir=$(mktemp -d "$out/cache/debootstrap-$arch.XXXX")
  log "$arch: debootstrap $suite ($(package_list "$arch" | wc -l) packages named)"
  debootstrap --arch="$arch" --variant=minbase --components=main,non-free-firmware \
    --include="$(package_list "$arch" | paste -sd,)" \
    "$suite" "$dir" "$mirror" >"$out/cache/debootstrap-$arch.log" 2>&1 ||
    { tail -30 "$out/cache/debootstrap-$arch.log" >&2; exit 1; }
  # Nothing the running system regenerates: apt lists and caches, logs.
  rm -rf "$dir"/var/cache/apt/*.bin "$dir"/var/cache/apt/archives/*.deb \
    "$dir"/var/lib/apt/lists/* "$dir"/var/log/* "$dir"/debootstrap
  tar --numeric-owner --xattrs -C "$dir" -cf "$tar.tmp" .
  mv "$tar.tmp" "$tar"
  rm -rf "$dir"
  echo "$tar"
}

files_hash() {
  local arch=$1 base=$2 hub=$3
  (
    echo "$arch $base"
    sha256sum "$hub" | cut -d' ' -f1
    cat image/build.sh
    find image/rootfs image/pi systemd -type f | LC_ALL=C sort | xargs sha256sum
    if [[ -n ${GLYCO_SSH_AUTHORIZED_KEY:-} ]]; then sha256sum "$GLYCO_SSH_AUTHORIZED_KEY"; fi
  ) | sha256sum | cut -c1-16
}

build() {
  local arch=$1 started hub base key work rootdir img
  started=$(date +%s)
  tools "$arch"
  hub=$(build_hub "$arch")
  base=$(base_rootfs "$arch")
  key=$(files_hash "$arch" "$(basename "$base")" "$hub")
  img="$out/glyco-$arch.img"
  if [[ -s $img && -s "$out/glyco-$arch.key" && $(cat "$out/glyco-$arch.key") == "$key" ]]; then
    log "$arch: image $img is up to date (content hash $key)"
    return
  fi
  work=$(mktemp -d "$out/work-$arch.XXXX")
  rootdir="$work/root"
  mkdir -p "$rootdir"
  tar --numeric-owner --xattrs -C "$rootdir" -xf "$base"

  log "$arch: the hub, its units and files"
  install -m 0755 "$hub" "$rootdir/usr/bin/glyco-hub"
  install -m 0644 systemd/glyco-hub.service "$rootdir/usr/lib/systemd/system/glyco-hub.service"
  install -D -m 0644 systemd/sysusers.d/glyco.conf "$rootdir/usr/lib/sysusers.d/glyco.conf"
  install -D -m 0644 systemd/tmpfiles.d/glyco.conf "$rootdir/usr/lib/tmpfiles.d/glyco.conf"
  cp -a image/rootfs/. "$rootdir/"
  chown -R 0:0 "$rootdir/etc/glyco" "$rootdir/etc/systemd/network"
  systemd-sysusers --root="$rootdir" >/dev/null
  # The image's glyco group (numeric: the build host's may differ or not exist).
  local gid
  gid=$(grep '^glyco:' "$rootdir/etc/group" | cut -d: -f3)
  chgrp "$gid" "$rootdir/etc/glyco" "$rootdir/etc/glyco/hub.toml"
  chmod 0750 "$rootdir/etc/glyco"
  chmod 0640 "$rootdir/etc/glyco/hub.toml"
  systemctl --root="$rootdir" enable glyco-hub.service systemd-networkd.service >/dev/null 2>&1
  # sshd is on the Pi image for engineers' test builds only: no host keys
  # baked in (each device makes its own), not enabled unless a key is given.
  rm -f "$rootdir"/etc/ssh/ssh_host_*
  if [[ -e "$rootdir/usr/lib/systemd/system/ssh.service" ]]; then
    systemctl --root="$rootdir" disable ssh.service ssh.socket >/dev/null 2>&1 || true
    if [[ -n ${GLYCO_SSH_AUTHORIZED_KEY:-} ]]; then
      install -D -m 0600 "$GLYCO_SSH_AUTHORIZED_KEY" "$rootdir/root/.ssh/authorized_keys"
      cat >"$rootdir/etc/systemd/system/glyco-ssh-host-keys.service" <<'UNIT'
[Unit]
Description=Make this device's own SSH host keys (test images)
Before=ssh.service
ConditionPathExists=!/etc/ssh/ssh_host_ed25519_key

[Service]
Type=oneshot
ExecStart=/usr/bin/ssh-keygen -A

[Install]
WantedBy=multi-user.target
UNIT
      systemctl --root="$rootdir" enable glyco-ssh-host-keys.service ssh.service >/dev/null 2>&1
    fi
  fi
  # systemd makes a machine id at first boot (ConditionFirstBoot).
  : >"$rootdir/etc/machine-id"
  rm -f "$rootdir/var/lib/dbus/machine-id"
  local release
  release=$(git describe --always --dirty 2>/dev/null || echo unknown)
  echo "glyco-hub $release ($arch, Debian $suite)" >"$rootdir/etc/glyco/release"
  # The image's release, where systemd and the hub's fleet heartbeat read
  # it (IMAGE_ID/IMAGE_VERSION; /etc/os-release links here).
  printf 'IMAGE_ID=glyco\nIMAGE_VERSION=%s\n' "$release" >>"$rootdir/usr/lib/os-release"

  local kernel initrd
  kernel=$(ls "$rootdir"/boot/vmlinuz-* | sort -V | tail -1)
  initrd=$(ls "$rootdir"/boot/initrd.img-* | sort -V | tail -1)
  dpkg-query --admindir="$rootdir/var/lib/dpkg" -W -f='${Package} ${Version} ${Architecture}\n' \
    | LC_ALL=C sort >"$work/packages"
  find "$rootdir" -xdev -newermt "@$SOURCE_DATE_EPOCH" -exec touch -h -d "@$SOURCE_DATE_EPOCH" {} + 2>/dev/null || true

  log "$arch: file systems"
  local root_mib
  root_mib=$(($(du -sm "$rootdir" | cut -f1) * 3 / 2 + 768))
  E2FSPROGS_FAKE_TIME=$SOURCE_DATE_EPOCH mke2fs -q -t ext4 -L glyco-root -U "$root_uuid" \
    -E "root_owner=0:0,hash_seed=$root_uuid,lazy_itable_init=0" -d "$rootdir" "$work/root.ext4" "${root_mib}M"

  if [[ $arch == amd64 ]]; then
    mv "$work/root.ext4" "$work/glyco-$arch.img"
    cp "$kernel" "$work/glyco-$arch.vmlinuz"
    cp "$initrd" "$work/glyco-$arch.initrd"
  else
    # The Pi's firmware partition: the boot firmware, the device trees, the
    # kernel and initramfs, config.txt and cmdline.txt.
    local boot="$work/boot" kver
    kver=${kernel##*/vmlinuz-}
    mkdir -p "$boot"
    cp -r "$rootdir"/usr/lib/raspi-firmware/. "$boot/"
    cp "$rootdir"/usr/lib/linux-image-"$kver"/broadcom/bcm27*-rpi-*.dtb "$boot/"
    cp "$kernel" "$boot/vmlinuz"
    cp "$initrd" "$boot/initrd.img"
    cp image/pi/config.txt image/pi/cmdline.txt "$boot/"
    find "$boot" -exec touch -h -d "@$SOURCE_DATE_EPOCH" {} +
    mkfs.vfat -C -n GLYCO-BOOT -i "$boot_volid" "$work/boot.vfat" $((256 * 1024)) >/dev/null
    (cd "$boot" && MTOOLS_SKIP_CHECK=1 mcopy -s -m -i "$work/boot.vfat" ./* ::/)
    local boot_sectors=$((256 * 2048)) root_sectors=$((root_mib * 2048)) start=8192
    truncate -s $(((start + boot_sectors + root_sectors) * 512)) "$work/glyco-$arch.img"
    sfdisk --quiet "$work/glyco-$arch.img" <<EOF
label: dos
label-id: 0x6c0a3d5e
start=$start, size=$boot_sectors, type=c, bootable
start=$((start + boot_sectors)), size=$root_sectors, type=83
EOF
    dd if="$work/boot.vfat" of="$work/glyco-$arch.img" bs=512 seek=$start conv=notrunc,sparse status=none
    dd if="$work/root.ext4" of="$work/glyco-$arch.img" bs=512 seek=$((start + boot_sectors)) conv=notrunc,sparse status=none
    # For qemu-system-aarch64 (the Pi's firmware does not run there).
    cp "$kernel" "$work/glyco-$arch.vmlinuz"
    cp "$initrd" "$work/glyco-$arch.initrd"
    zstd -q -T0 -6 -f "$work/glyco-$arch.img" -o "$work/glyco-$arch.img.zst"
  fi

  local seconds=$(($(date +%s) - started))
  for f in "$work"/glyco-"$arch".*; do mv -f "$f" "$out/"; done
  mv -f "$work/packages" "$out/glyco-$arch.packages"
  rm -rf "$work"
  (cd "$out" && sha256sum glyco-"$arch".img >"glyco-$arch.img.sha256")
  echo "$key" >"$out/glyco-$arch.key"
  local size allocated
  size=$(stat -c %s "$img")
  allocated=$(($(stat -c %b "$img") * 512))
  printf '{"arch":"%s","seconds":%d,"image_bytes":%d,"allocated_bytes":%d,"packages":%d,"content_hash":"%s"}\n' \
    "$arch" "$seconds" "$size" "$allocated" "$(wc -l <"$out/glyco-$arch.packages")" "$key" \
    >"$out/glyco-$arch.build.json"
  log "$arch: $img built in ${seconds}s: $((size / 1048576)) MiB ($((allocated / 1048576)) MiB allocated)"
}

case "${1:-amd64}" in
  amd64 | arm64) build "$1" ;;
  all) build amd64; build arm64 ;;
  base) tools "${2:?arch}"; base_rootfs "$2" ;;
  *) echo "usage: image/build.sh amd64|arm64|all" >&2; exit 2 ;;
esac
