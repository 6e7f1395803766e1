#!/usr/bin/env bash
# Build the Go SDK test peer (peers/go) and place it at .venv/bin/lkproto-go-peer.
#
# peers/go/go.mod and go.sum pin github.com/livekit/server-sdk-go/v2 and everything it needs;
# every module comes from the Go module proxy, checked against go.sum (-mod=readonly: the
# build never rewrites them). Go's module and build caches are left at their defaults, so
# later runs reuse them. The build is skipped when the binary is newer than every source.
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
SRC="$ROOT/peers/go"
DEST="$ROOT/.venv/bin/lkproto-go-peer"

if [ -x "$DEST" ] && [ -z "$(find "$SRC" -newer "$DEST" -type f \( -name "*.go" -o -name go.mod -o -name go.sum \))" ]; then
  exit 0
fi
command -v go >/dev/null || { echo "install-go-peer: 'go' is not on PATH" >&2; exit 1; }
mkdir -p "$(dirname "$DEST")"
start=$(date +%s)
(cd "$SRC" && GOFLAGS="-buildvcs=false -mod=readonly" go build -trimpath -o "$DEST.tmp" .)
mv -f "$DEST.tmp" "$DEST"
echo "lkproto-go-peer built in $(( $(date +%s) - start ))s -> .venv/bin/lkproto-go-peer"
