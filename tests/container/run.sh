#!/usr/bin/env bash
# The container image, run as an operator would: built by scripts/image.sh from the release
# binary, started read-only as its non-root user with the data directory a volume, answering
# /readyz and its HEALTHCHECK, carrying chats (switchboard-loadtest chat, which fails on any
# lost or duplicated message), and stopping with SIGTERM within the drain.
#
#   tests/container/run.sh BINARY LOADTEST
set -euo pipefail
cd "$(dirname "$0")/../.."
bin=$1
lt=$2
fail() { echo "container: $*" >&2; exit 1; }
command -v podman >/dev/null || fail "podman missing (apt-get install podman runc)"

work=$(mktemp -d)
name="switchboard-test-$$"
cleanup() {
  podman rm -f -t 0 "$name" >/dev/null 2>&1 || true
  podman rmi -f switchboard:test >/dev/null 2>&1 || true
  rm -rf "$work"
}
trap cleanup EXIT
# crun cannot run on this kernel's hybrid cgroups, and setting RLIMIT_NPROC is not permitted.
if [ -z "${CONTAINERS_CONF:-}" ]; then
  cat > "$work/containers.conf" <<'CONF'
[containers]
default_ulimits = []
[engine]
runtime = "runc"
cgroup_manager = "cgroupfs"
events_logger = "file"
CONF
  export CONTAINERS_CONF="$work/containers.conf"
fi

scripts/image.sh "$bin" switchboard:test
labels=$(podman image inspect switchboard:test --format '{{json .Labels}}')
grep -q '"org.opencontainers.image.version":"' <<<"$labels" || fail "no version label: $labels"
grep -q '"org.opencontainers.image.source":"' <<<"$labels" || fail "no source label: $labels"
user=$(podman image inspect switchboard:test --format '{{.Config.User}}')
[ "$user" = "10001:10001" ] || fail "the image runs as '$user', not the non-root user"

port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
"$lt" config --agents 4 --slots 5 > "$work/switchboard.toml"
mkdir -p "$work/data"
chown 10001:10001 "$work/data"
chmod 0700 "$work/data"
podman run -d --name "$name" --network host --read-only \
  -e SWITCHBOARD_LISTEN="127.0.0.1:$port" \
  -v "$work/data:/var/lib/switchboard" \
  -v "$work/switchboard.toml:/etc/switchboard/switchboard.toml:ro" \
  switchboard:test >/dev/null

ready=0
for _ in $(seq 1 100); do
  if "$bin" probe "127.0.0.1:$port" >/dev/null 2>&1; then ready=1; break; fi
  # Waiting for the container's process to bind: each probe itself waits up to 2 s.
  podman container exists "$name" || break
  read -r -t 0.1 < /dev/zero || true
done
[ "$ready" = 1 ] || { podman logs "$name" >&2 || true; fail "/readyz never answered 200"; }
podman healthcheck run "$name" >/dev/null || fail "the image's HEALTHCHECK fails on a ready node"

"$lt" chat --addr "127.0.0.1:$port" --visitors 20 --agents 4 --start-rate 20 --msg-rate 100 \
  --duration 2 --sources 1 --timeout 60 > "$work/chat.txt" \
  || { cat "$work/chat.txt" >&2; podman logs "$name" 2>&1 | tail -20 >&2; fail "chats through the container lost or failed"; }
[ -f "$work/data/switchboard.db" ] || fail "nothing written to the data volume"
[ "$(stat -c %u "$work/data/switchboard.db")" = 10001 ] || fail "the database is not the container user's"

podman stop -t 30 "$name" >/dev/null
code=$(podman inspect "$name" --format '{{.State.ExitCode}}')
[ "$code" = 0 ] || { podman logs "$name" 2>&1 | tail -20 >&2; fail "the node exited $code on SIGTERM"; }

# The Kubernetes manifests agree with the image: their settings pass `check` with the Secret's
# environment, and the user, the port and the probes are the image's.
k8s=deploy/kubernetes
awk '/switchboard.toml: \|/ { on = 1; next } on && /^    / { print substr($0, 5); next } on { exit }' \
  "$k8s/configmap.yaml" > "$work/k8s.toml"
[ -s "$work/k8s.toml" ] || fail "no settings in $k8s/configmap.yaml"
secret=$(sed -n 's/^ *SWITCHBOARD_SECRET: "\(.*\)"/\1/p' "$k8s/secret.yaml")
env -u SWITCHBOARD_REDIS_URL -u SWITCHBOARD_DATABASE_URL SWITCHBOARD_SECRET="$secret" \
  "$bin" --config "$work/k8s.toml" check >/dev/null || fail "the ConfigMap's settings are refused"
grep -q 'listen = "0.0.0.0:8080"' "$work/k8s.toml" || fail "the ConfigMap does not listen on 8080"
grep -q 'containerPort: 8080' "$k8s/deployment.yaml" || fail "the Deployment's port is not 8080"
grep -q 'runAsUser: 10001' "$k8s/deployment.yaml" || fail "the Deployment's user is not the image's"
grep -q 'path: /readyz' "$k8s/deployment.yaml" || fail "no readiness probe on /readyz"
grep -q 'path: /healthz' "$k8s/deployment.yaml" || fail "no liveness probe on /healthz"
grep -q 'readOnlyRootFilesystem: true' "$k8s/deployment.yaml" || fail "the root filesystem is writable"
for kind in Deployment Service ConfigMap Secret PodDisruptionBudget; do
  grep -q "^kind: $kind" "$k8s"/*.yaml || fail "no $kind in $k8s"
done
echo "container: image built, ran read-only as 10001, ready, healthy, chats carried, stopped cleanly; manifests agree"
