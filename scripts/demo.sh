#!/usr/bin/env bash
# Sets up if needed, then boots the example pod in a microVM.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh >/dev/null
pod1=target/x86_64-unknown-linux-gnu/release/pod1
cache=${POD1_CACHE:-$HOME/.cache/pod1}/kernel
# Any guest kernel will do: the minimal one if built, else Debian's (seconds to fetch).
if [ -z "${POD1_KERNEL:-}" ] && ! ls "$cache"/minimal-*/bzImage "$cache"/debian-*/vmlinuz >/dev/null 2>&1; then
  scripts/fetch-kernel.sh >/dev/null
fi
echo "\$ pod1 plan examples/hello/pod.json"
$pod1 plan examples/hello/pod.json
echo
echo "\$ pod1 run examples/hello/pod.json"
$pod1 run examples/hello/pod.json
