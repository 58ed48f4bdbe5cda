#!/usr/bin/env bash
# The project's test command: installs what the tests need (redis-server, postgresql, chromium,
# openssl for the certificates of the Redis-over-TLS test, python3 for schemathesis (PyPI),
# nginx and caddy for the reverse-proxy tests, dpkg-dev for the Debian package, prometheus
# for promtool, podman and runc for the container image,
# the npm packages of tests/browser, cargo-deny from crates.io), then format, lint, the
# dependency policy and every test, Rust and browser.
# Tests start their own throwaway servers (Switchboard on 127.0.0.1:0, redis-server and
# PostgreSQL on free ports; PostgreSQL runs as the `postgres` account when this runs as root)
# unless SWITCHBOARD_TEST_REDIS_URL / SWITCHBOARD_TEST_POSTGRES_URL name servers to use.
set -euo pipefail
cd "$(dirname "$0")/.."

missing=()
command -v redis-server >/dev/null 2>&1 || missing+=(redis-server)
command -v redis-cli >/dev/null 2>&1 || missing+=(redis-tools)
compgen -G '/usr/lib/postgresql/*/bin/postgres' >/dev/null || missing+=(postgresql)
[ -x /usr/bin/chromium ] || missing+=(chromium)
command -v node >/dev/null 2>&1 || missing+=(nodejs npm)
command -v openssl >/dev/null 2>&1 || missing+=(openssl)
command -v dpkg-shlibdeps >/dev/null 2>&1 || missing+=(dpkg-dev)
command -v nginx >/dev/null 2>&1 || missing+=(nginx-light)
command -v caddy >/dev/null 2>&1 || missing+=(caddy)
command -v promtool >/dev/null 2>&1 || missing+=(prometheus)
command -v podman >/dev/null 2>&1 || missing+=(podman runc)
python3 -c 'import venv, ensurepip' >/dev/null 2>&1 || missing+=(python3 python3-venv)
if ((${#missing[@]})); then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "test.sh: installing ${missing[*]} from Debian's packages"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
  else
    echo "test.sh: missing ${missing[*]}; install it (Debian: sudo apt-get install ${missing[*]})" >&2
    exit 1
  fi
fi

# What the tests write to the temp dir (data directories, configurations, the Redis, Sentinel,
# cluster and PostgreSQL directories) goes into one directory of this run's, removed when the
# run ends however it ends. World-writable like /tmp: PostgreSQL runs as its own account.
scratch=$(mktemp -d "${TMPDIR:-/tmp}/switchboard-run-XXXXXX")
chmod 1777 "$scratch"
trap 'rm -rf "$scratch"' EXIT
export TMPDIR="$scratch"

echo "== cargo fmt --check"
cargo fmt --all -- --check
echo "== cargo clippy"
cargo clippy --workspace --all-targets -- -D warnings
echo "== cargo deny (bans, licenses, sources)"
# cargo-deny (crates.io), pinned, built once into target/tools (about 3 minutes on two cores).
deny=target/tools/bin/cargo-deny
if [ ! -x "$deny" ] || [ "$("$deny" --version)" != "cargo-deny 0.20.2" ]; then
  cargo install --quiet --locked --root target/tools cargo-deny@0.20.2
fi
"$deny" check bans licenses sources
echo "== cargo test"
cargo test --workspace --all-targets
# The shipped alert rules parse and are well-formed (promtool, from Debian's prometheus); the
# metric names they and the dashboard use are checked against a running server by
# http::metrics_follow_a_chat.
echo "== alert rules (promtool)"
promtool check rules docs/monitoring/alerts.yml

# A short run of every load scenario (idle, chat, burst, churn) against both backends, through
# the public protocol; it fails on any lost or duplicated message or any error.
echo "== load test smoke"
# cargo test builds a binary only when an integration test names it: build both explicitly.
cargo build --workspace --bins
target/debug/switchboard-loadtest smoke --server target/debug/switchboard

# The API contract: schemathesis (PyPI) against /v1/openapi.json on both state backends; any
# finding fails the run.
echo "== API contract (schemathesis)"
tests/contract/run.sh target/debug/switchboard

# The widget and the console in a real browser: playwright-core (npm) driving Debian's chromium against the
# switchboard binary that cargo test just built, on embedded state and on Redis.
(
  cd tests/browser
  if [ ! -d node_modules/playwright-core ] || [ ! -d node_modules/ws ] || [ ! -d node_modules/axe-core ] \
    || [ ! -d node_modules/typescript ]; then
    npm ci --no-audit --no-fund --loglevel=error
  fi
)
# The widget and the console are plain JavaScript with // @ts-check and JSDoc types: tsc (npm,
# pinned in tests/browser) checks them without emitting anything.
echo "== type check (tsc)"
tests/browser/node_modules/.bin/tsc -p widget
echo "== browser tests"
(
  cd tests/browser
  SWITCHBOARD_BIN="$PWD/../../target/debug/switchboard" node --test --test-concurrency=1 widget.test.mjs console.test.mjs layout.test.mjs app.test.mjs
)

# The Debian package (cargo deb --profile dist: stripped, fat LTO, takes a few minutes):
# installed into a throwaway root, its files, size, configuration and unit checked.
echo "== Debian package"
scripts/package.sh

# The container image (podman, FROM scratch, from the package's release binary): run read-only
# as its non-root user, ready, healthy, carrying chats, stopped cleanly; and the Kubernetes
# manifests' settings checked with the binary.
echo "== container image"
tests/container/run.sh target/dist/switchboard target/debug/switchboard-loadtest
