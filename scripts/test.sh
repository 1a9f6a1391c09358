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
log=$(mktemp)
trap 'rm -f "$log"' EXIT
cargo test --workspace --release 2>&1 | tee "$log"
# One closing line for the whole run (the last binary cargo reports on is a
# doc-test target with no tests, which would otherwise close the output).
awk '/^test result:/ { p += $4; f += $6 } END { printf "%d passed, %d failed\n", p, f }' "$log"
