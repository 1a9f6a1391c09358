#!/usr/bin/env bash
# Measures pod1 against the floor and the peers; prints one markdown table
# and writes it to BENCHMARKS.md. About 10 minutes on 2 cores.
# `scripts/bench.sh --only hostpath` runs the hostPath rows alone (printed, not written).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh >/dev/null
scripts/build-kernel.sh >/dev/null
scripts/fetch-kernel.sh >/dev/null
exec target/x86_64-unknown-linux-gnu/release/pod1-bench "$@"
