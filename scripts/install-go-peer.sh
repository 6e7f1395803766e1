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
# A fresh clone on a warm machine copies the binary built from the same sources by the same
# Go (kept in LKPROTO_CACHE, default ~/.cache/lkproto, by a hash of both) instead of linking
# it again (3 s on a quiet machine, 12 s under load).
KEY=$( (go version; cd "$SRC" && cat go.mod go.sum $(ls ./*.go | sort)) | sha256sum | cut -c1-16)
CACHED="${LKPROTO_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/lkproto}/go-peer-$KEY"
if [ -x "$CACHED" ]; then
  install -m 0755 "$CACHED" "$DEST"
  echo "lkproto-go-peer from the build cache ($CACHED) -> .venv/bin/lkproto-go-peer"
  exit 0
fi
start=$(date +%s)
(cd "$SRC" && GOFLAGS="-buildvcs=false -mod=readonly" go build -trimpath -o "$DEST.tmp" .)
mv -f "$DEST.tmp" "$DEST"
mkdir -p "$(dirname "$CACHED")" && install -m 0755 "$DEST" "$CACHED.tmp" && mv -f "$CACHED.tmp" "$CACHED"
echo "lkproto-go-peer built in $(( $(date +%s) - start ))s -> .venv/bin/lkproto-go-peer"
