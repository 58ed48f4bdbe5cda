#!/usr/bin/env bash
# The API contract: schemathesis (from PyPI, pinned) generates requests from /v1/openapi.json
# against a real server, on embedded state and on Redis, and fails on any finding: a 5xx, a
# status code or response shape the document does not declare, a request the document allows
# that is refused, or one it forbids that is accepted. Bounded: EXAMPLES cases per operation
# and phase, a fixed seed so a run can be replayed.
# usage: tests/contract/run.sh SWITCHBOARD_BINARY
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
bin="$(realpath "$1")"
examples="${EXAMPLES:-25}"
seed="${SEED:-1}"
venv="${SCHEMATHESIS_VENV:-$here/../../target/schemathesis}"
if [ ! -x "$venv/bin/schemathesis" ]; then
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet --disable-pip-version-check 'schemathesis==4.32.5'
fi
if [ ! -x "$venv/bin/openapi-spec-validator" ]; then
  "$venv/bin/pip" install --quiet --disable-pip-version-check 'openapi-spec-validator==0.7.2'
fi

# The document itself first: valid OpenAPI 3.0 (openapi-spec-validator, PyPI, pinned), and
# every operation named (a unique operationId) and tagged with a tag the document lists.
doc="$here/../../src/http/openapi.json"
"$venv/bin/openapi-spec-validator" "$doc"
python3 - "$doc" <<'PY'
import json, sys
d = json.load(open(sys.argv[1]))
tags = {t["name"] for t in d.get("tags", [])}
ids, bad = set(), []
for path, item in d["paths"].items():
    for method, op in item.items():
        if method not in ("get", "put", "post", "delete", "patch"):
            continue
        oid = op.get("operationId")
        if not oid or oid in ids:
            bad.append(f"{method.upper()} {path}: operationId {oid!r} missing or repeated")
        ids.add(oid)
        if not op.get("tags") or not set(op["tags"]) <= tags:
            bad.append(f"{method.upper()} {path}: tags {op.get('tags')!r} not among {sorted(tags)}")
if bad:
    sys.exit("contract: the OpenAPI document:\n" + "\n".join(bad))
print(f"contract: the OpenAPI document is valid; {len(ids)} operations, each named and tagged")
PY
work="$(mktemp -d /tmp/switchboard-contract-XXXXXX)"
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

# Waits for the demo's admin token on the server's stdout.
start() {
  local name="$1"; shift
  mkdir -p "$work/$name"
  "$bin" --listen 127.0.0.1:0 --data-dir "$work/$name" "$@" >"$work/$name.out" 2>"$work/$name.err" &
  pids+=($!)
  for _ in $(seq 300); do
    grep -q '^admin token' "$work/$name.out" 2>/dev/null && return 0
    sleep 0.1
  done
  echo "contract: $name server did not start:" >&2
  cat "$work/$name.err" >&2
  exit 1
}

check() {
  local name="$1"
  local addr token
  addr="$(sed -n 's/^switchboard listening on \([^ ]*\) .*/\1/p' "$work/$name.out")"
  token="$(sed -n 's/^admin token (REST API): //p' "$work/$name.out")"
  # The document carries no examples, so the examples phase would only report every operation
  # as skipped: it is not run. (The summary's count of skipped generated cases is cases
  # schemathesis chose not to send; its JUnit report lists every operation, none skipped.)
  echo "-- schemathesis on $name state ($addr), $examples examples per operation, seed $seed"
  (cd "$here" && "$venv/bin/schemathesis" run "http://$addr/v1/openapi.json" \
      --header "Authorization: Bearer $token" --checks all --max-examples "$examples" \
      --phases coverage,fuzzing,stateful \
      --seed "$seed" --generation-database none --workers 2 --no-color \
      --report junit --report-dir "$work/report-$name") || {
    echo "contract: schemathesis found problems on $name state (above); the server's log ends:" >&2
    grep -v ' INFO ' "$work/$name.err" | tail -n 40 >&2
    exit 1
  }
}

start embedded
check embedded

port="$(free_port)"
redis-server --port "$port" --bind 127.0.0.1 --save '' --appendonly no \
  --dir "$work" >"$work/redis.log" 2>&1 &
pids+=($!)
for _ in $(seq 100); do
  redis-cli -p "$port" ping >/dev/null 2>&1 && break
  sleep 0.1
done
start redis --redis-url "redis://127.0.0.1:$port/"
check redis
