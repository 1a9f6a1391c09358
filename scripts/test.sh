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
# The VM tests boot both guest kernels; both scripts cache their result.
echo "test: guest kernels (cached after the first build)"
scripts/build-kernel.sh >/dev/null
scripts/fetch-kernel.sh >/dev/null
echo "test: cargo test"
cargo test --workspace --release
