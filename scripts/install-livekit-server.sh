#!/usr/bin/env bash
# Build livekit-server from the Go module proxy and place it at .venv/bin/livekit-server.
#
# The version is pinned: newer servers carry `replace` directives that `go install pkg@ver`
# refuses. Go's module and build caches (GOMODCACHE, GOCACHE) are left at their defaults so
# repeated runs on the same machine reuse them; nothing is fetched from outside the proxy.
set -euo pipefail
VERSION="${LIVEKIT_SERVER_VERSION:-v1.13.5}"
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
DEST="$ROOT/.venv/bin/livekit-server"

if [ -x "$DEST" ] && "$DEST" --version 2>/dev/null | grep -q "version ${VERSION#v}\$"; then
  exit 0
fi
command -v go >/dev/null || { echo "install-livekit-server: 'go' is not on PATH" >&2; exit 1; }
GOBIN_DIR="$ROOT/.cache/gobin"
mkdir -p "$GOBIN_DIR" "$(dirname "$DEST")"
start=$(date +%s)
GOBIN="$GOBIN_DIR" GOFLAGS="-buildvcs=false" go install "github.com/livekit/livekit-server/cmd/server@${VERSION}"
install -m 0755 "$GOBIN_DIR/server" "$DEST"
echo "livekit-server ${VERSION} built in $(( $(date +%s) - start ))s -> .venv/bin/livekit-server"
