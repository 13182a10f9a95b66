#!/usr/bin/env bash
# Installs the Debian packages (and, for tests, the pinned npm packages) that the
# project needs, only when something is missing. Called by the Makefile's `run` and
# `test` targets; safe to run again. Needs root (or sudo) only when it installs.
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)

build_pkgs=(build-essential cmake pkg-config libwebsockets-dev libwebsockets-evlib-uv
  libcurl4-openssl-dev libsqlite3-dev libjansson-dev libuv1-dev libcmocka-dev
  libjwt-dev libssl-dev sqlite3 curl)
test_pkgs=(nodejs npm chromium)

want=("${build_pkgs[@]}")
if [ "${1:-}" = "--test" ]; then want+=("${test_pkgs[@]}"); fi

missing=()
for p in "${want[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
# nodejs/npm may come from elsewhere than Debian (a preinstalled toolchain): accept them.
if command -v node >/dev/null && command -v npm >/dev/null; then
  tmp=(); for p in "${missing[@]}"; do case "$p" in nodejs|npm) ;; *) tmp+=("$p");; esac; done
  missing=("${tmp[@]}")
fi

if [ "${#missing[@]}" -gt 0 ]; then
  echo "deps: installing ${missing[*]}" >&2
  sudo=""; [ "$(id -u)" -ne 0 ] && sudo="sudo"
  export DEBIAN_FRONTEND=noninteractive
  $sudo apt-get update -qq
  $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

if [ "${1:-}" = "--test" ]; then
  if [ ! -d "$here/tests/node_modules" ] || [ "$here/tests/package-lock.json" -nt "$here/tests/node_modules/.stamp" ]; then
    (cd "$here/tests" && npm ci --no-audit --no-fund --loglevel=error && touch node_modules/.stamp)
  fi
fi
