#!/usr/bin/env bash
# Builds the Glyco hub's appliance images from Debian packages and the
# project's binaries (docs/APPLIANCE.md), without loop devices or a
# privileged container: debootstrap into a directory, mke2fs -d into a
# partition image, mkfs.vfat + mcopy for the Pi's firmware partition.
#
#   image/build.sh amd64    the x86/qemu image: glyco-amd64.img (GPT: EFI
#                           system partition with GRUB, root slots A and B,
#                           data), and glyco-amd64.rootfs.ext4, the slot image
#                           update bundles carry (image/bundle.sh)
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
  if [[ $1 == amd64 ]]; then
    need_packages grub-efi-amd64-bin grub-common
  fi
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
    find image/rootfs image/pi image/amd64 systemd -type f | LC_ALL=C sort | xargs sha256sum
    if [[ -n ${GLYCO_SSH_AUTHORIZED_KEY:-} ]]; then sha256sum "$GLYCO_SSH_AUTHORIZED_KEY"; fi
    if [[ -n ${GLYCO_RELEASE_KEYRING:-} ]]; then sha256sum "$GLYCO_RELEASE_KEYRING"; fi
    echo "${GLYCO_KERNEL_ARGS:-} ${GLYCO_RELEASE:-}"
  ) | sha256sum | cut -c1-16
}

