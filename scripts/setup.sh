#!/usr/bin/env bash
# Setup on a fresh Debian/Ubuntu machine: the system packages Loom runs (ripgrep for the grep
# tool, nats-server for the NATS transport, chromium for the inspector's browser test), installed
# only when their commands are missing, then the npm dependencies exactly as locked. Works as `sh scripts/setup.sh` too.
if [ -z "${BASH_VERSION:-}" ]; then exec bash "$0" "$@"; fi
set -euo pipefail
cd "$(dirname "$0")/.."

need_apt=()
command -v rg >/dev/null 2>&1 || need_apt+=(ripgrep)
command -v nats-server >/dev/null 2>&1 || need_apt+=(nats-server)
# The inspector's browser test (npm test) drives Debian's Chromium through playwright-core.
command -v chromium >/dev/null 2>&1 || need_apt+=(chromium)

if [ ${#need_apt[@]} -gt 0 ]; then
  if ! command -v apt-get >/dev/null 2>&1; then
    echo "setup: apt-get not found; install these packages with your package manager: ${need_apt[*]}" >&2
    exit 1
  fi
  sudo=()
  if [ "$(id -u)" -ne 0 ]; then
    if ! command -v sudo >/dev/null 2>&1; then
      echo "setup: not root and no sudo; install these Debian packages as root: ${need_apt[*]}" >&2
      exit 1
    fi
    sudo=(sudo)
  fi
  echo "setup: installing Debian packages: ${need_apt[*]}"
  ${sudo[@]+"${sudo[@]}"} apt-get update -qq
  ${sudo[@]+"${sudo[@]}"} env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need_apt[@]}" >/dev/null
fi

npm ci --no-audit --no-fund
