#!/usr/bin/env bash
# Checks systemd/: every unit passes `systemd-analyze verify` without a
# word, the hub's unit scores 2.0 or below in `systemd-analyze security`
# (offline), and sysusers.d / tmpfiles.d apply cleanly to an empty root.
# systemd need not be PID 1: everything runs against a throwaway root that
# holds the host's stock units and the project's.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
max_exposure=2.0

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
mkdir -p "$tmp/usr/bin" "$tmp/usr/lib/systemd" "$tmp/etc/systemd/system" "$tmp/etc/glyco"
cp -a /usr/lib/systemd/system "$tmp/usr/lib/systemd/"
cp "$root"/systemd/*.service "$root"/systemd/*.path "$tmp/etc/systemd/system/"
# verify wants the programs to exist; what they are does not matter here.
for program in glyco-hub glyco-clinic; do
  install -m 0755 /bin/true "$tmp/usr/bin/$program"
done
for instance in proxy replica alert-inbox dashboard; do
  echo 'GLYCO_ARGS=' >"$tmp/etc/glyco/clinic-$instance.env"
done

units=(glyco-hub.service glyco-clinic@proxy.service glyco-clinic@replica.service
       glyco-clinic@alert-inbox.service glyco-clinic@dashboard.service
       glyco-update.path glyco-update.service glyco-update-health.service)
failed=0
for unit in "${units[@]}"; do
  # Unknown keys and bad values are only warnings to verify: any output fails.
  verdict="verify clean"
  if ! out=$(systemd-analyze verify --root="$tmp" "$unit" 2>&1) || [ -n "$out" ]; then
    echo "systemd-analyze verify $unit:"; echo "$out"; failed=1; verdict="verify FAILED"
  fi
  exposure=$(systemd-analyze security --offline=yes --root="$tmp" "$unit" 2>&1 \
    | sed -n 's/.*Overall exposure level for [^:]*: \([0-9.]*\).*/\1/p')
  echo "  $unit: $verdict, exposure $exposure"
  if [ "$unit" = glyco-hub.service ] && ! awk -v e="$exposure" -v m="$max_exposure" 'BEGIN { exit !(e != "" && e <= m) }'; then
    echo "the hub's exposure $exposure is above $max_exposure"; failed=1
  fi
done

# sysusers and tmpfiles into an empty root: the user exists, the state
# directory is 0700 and the hub's.
sys="$tmp/sysroot"
mkdir -p "$sys/etc"
systemd-sysusers --root="$sys" "$root/systemd/sysusers.d/glyco.conf"
grep -q '^glyco:' "$sys/etc/passwd" || { echo "sysusers made no glyco user"; failed=1; }
systemd-tmpfiles --root="$sys" --create "$root/systemd/tmpfiles.d/glyco.conf"
mode=$(stat -c '%a' "$sys/var/lib/glyco")
[ "$mode" = 700 ] || { echo "/var/lib/glyco is $mode, not 700"; failed=1; }
exit $failed
