#!/usr/bin/env bash
# Sets up if needed, then runs every test: formatting, lints, unit tests,
# host tests (real namespaces, as root) and VM tests (real QEMU boots).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
echo "test: cargo fmt --check"
cargo fmt --all -- --check
echo "test: cargo clippy"
cargo clippy --workspace --all-targets --quiet -- -D warnings
echo "test: cargo test"
cargo test --workspace --release