# The amd64 disk (docs/APPLIANCE.md): GPT with the EFI system partition
# (GRUB and its A/B environment), root slots A and B (B empty until the
# first update; both sparse in the file), and the data partition that
# outlives updates (the hub's state, RAUC's status, the installer's copy).
ab_disk() {
  local rootdir=$1 work=$2
  local efi_mib=64 slot_mib=2048 data_mib=2048 root_mib
  root_mib=$(($(stat -c %s "$work/root.ext4") / 1048576))
  ((root_mib <= slot_mib)) || { log "the root file system ($root_mib MiB) is over a slot ($slot_mib MiB)"; exit 1; }
  local esp="$work/esp"
  mkdir -p "$esp/EFI/BOOT" "$esp/EFI/glyco"
  # Only the modules the configuration uses, built in (a standalone GRUB
  # cannot load more from the ESP).
  local grub_modules="part_gpt fat ext2 search search_label loadenv test regexp linux echo configfile normal"
  grub-mkstandalone -O x86_64-efi --locales= --fonts= --themes= \
    --modules="$grub_modules" --install-modules="$grub_modules" \
    -o "$esp/EFI/BOOT/BOOTX64.EFI" "boot/grub/grub.cfg=image/amd64/grub-early.cfg"
  cp image/amd64/grub.cfg "$esp/EFI/glyco/grub.cfg"
  grub-editenv "$esp/EFI/glyco/grubenv" create
  grub-editenv "$esp/EFI/glyco/grubenv" set ORDER="A B" A_OK=1 A_TRY=0 B_OK=0 B_TRY=0 \
    EXTRA_ARGS="${GLYCO_KERNEL_ARGS:-}"
  find "$esp" -exec touch -h -d "@$SOURCE_DATE_EPOCH" {} +
  mkfs.vfat -C -F 32 -n GLYCO-EFI -i "$boot_volid" "$work/esp.vfat" $((efi_mib * 1024)) >/dev/null
  (cd "$esp" && MTOOLS_SKIP_CHECK=1 mcopy -s -m -i "$work/esp.vfat" ./* ::/)

  # The data partition: one directory for each owner, bound in by fstab.
  local data="$work/data" uid
  uid=$(grep '^glyco:' "$rootdir/etc/passwd" | cut -d: -f3)
  mkdir -p "$data/glyco" "$data/rauc" "$data/update"
  chown "$uid:$uid" "$data/glyco"
  chmod 0700 "$data/glyco" "$data/rauc" "$data/update"
  E2FSPROGS_FAKE_TIME=$SOURCE_DATE_EPOCH mke2fs -q -t ext4 -L glyco-data \
    -E "root_owner=0:0,lazy_itable_init=0" -d "$data" "$work/data.ext4" "${data_mib}M"

  local mib=2048 start=2048 img="$work/glyco-amd64.img"
  local a=$((start + efi_mib * mib)) b c
  b=$((a + slot_mib * mib))
  c=$((b + slot_mib * mib))
  truncate -s $(((c + data_mib * mib + 2048) * 512)) "$img"
  sfdisk --quiet "$img" <<EOF
label: gpt
label-id: 6c0a3d5e-9b1f-4c1e-8f6a-67c0f1a9e2b0
start=$start, size=$((efi_mib * mib)), type=U, name=efi, uuid=6c0a3d5e-9b1f-4c1e-8f6a-67c0f1a9e2b1
start=$a, size=$((slot_mib * mib)), type=L, name=rootfs-A, uuid=6c0a3d5e-9b1f-4c1e-8f6a-67c0f1a9e2b2
start=$b, size=$((slot_mib * mib)), type=L, name=rootfs-B, uuid=6c0a3d5e-9b1f-4c1e-8f6a-67c0f1a9e2b3
start=$c, size=$((data_mib * mib)), type=L, name=data, uuid=6c0a3d5e-9b1f-4c1e-8f6a-67c0f1a9e2b4
EOF
  dd if="$work/esp.vfat" of="$img" bs=512 seek=$start conv=notrunc,sparse status=none
  dd if="$work/root.ext4" of="$img" bs=512 seek=$a conv=notrunc,sparse status=none
  dd if="$work/data.ext4" of="$img" bs=512 seek=$c conv=notrunc,sparse status=none
  mv "$work/root.ext4" "$work/glyco-amd64.rootfs.ext4"
  rm -rf "$esp" "$data" "$work/esp.vfat" "$work/data.ext4"
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
  chown -R 0:0 "$rootdir/etc/glyco" "$rootdir/etc/systemd/network" "$rootdir/etc/systemd/system.conf.d"
  systemd-sysusers --root="$rootdir" >/dev/null
  # The image's glyco group (numeric: the build host's may differ or not exist).
  local gid
  gid=$(grep '^glyco:' "$rootdir/etc/group" | cut -d: -f3)
  chgrp "$gid" "$rootdir/etc/glyco" "$rootdir/etc/glyco/hub.toml"
  chmod 0750 "$rootdir/etc/glyco"
  chmod 0640 "$rootdir/etc/glyco/hub.toml"
  systemctl --root="$rootdir" enable glyco-hub.service systemd-networkd.service >/dev/null 2>&1
  if [[ $arch == amd64 ]]; then
    # Over-the-air updates (docs/FLEET.md, "Updates"): RAUC's slots, the
    # release keyring, the installer the hub asks for, the health check.
    install -D -m 0644 image/amd64/rauc-system.conf "$rootdir/etc/rauc/system.conf"
    if [[ -n ${GLYCO_RELEASE_KEYRING:-} ]]; then
      install -m 0644 "$GLYCO_RELEASE_KEYRING" "$rootdir/etc/rauc/keyring.pem"
    else
      log "$arch: no GLYCO_RELEASE_KEYRING: this image will refuse every update bundle"
    fi
    install -m 0644 image/amd64/fstab "$rootdir/etc/fstab"
    for unit in glyco-update.path glyco-update.service glyco-update-health.service; do
      install -m 0644 "systemd/$unit" "$rootdir/usr/lib/systemd/system/$unit"
    done
    systemctl --root="$rootdir" enable glyco-update.path glyco-update-health.service >/dev/null 2>&1
    mkdir -p "$rootdir/data" "$rootdir/boot/efi" "$rootdir/var/lib/glyco" "$rootdir/var/lib/rauc" \
      "$rootdir/var/lib/glyco-update"
    # GRUB loads the slot's kernel by a fixed name.
    ln -sf "$(basename "$(ls "$rootdir"/boot/vmlinuz-* | sort -V | tail -1)")" "$rootdir/boot/vmlinuz"
    ln -sf "$(basename "$(ls "$rootdir"/boot/initrd.img-* | sort -V | tail -1)")" "$rootdir/boot/initrd.img"
  fi
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
  release=${GLYCO_RELEASE:-$(git describe --always --dirty 2>/dev/null || echo unknown)}
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
  if [[ $arch == amd64 ]]; then
    # A slot holds only the system: the state is on the data partition.
    root_mib=$(($(du -sm "$rootdir" | cut -f1) * 5 / 4 + 384))
  else
    root_mib=$(($(du -sm "$rootdir" | cut -f1) * 3 / 2 + 768))
  fi
  E2FSPROGS_FAKE_TIME=$SOURCE_DATE_EPOCH mke2fs -q -t ext4 -L glyco-root -U "$root_uuid" \
    -E "root_owner=0:0,hash_seed=$root_uuid,lazy_itable_init=0" -d "$rootdir" "$work/root.ext4" "${root_mib}M"

  if [[ $arch == amd64 ]]; then
    ab_disk "$rootdir" "$work"
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
