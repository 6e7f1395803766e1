#!/usr/bin/env bash
# Build livekit-server from the Go module proxy and place it at .venv/bin/livekit-server.
#
# The version is pinned: newer servers carry `replace` directives that `go install pkg@ver`
# refuses. Go's module and build caches (GOMODCACHE, GOCACHE) are left at their defaults so
# repeated runs on the same machine reuse them; nothing is fetched from outside the proxy.
# The built binary is kept beside them, per version, in LKPROTO_CACHE (default
# ~/.cache/lkproto), so a fresh clone on a warm machine copies it instead of linking it again
# (8 s on a quiet machine, 30 s under load); it is used only if it reports that version.
set -euo pipefail
VERSION="${LIVEKIT_SERVER_VERSION:-v1.13.5}"
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
DEST="$ROOT/.venv/bin/livekit-server"

if [ -x "$DEST" ] && "$DEST" --version 2>/dev/null | grep -q "version ${VERSION#v}\$"; then
  exit 0
fi
GOBIN_DIR="${LKPROTO_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/lkproto}/livekit-server-${VERSION}"
mkdir -p "$GOBIN_DIR" "$(dirname "$DEST")"
if [ -x "$GOBIN_DIR/server" ] && "$GOBIN_DIR/server" --version 2>/dev/null | grep -q "version ${VERSION#v}\$"; then
  install -m 0755 "$GOBIN_DIR/server" "$DEST"
  echo "livekit-server ${VERSION} from the build cache ($GOBIN_DIR) -> .venv/bin/livekit-server"
  exit 0
fi
command -v go >/dev/null || { echo "install-livekit-server: 'go' is not on PATH" >&2; exit 1; }
start=$(date +%s)
GOBIN="$GOBIN_DIR" GOFLAGS="-buildvcs=false" go install "github.com/livekit/livekit-server/cmd/server@${VERSION}"
install -m 0755 "$GOBIN_DIR/server" "$DEST"
echo "livekit-server ${VERSION} built in $(( $(date +%s) - start ))s -> .venv/bin/livekit-server"
