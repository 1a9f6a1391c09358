#!/usr/bin/env bash
# Sets up if needed, then runs the example pod.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh >/dev/null
pod1=target/x86_64-unknown-linux-gnu/release/pod1
set -x
$pod1 plan examples/hello/pod.json
$pod1 build examples/hello/pod.json -o out/hello.img
