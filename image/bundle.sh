#!/usr/bin/env bash
# Builds a signed RAUC update bundle for the amd64 appliance from the slot
# image that image/build.sh made (docs/FLEET.md, "Updates").
#
#   image/bundle.sh --cert CERT --key KEY [--rootfs FILE] [--version V] [--out FILE]
#
#   --cert, --key  the clinic's release certificate and key (PEM); hubs take
#                  bundles whose signature chains to the keyring baked into
#                  their image (GLYCO_RELEASE_KEYRING at build time)
#   --rootfs       the slot image (default $GLYCO_IMAGE_DIR/glyco-amd64.rootfs.ext4)
#   --version      the release (default: the image's IMAGE_VERSION)
#   --out          the bundle (default $GLYCO_IMAGE_DIR/glyco-amd64-<version>.raucb)
#
# Prints the bundle's path, version and SHA-256: the consortium publishes
# that hash and version on chain (Releases.publish) before any hub installs
# it, and the clinic's fleet node offers it (glyco-clinic alert-inbox
# --release-bundle).
set -euo pipefail
out_dir=${GLYCO_IMAGE_DIR:-/var/cache/glyco/image}
rootfs="$out_dir/glyco-amd64.rootfs.ext4"
cert='' key='' version='' out=''
while (($#)); do
  case "$1" in
    --cert) cert=$2; shift 2 ;;
    --key) key=$2; shift 2 ;;
    --rootfs) rootfs=$2; shift 2 ;;
    --version) version=$2; shift 2 ;;
    --out) out=$2; shift 2 ;;
    *) echo "usage: image/bundle.sh --cert CERT --key KEY [--rootfs FILE] [--version V] [--out FILE]" >&2; exit 2 ;;
  esac
done
[[ -n $cert && -n $key ]] || { echo "bundle: --cert and --key are needed" >&2; exit 2; }
[[ -s $rootfs ]] || { echo "bundle: no slot image at $rootfs (image/build.sh amd64 makes it)" >&2; exit 1; }
for tool in rauc mksquashfs debugfs; do
  command -v "$tool" >/dev/null || { echo "bundle: $tool is missing (Debian: rauc squashfs-tools e2fsprogs)" >&2; exit 1; }
done
if [[ -z $version ]]; then
  version=$(debugfs -R 'cat /usr/lib/os-release' "$rootfs" 2>/dev/null | sed -n 's/^IMAGE_VERSION=//p')
  [[ -n $version ]] || { echo "bundle: the image names no IMAGE_VERSION; give --version" >&2; exit 1; }
fi
[[ $version =~ ^[A-Za-z0-9._+-]{1,80}$ ]] || { echo "bundle: version $version: letters, digits and . _ + - only, at most 80" >&2; exit 2; }
out=${out:-$out_dir/glyco-amd64-$version.raucb}

work=$(mktemp -d "${TMPDIR:-/tmp}/glyco-bundle.XXXX")
trap 'rm -rf "$work"' EXIT
# The slot image goes in as it is (a hard link when it can: no copy).
ln "$rootfs" "$work/rootfs.ext4" 2>/dev/null || cp --sparse=always "$rootfs" "$work/rootfs.ext4"
cat >"$work/manifest.raucm" <<MANIFEST
[update]
compatible=glyco-amd64
version=$version

[bundle]
format=verity

[image.rootfs]
filename=rootfs.ext4
MANIFEST
rm -f "$out"
rauc bundle --cert="$cert" --key="$key" "$work" "$out" >/dev/null
sha=$(sha256sum "$out" | cut -d' ' -f1)
echo "bundle $out version $version sha256 0x$sha bytes $(stat -c %s "$out")"
