#!/usr/bin/env bash
# The JavaScript peer for the e2e tests (tests/harness/jspeer.py): livekit-client, esbuild and
# playwright-core from the npm registry, exactly as peers/js/package-lock.json pins them, then
# our page script bundled into peers/js/dist/page.js and livekit-client's E2EE worker into
# peers/js/dist/e2ee-worker.js. The browser is Debian's chromium
# (scripts/install-system-deps.sh); playwright-core only drives it and downloads nothing.
# Idempotent: `npm ci` runs again only when the lockfile changed, the bundle only when a
# source is newer than it.
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
JS="$ROOT/peers/js"
command -v npm >/dev/null || { echo "install-js-peer: 'npm' is not on PATH" >&2; exit 1; }
cd "$JS"
STAMP=node_modules/.lkproto-lock
if ! cmp -s package-lock.json "$STAMP" 2>/dev/null; then
  start=$(date +%s)
  # No install scripts: esbuild's only optimizes its launcher; its binary is the
  # @esbuild/linux-x64 package itself.
  npm ci --no-audit --no-fund --ignore-scripts --loglevel=error
  cp package-lock.json "$STAMP"
  echo "install-js-peer: npm ci in $(( $(date +%s) - start ))s"
fi
for name in page e2ee-worker; do
  if [ ! -f "dist/$name.js" ] ||
    [ -n "$(find src package-lock.json -newer "dist/$name.js" -print -quit)" ]; then
    node_modules/.bin/esbuild "src/$name.ts" --bundle --format=iife --target=chrome120 \
      --log-level=warning --outfile="dist/$name.js"
  fi
done
