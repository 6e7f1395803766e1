#!/usr/bin/env bash
# Debian packages the test harness needs: iproute2 for the confined network namespace;
# nftables for the TURN tests' firewall inside it (tests/harness/turn.py);
# chromium (and node, for scripts/install-js-peer.sh) for the JavaScript peer.
# Only runs apt when something is missing, and only as root (otherwise the harness falls
# back to loopback-only confinement, which needs nothing extra).
set -euo pipefail
missing=()
command -v ip >/dev/null || missing+=(iproute2)
command -v nft >/dev/null || missing+=(nftables)
command -v go >/dev/null || missing+=(golang-go)
command -v chromium >/dev/null || missing+=(chromium)
# The machine image ships Node 20 (playwright-core 1.65 wants >= 20); Debian 12's is 18.
command -v node >/dev/null || missing+=(nodejs)
command -v npm >/dev/null || missing+=(npm)
if [ ${#missing[@]} -eq 0 ]; then exit 0; fi
if [ "$(id -u)" != 0 ]; then
  echo "install-system-deps: missing ${missing[*]} and not root; install them yourself" >&2
  exit 0
fi
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq "${missing[@]}"
