#!/usr/bin/env bash
# Installs what pod1 needs on a fresh Debian 12 machine, builds it, and makes
# the example busybox image. Idempotent: a second run does only what is missing.
set -euo pipefail
cd "$(dirname "$0")/.."

# qemu-system-x86: boots the pod; busybox-static, umoci, skopeo: make real test
# images; cpio: checks the initramfs with GNU cpio; crun: the benchmark's peer;
# linux-source-6.1 and the tool chain: the minimal kernel (scripts/build-kernel.sh);
# python3: writes hostile layers for the tests; libseccomp-dev: the builder
# compiles seccomp profiles with it (linked statically); zstd, docker-registry
# (CNCF distribution), openssl and iproute2: layers, a real registry, its TLS and
# the machine's own address for the pull tests.
packages=(qemu-system-x86 qemu-utils busybox-static umoci skopeo cpio crun python3 libseccomp-dev zstd docker-registry openssl iproute2
  linux-source-6.1 build-essential flex bison bc libelf-dev libssl-dev xz-utils kmod)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "setup: installing ${missing[*]}"
  [ "$(id -u)" -eq 0 ] || { echo "setup: run as root to install packages" >&2; exit 1; }
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

command -v cargo >/dev/null || { echo "setup: cargo not found: install Rust (rustup) first" >&2; exit 1; }
echo "setup: building pod1 and pod1-init (release)"
cargo build --release --quiet --workspace --bins
# The init is a no_std binary in its own workspace (init/Cargo.toml); it
# builds into the same target directory, next to pod1.
cargo build --release --quiet --manifest-path init/Cargo.toml

if [ ! -f examples/images/busybox/index.json ]; then
  echo "setup: making the example image examples/images/busybox (umoci + Debian's busybox-static)"
  scripts/make-busybox-image.sh examples/images/busybox latest
fi
echo "setup: done; pod1 is target/x86_64-unknown-linux-gnu/release/pod1"
