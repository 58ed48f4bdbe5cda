#!/usr/bin/env bash
# Builds the Debian package with `cargo deb` (installed into target/tools when missing) and
# checks it: installed with dpkg into a throwaway root, every file lands where the docs say,
# the binary is stripped and under 15 MB, the shipped configuration is valid (the packaged
# binary migrates a fresh database with it), and the unit and maintainer scripts parse.
# usage: scripts/package.sh   (prints the .deb's path last)
set -euo pipefail
cd "$(dirname "$0")/.."
tools="$PWD/target/tools"
if ! command -v cargo-deb >/dev/null 2>&1 && [ ! -x "$tools/bin/cargo-deb" ]; then
  echo "package: installing cargo-deb 3.8.0 from crates.io into target/tools"
  cargo install --quiet --locked cargo-deb --version 3.8.0 --root "$tools"
fi
export PATH="$tools/bin:$PATH"
deb="$(cargo deb -p switchboard --profile dist 2>/dev/null | tail -n 1)"
[ -f "$deb" ] || { echo "package: cargo deb made no package" >&2; exit 1; }

root="$(mktemp -d /tmp/switchboard-deb-XXXXXX)"
trap 'rm -rf "$root"' EXIT
mkdir -p "$root/var/lib/dpkg/updates" "$root/var/lib/dpkg/info"
touch "$root/var/lib/dpkg/status"
# Unpack only: the maintainer scripts would add a user to this machine, not to the root.
dpkg --root="$root" --force-depends --unpack "$deb" >/dev/null
fail() { echo "package: $*" >&2; exit 1; }
for f in usr/bin/switchboard etc/switchboard/switchboard.toml etc/default/switchboard \
  lib/systemd/system/switchboard.service usr/share/doc/switchboard/operations.md \
  usr/share/doc/switchboard/monitoring/alerts.yml; do
  # Unpacked, not configured: dpkg keeps a conffile as .dpkg-new until configure.
  [ -f "$root/$f" ] || [ -f "$root/$f.dpkg-new" ] || fail "/$f is not in the package"
done
dpkg --root="$root" -L switchboard | grep -qx /usr/bin/switchboard || fail "dpkg does not list the binary"
info="$(dpkg-deb --info "$deb")"
for s in postinst prerm postrm; do
  grep -q " $s" <<<"$info" || fail "no $s maintainer script"
  dpkg-deb --ctrl-tarfile "$deb" | tar -xO "./$s" | sh -n || fail "$s does not parse"
done
grep -q '^ Depends:.*adduser' <<<"$info" || fail "does not depend on adduser"
grep -q '^ Depends:.*ca-certificates' <<<"$info" || fail "does not depend on ca-certificates (TLS to webhooks and SMTP trusts the system's roots)"
grep -q '^ Conffiles\|conffiles' <<<"$info" || fail "no conffiles"

size=$(stat -c %s "$root/usr/bin/switchboard")
[ "$size" -lt 15000000 ] || fail "the binary is $size bytes (want under 15 MB)"
if readelf -S "$root/usr/bin/switchboard" | grep -q '\.symtab'; then fail "the binary is not stripped"; fi

data="$root/tmp-data"
mkdir -p "$data"
conf="$root/etc/switchboard/switchboard.toml"
[ -f "$conf" ] || conf="$conf.dpkg-new"
"$root/usr/bin/switchboard" --config "$conf" \
  --data-dir "$data" migrate >/dev/null || fail "the shipped configuration is refused"
"$root/usr/bin/switchboard" --help | grep -q SWITCHBOARD_SECRET || fail "--help lacks the environment"
if command -v systemd-analyze >/dev/null 2>&1; then
  unit="$root/lib/systemd/system/switchboard.service"
  # The unit's ExecStart points at /usr/bin, which exists only inside the root: check the rest.
  out="$(systemd-analyze verify "$unit" 2>&1 | grep -v 'Command /usr/bin/switchboard is not executable\|/usr/bin/switchboard.*No such file' || true)"
  [ -z "$out" ] || fail "systemd-analyze verify: $out"
  # The sandbox: systemd's own exposure rating of the unit, at most 2.5 (of 10).
  exposure="$(systemd-analyze security --offline=true "$unit" 2>&1 | sed -n 's/.*Overall exposure level for [^:]*: \([0-9.]*\).*/\1/p')"
  [ -n "$exposure" ] || fail "systemd-analyze security gave no rating"
  awk -v e="$exposure" 'BEGIN { exit !(e <= 2.5) }' || fail "systemd-analyze security rates the unit $exposure (over 2.5)"
fi
echo "package: $(basename "$deb") ($(stat -c %s "$deb") bytes; binary $size bytes) checked"
echo "$deb"
