#!/usr/bin/env bash
# Builds the OCI image from a release binary: FROM scratch, holding the binary, the shared
# libraries it links (copied from this Debian system), the CA certificates, a non-root user
# (10001) and the image's settings (deploy/container/switchboard.toml). The data directory is a
# volume; the root filesystem can be mounted read-only; HEALTHCHECK runs `switchboard probe`.
#
#   scripts/image.sh [BINARY] [TAG]     (default: target/dist/switchboard, switchboard:<version>)
#
# Needs podman (Debian's). On machines where crun cannot run (hybrid cgroups), name a
# containers.conf with runtime = "runc" in CONTAINERS_CONF (scripts/test.sh does).
set -euo pipefail
cd "$(dirname "$0")/.."
bin=${1:-target/dist/switchboard}
version=$(sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -1)
tag=${2:-switchboard:$version}
[ -x "$bin" ] || { echo "image: no binary at $bin (cargo build --profile dist)" >&2; exit 1; }
command -v podman >/dev/null || { echo "image: podman missing (apt-get install podman runc)" >&2; exit 1; }

ctx=$(mktemp -d)
trap 'rm -rf "$ctx"' EXIT
root="$ctx/rootfs"
mkdir -p "$root/usr/bin" "$root/etc/ssl/certs" "$root/etc/switchboard" "$root/var/lib/switchboard" "$root/tmp"
cp "$bin" "$root/usr/bin/switchboard"
# The C library and the rest the binary links, at the paths the loader looks in.
for lib in $(ldd "$bin" | awk '$2 == "=>" && $3 ~ /^\// { print $3 } $1 ~ /^\// { print $1 }'); do
  mkdir -p "$root$(dirname "$lib")"
  cp -L "$lib" "$root$lib"
done
cp /etc/ssl/certs/ca-certificates.crt "$root/etc/ssl/certs/"
cp deploy/container/switchboard.toml "$root/etc/switchboard/switchboard.toml"
echo 'switchboard:x:10001:10001:Switchboard:/var/lib/switchboard:/nonexistent' > "$root/etc/passwd"
echo 'switchboard:x:10001:' > "$root/etc/group"
chown 10001:10001 "$root/var/lib/switchboard"
chmod 0700 "$root/var/lib/switchboard"
chmod 1777 "$root/tmp"

revision=$(git rev-parse HEAD 2>/dev/null || echo unknown)
source=$(git remote get-url origin 2>/dev/null || echo "switchboard (local build)")
cat > "$ctx/Containerfile" <<CONTAINERFILE
FROM scratch
COPY rootfs/ /
USER 10001:10001
ENV SWITCHBOARD_CONFIG=/etc/switchboard/switchboard.toml \\
    SWITCHBOARD_DATA_DIR=/var/lib/switchboard
VOLUME /var/lib/switchboard
EXPOSE 8080
HEALTHCHECK --interval=10s --timeout=3s --retries=3 CMD ["/usr/bin/switchboard", "probe"]
STOPSIGNAL SIGTERM
LABEL org.opencontainers.image.title="switchboard" \\
      org.opencontainers.image.description="Self-hosted live-chat backend" \\
      org.opencontainers.image.version="$version" \\
      org.opencontainers.image.revision="$revision" \\
      org.opencontainers.image.source="$source" \\
      org.opencontainers.image.licenses="MIT"
ENTRYPOINT ["/usr/bin/switchboard"]
CONTAINERFILE
# Docker format: OCI images have no HEALTHCHECK.
podman build --quiet --format docker -t "$tag" "$ctx" >/dev/null
echo "image: built $tag from $bin"
