#!/usr/bin/env bash
# Fetch Debian's cloud kernel (the package linux-image-cloud-amd64 depends
# on) with `apt-get download` + `dpkg-deb -x`, without installing anything
# into /boot or /lib/modules of this machine. Result:
#
#   ${POD1_CACHE:-$HOME/.cache/pod1}/kernel/debian-cloud-<package version>/
#     vmlinuz                     the kernel to pass to qemu -kernel
#     lib/modules/<release>/      its modules, with modules.dep (see below)
#     boot/config-<release>       its .config, boot/System.map-<release>
#     release, package            uname -r of the kernel; package name and version
#
# The .deb ships no modules.dep (Debian's postinst runs depmod); this script
# runs `depmod -b` on the extracted tree so pod1 can resolve module
# dependencies. Idempotent: an existing complete directory is reused. The
# vmlinuz path is the last line of stdout; everything else goes to stderr.
#
# Environment:
#   POD1_CACHE              cache root (default $HOME/.cache/pod1)
#   POD1_DEBIAN_KERNEL_META metapackage to follow (default linux-image-cloud-amd64;
#                           the directory is then debian-<flavour>-<version>)
set -euo pipefail

main() {
  meta=${POD1_DEBIAN_KERNEL_META:-linux-image-cloud-amd64}
  # linux-image-cloud-amd64 -> cloud: the directory names the flavour.
  flavour=${meta#linux-image-}
  flavour=${flavour%-amd64}
  cache=${POD1_CACHE:-$HOME/.cache/pod1}/kernel

  log() { printf 'fetch-kernel: %s\n' "$*" >&2; }
  die() { printf 'fetch-kernel: error: %s\n' "$*" >&2; exit 1; }
  as_root() {
    if [[ $(id -u) -eq 0 ]]; then "$@"
    elif command -v sudo >/dev/null; then sudo "$@"
    else die "need root to run: $*"
    fi
  }

  # The image package the metapackage currently depends on, and its version.
  # Debian's metapackage pins it exactly ("Depends: linux-image-X (= V)"), so
  # one apt-cache call usually answers both; otherwise ask for the candidate.
  resolve() {
    local dep
    dep=$(apt-cache show --no-all-versions "$meta" 2>/dev/null |
          sed -n 's/^Depends: .*\(linux-image-[^ ,]*\)\( (= \([^)]*\))\)\{0,1\}.*$/\1 \3/p' | head -n1)
    pkg=${dep%% *}
    ver=${dep#* }
    [[ -n $pkg ]] || return 1
    if [[ -z $ver ]]; then
      ver=$(apt-cache policy "$pkg" 2>/dev/null | sed -n 's/^ *Candidate: //p')
    fi
    [[ -n $ver && $ver != '(none)' ]]
  }

  pkg='' ver=''
  if ! resolve; then
    log "apt does not know $meta yet; running apt-get update"
    as_root apt-get update >&2 || true
  fi
  if ! resolve; then
    # Offline and no package lists: fall back to what is already cached.
    shopt -s nullglob
    have=("$cache"/debian-"$flavour"-*/vmlinuz)
    shopt -u nullglob
    ((${#have[@]})) || die "cannot resolve $meta with apt and nothing is cached in $cache"
    newest=$(printf '%s\n' "${have[@]}" | sort -V | tail -n1)
    log "cannot resolve $meta with apt; using the cached $newest"
    echo "$newest"
    exit 0
  fi

  out=$cache/debian-$flavour-$ver
  if [[ -f $out/vmlinuz && -f $out/release ]]; then
    log "cached: $out ($pkg $ver)"
    echo "$out/vmlinuz"
    exit 0
  fi

  # depmod lives in /usr/sbin, which a non-root PATH may lack.
  find_depmod() { PATH=$PATH:/usr/sbin:/sbin command -v depmod; }
  if ! depmod=$(find_depmod); then
    log "installing kmod (for depmod)"
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends kmod >&2
    depmod=$(find_depmod) || die "depmod not found after installing kmod"
  fi

  mkdir -p "$cache"
  exec 9>"$cache/.fetch.lock"
  flock 9
  if [[ -f $out/vmlinuz && -f $out/release ]]; then
    echo "$out/vmlinuz"
    exit 0
  fi

  tmp=$(mktemp -d "$cache/.debian-$flavour-$ver.XXXXXX")
  trap 'rm -rf -- "$tmp"' EXIT
  trap 'exit 130' INT
  trap 'exit 143' TERM

  log "downloading $pkg $ver"
  mkdir "$tmp/deb" "$tmp/root"
  # apt-get download needs no root. As root, skip the _apt sandbox: that user
  # cannot write into a private temporary directory and apt would only warn.
  sandbox=()
  [[ $(id -u) -ne 0 ]] || sandbox=(-o APT::Sandbox::User=root)
  (cd "$tmp/deb" && apt-get "${sandbox[@]}" download "$pkg=$ver") >&2 \
    || die "apt-get download $pkg=$ver failed"
  debs=("$tmp"/deb/*.deb)
  dpkg-deb -x "${debs[0]}" "$tmp/root"

  shopt -s nullglob
  kernels=("$tmp"/root/boot/vmlinuz-*)
  shopt -u nullglob
  ((${#kernels[@]} == 1)) || die "expected one boot/vmlinuz-* in $pkg, found ${#kernels[@]}"
  release=${kernels[0]##*/vmlinuz-}
  [[ -d $tmp/root/lib/modules/$release ]] || die "$pkg has no lib/modules/$release"
  mv -- "${kernels[0]}" "$tmp/root/vmlinuz"
  if [[ ! -f $tmp/root/lib/modules/$release/modules.dep ]]; then
    log "generating modules.dep for $release"
    "$depmod" -b "$tmp/root" "$release"
  fi
  printf '%s\n' "$release" >"$tmp/root/release"
  printf '%s %s\n' "$pkg" "$ver" >"$tmp/root/package"
  chmod 755 "$tmp/root"
  rm -rf -- "$out"
  mv -T -- "$tmp/root" "$out"
  log "extracted $pkg $ver (kernel $release) into $out"
  echo "$out/vmlinuz"
}

# On one line, so bash has read everything it will run before main starts.
main "$@"; exit
