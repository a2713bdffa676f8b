#!/usr/bin/env bash
# Installs what the demo and the tests need. Idempotent: a second run changes
# nothing. Pinned: npm tools by tools/package-lock.json, Python packages by
# ml/training/requirements.txt, Debian packages by the Debian 12 release.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"

as_root() { if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi; }

# Debian packages: libdbus for bluer, a private D-Bus and python3-dbusmock for
# the mock BlueZ, mosquitto clients as the independent MQTT peer, openssl for
# the TLS test's throwaway certificate, zbar-tools to read the family's
# emergency-share QR codes back, chromium for the web app's browser tests,
# systemd for systemd-analyze, -sysusers and -tmpfiles checking systemd/,
# prometheus (server and promtool) scraping the hub and the clinic node,
# rauc and squashfs-tools building and checking update bundles.
# libdbus-1-dev is named with the machine's architecture: the image build's
# arm64 copy (image/build.sh) must not pass for it.
debian_packages=(pkg-config "libdbus-1-dev:$(dpkg --print-architecture)" dbus-daemon python3-dbusmock mosquitto-clients openssl zbar-tools chromium systemd prometheus rauc squashfs-tools)
missing=()
for pkg in "${debian_packages[@]}"; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "bootstrap: installing Debian packages: ${missing[*]}"
  as_root apt-get update -qq
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# npm tools (solc, anvil, cast), into tools/node_modules, exactly as locked.
stamp=tools/node_modules/.glyco-lock
if ! cmp -s tools/package-lock.json "$stamp" 2>/dev/null; then
  echo "bootstrap: installing pinned npm tools (solc, anvil, cast)"
  (cd tools && npm ci --no-audit --no-fund --loglevel=error)
  cp tools/package-lock.json "$stamp"
fi

# Python environment for the ML data generator and training (ml/training).
requirements=ml/training/requirements.txt
if [ -f "$requirements" ]; then
  venv=ml/.venv
  if ! cmp -s "$requirements" "$venv/.glyco-requirements" 2>/dev/null; then
    echo "bootstrap: installing pinned Python packages into $venv"
    python3 -m venv "$venv"
    "$venv/bin/pip" install --quiet --disable-pip-version-check -r "$requirements"
    cp "$requirements" "$venv/.glyco-requirements"
  fi
fi

# Independent checkers the tests run (FHIR validation, AGP figures, a
# Nightscout client, Playwright driving chromium): their own venv, every
# package pinned in the file, none resolved.
requirements=tests/python/requirements.txt
venv=tests/python/.venv
if ! cmp -s "$requirements" "$venv/.glyco-requirements" 2>/dev/null; then
  echo "bootstrap: installing pinned Python checkers into $venv"
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet --disable-pip-version-check --no-deps -r "$requirements"
  cp "$requirements" "$venv/.glyco-requirements"
fi

# cargo-deny, pinned, for the supply-chain check in scripts/test.sh (built
# from crates.io once, about 3 minutes on 2 cores).
cargo_deny_version=0.20.2
if [ "$(cargo deny --version 2>/dev/null)" != "cargo-deny $cargo_deny_version" ]; then
  echo "bootstrap: installing cargo-deny $cargo_deny_version"
  cargo install --quiet --locked cargo-deny --version "$cargo_deny_version"
fi
