#!/usr/bin/env bash
# Sets up if needed, then runs every test: formatting, lints, unit tests,
# host tests (real namespaces, as root) and VM tests (real QEMU boots).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
# Two workspaces: the project's, and the init's (init/Cargo.toml, a no_std
# binary kept apart so the builder's std features do not reach it).
init=(--manifest-path init/Cargo.toml)
echo "test: cargo fmt --check"
cargo fmt --all -- --check
cargo fmt "${init[@]}" --all -- --check
echo "test: cargo clippy"
cargo clippy --workspace --all-targets --quiet -- -D warnings
cargo clippy "${init[@]}" --all-targets --quiet -- -D warnings
# The VM tests boot both guest kernels; both scripts cache their result.
echo "test: guest kernels (cached after the first build)"
scripts/build-kernel.sh >/dev/null
scripts/fetch-kernel.sh >/dev/null
echo "test: cargo test"
log=$(mktemp)
trap 'rm -f "$log"' EXIT
# The init's tests first: they (re)build the pod1-init the VM tests boot.
cargo test "${init[@]}" --release 2>&1 | tee "$log"
cargo test --workspace --release 2>&1 | tee -a "$log"
# One closing line for the whole run, both workspaces (the last binary cargo
# reports on is a doc-test target with no tests, which would otherwise close
# the output).
awk '/^test result:/ { p += $4; f += $6 } END { printf "%d passed, %d failed\n", p, f }' "$log"
