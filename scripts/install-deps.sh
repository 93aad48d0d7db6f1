#!/usr/bin/env bash
# Installs what building Tally needs beyond the Rust toolchain: clang and libclang for RocksDB's
# bindgen, a C++ compiler for RocksDB itself, and the rustfmt/clippy components. Idempotent and
# quiet when everything is present. No system protoc is needed: protos compile with protox.
set -euo pipefail

missing=()
for pkg in clang libclang-dev g++ make; do
  dpkg -s "$pkg" >/dev/null 2>&1 || missing+=("$pkg")
done

if [ ${#missing[@]} -gt 0 ]; then
  if ! command -v apt-get >/dev/null 2>&1; then
    echo "error: missing ${missing[*]} and no apt-get here: install clang, libclang-dev and a C++ compiler, then rerun." >&2
    exit 1
  fi
  if [ "$(id -u)" -ne 0 ]; then
    echo "error: missing ${missing[*]}: run 'sudo apt-get install -y ${missing[*]}' (or rerun as root), then rerun." >&2
    exit 1
  fi
  echo "installing ${missing[*]} ..." >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq "${missing[@]}" >/dev/null
fi

if command -v rustup >/dev/null 2>&1; then
  for component in rustfmt clippy; do
    rustup component list --installed 2>/dev/null | grep -q "^$component" || rustup component add "$component"
  done
fi
