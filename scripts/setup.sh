#!/usr/bin/env bash
# Makes a fresh Debian machine with Node 20 ready: pnpm (pinned), redis-server, dependencies, build.
# Safe to run again: it installs only what is missing.
set -euo pipefail
cd "$(dirname "$0")/.."
PNPM_VERSION=12.4.2

say() { printf '\033[1msetup:\033[0m %s\n' "$*"; }

node_major=$(node -p 'process.versions.node.split(".")[0]' 2>/dev/null || echo 0)
if [ "$node_major" -lt 20 ]; then
  echo "setup: Node.js >= 20 is required (found: $(node --version 2>/dev/null || echo none))" >&2
  exit 1
fi

if [ "$(pnpm --version 2>/dev/null || true)" != "$PNPM_VERSION" ]; then
  say "installing pnpm@$PNPM_VERSION"
  npm install -g "pnpm@$PNPM_VERSION" >/dev/null
fi

if ! command -v redis-server >/dev/null 2>&1; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    say "installing redis-server (apt-get)"
    apt-get update -qq >/dev/null
    apt-get install -y -qq redis-server >/dev/null
  else
    echo "setup: redis-server is missing. Install it with: sudo apt-get install -y redis-server" >&2
    exit 1
  fi
fi

# promtool checks the ops kit's alerting rules in the tests (a parser stands in where it cannot be
# installed): best effort, never a reason for setup to fail.
if ! command -v promtool >/dev/null 2>&1 && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
  say "installing promtool (apt-get prometheus, best effort)"
  timeout 300 sh -c 'apt-get update -qq >/dev/null && apt-get install -y -qq --no-install-recommends prometheus >/dev/null' || say "promtool not installed; the rules are checked by a parser"
fi

say "installing dependencies"
pnpm install --frozen-lockfile
say "building"
pnpm build
