#!/usr/bin/env bash
# The whole test suite, from a fresh machine: installs what the RocksDB build and the
# load generator's etcd test need, then runs every crate's tests with every feature on.
set -euo pipefail
cd "$(dirname "$0")/.."

# Reuse one build directory across runs (RocksDB's C++ build takes 10+ minutes).
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/elastickv/target}"

# librocksdb-sys generates its bindings with bindgen, which needs libclang.
rocks_in_workspace() {
  cargo metadata --no-deps --format-version 1 2>/dev/null | grep -q '"name":"elastickv-engine-rocks"'
}
if rocks_in_workspace && ! dpkg -s libclang-dev >/dev/null 2>&1; then
  echo "installing libclang-dev (needed to build RocksDB bindings)"
  SUDO=""
  [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq libclang-dev >/dev/null
fi

# The load generator's etcd test (bench/tests/etcd.rs) runs a real etcd.
if ! command -v etcd >/dev/null 2>&1; then
  echo "installing etcd-server (the load generator's etcd test runs etcd)"
  SUDO=""
  [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq etcd-server >/dev/null
fi

cargo test --workspace --all-features "$@"
