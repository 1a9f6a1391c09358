#!/usr/bin/env bash
# Build pod1's minimal microVM guest kernel (bzImage) from Debian's
# linux-source-6.1: `make tinyconfig`, merge kernel-config/*.config with the
# kernel's own scripts/kconfig/merge_config.sh, `make olddefconfig`, check that
# every requested option survived, then `make bzImage`.
#
# The result is cached under
#   ${POD1_CACHE:-$HOME/.cache/pod1}/kernel/minimal-<hash>/bzImage
# where <hash> is the sha256 of the fragments (file names and option lines;
# comments do not count), the linux-source-6.1 package version and this
# script's recipe version, so a second run with the same inputs is instant. Next to bzImage: config (the
# final .config), System.map (the kernel has no KALLSYMS: decode panic
# addresses with it), build.log and info. The kernel source is untarred once
# per package version under .../kernel/src/; each build runs out of tree
# (make O=) in a temporary directory that is removed at the end, and the
# result is moved into place with one rename, so an interrupted run leaves no
# half-built cache entry. The bzImage path is the last line of stdout;
# everything else goes to stderr.
#
# Usage: scripts/build-kernel.sh [--check-config] [--force]
#   --check-config  only produce and check the .config (about 20 s), print its path
#   --force         rebuild even if the cached bzImage exists
# Environment:
#   POD1_CACHE               cache root (default $HOME/.cache/pod1)
#   POD1_KERNEL_CONFIG_DIR   fragment directory (default <repo>/kernel-config)
#   POD1_KEEP_KERNEL_BUILD=1 keep the temporary build directory
set -euo pipefail

# Bump when the build recipe changes in a way that changes the bzImage.
readonly RECIPE=1
readonly SRC_PKG=linux-source-6.1
readonly SRC_TAR=/usr/src/linux-source-6.1.tar.xz
readonly ARCH_ARGS=(ARCH=x86_64)
# Reproducible-ish: no build host, user or time baked into the image.
export KBUILD_BUILD_USER=pod1 KBUILD_BUILD_HOST=pod1
export KBUILD_BUILD_TIMESTAMP='1970-01-01 00:00:00 UTC'
# Roughly the number of build steps of a full build, for the progress line.
readonly EXPECTED_STEPS=1780

# Everything runs inside main, which bash parses in full before running it,
# so editing this file while a build runs cannot derail that build.

main() {
  here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
  frag_dir=${POD1_KERNEL_CONFIG_DIR:-$(dirname "$here")/kernel-config}
  cache=${POD1_CACHE:-$HOME/.cache/pod1}/kernel

  check_only=false force=false
  for arg in "$@"; do
    case $arg in
      --check-config) check_only=true ;;
      --force) force=true ;;
      -h|--help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
      *) echo "build-kernel: unknown argument: $arg" >&2; exit 2 ;;
    esac
  done

  log() { printf 'build-kernel: %s\n' "$*" >&2; }
  die() { printf 'build-kernel: error: %s\n' "$*" >&2; exit 1; }

  as_root() {
    if [[ $(id -u) -eq 0 ]]; then "$@"
    elif command -v sudo >/dev/null; then sudo "$@"
    else die "need root to run: $*"
    fi
  }

  # --- packages -------------------------------------------------------------
  need_pkgs=("$SRC_PKG" make gcc libc6-dev flex bison bc libelf-dev libssl-dev xz-utils)
  missing=()
  for p in "${need_pkgs[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
  done
  if ((${#missing[@]})); then
    log "installing missing packages: ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    if ! as_root apt-get install -y --no-install-recommends "${missing[@]}" >&2; then
      as_root apt-get update >&2
      as_root apt-get install -y --no-install-recommends "${missing[@]}" >&2 \
        || die "could not install: ${missing[*]}"
    fi
  fi
  [[ -r $SRC_TAR ]] || die "$SRC_TAR missing although $SRC_PKG is installed"
  src_ver=$(dpkg-query -W -f='${Version}' "$SRC_PKG")

  # --- fragments and cache key -----------------------------------------------
  shopt -s nullglob
  frags=("$frag_dir"/*.config)
  shopt -u nullglob
  ((${#frags[@]})) || die "no *.config fragments in $frag_dir"

  # The key covers what changes the kernel: the option lines of each fragment
  # (in file order), not the comments, so editing a comment does not rebuild.
  key_input() {
    printf 'pod1-kernel-recipe %s\n%s %s\n' "$RECIPE" "$SRC_PKG" "$src_ver"
    for f in "${frags[@]}"; do
      printf '== %s\n' "${f##*/}"
      grep -E '^(CONFIG_[A-Za-z0-9_]+=|# CONFIG_[A-Za-z0-9_]+ is not set$)' "$f" || true
    done
  }
  hash=$(key_input | sha256sum | cut -c1-64)
  short=${hash:0:16}
  out=$cache/minimal-$short

  if ! $check_only && ! $force && [[ -f $out/bzImage ]]; then
    log "cached: $out (fragments + $SRC_PKG $src_ver unchanged)"
    echo "$out/bzImage"
    exit 0
  fi

  mkdir -p "$cache/src" "$cache/logs"
  # One build at a time per cache: a concurrent run waits, then finds the result.
  exec 9>"$cache/.build.lock"
  if ! flock -n 9; then
    log "another build holds $cache/.build.lock; waiting"
    flock 9
  fi
  if ! $check_only && ! $force && [[ -f $out/bzImage ]]; then
    log "cached: $out (built by a concurrent run)"
    echo "$out/bzImage"
    exit 0
  fi
  # Holding the lock, any temporary directory left here is from a killed run.
  rm -rf -- "$cache"/.build-* "$cache"/.minimal-* "$cache"/src/.untar.*

  # --- temporary state, removed however we exit --------------------------------
  build='' stage='' untar='' make_job=''
  # shellcheck disable=SC2317  # called by the EXIT trap
  cleanup() {
    local rc=$?
    set +e
    if [[ -n $make_job ]]; then
      kill -TERM -- "-$make_job" 2>/dev/null
      wait "$make_job" 2>/dev/null
    fi
    [[ -n $untar && -d $untar ]] && rm -rf -- "$untar"
    [[ -n $stage && -d $stage ]] && rm -rf -- "$stage"
    if [[ -n $build && -d $build ]]; then
      if [[ ${POD1_KEEP_KERNEL_BUILD:-} == 1 ]]; then log "kept build directory $build"
      else rm -rf -- "$build"; fi
    fi
    exit "$rc"
  }
  trap cleanup EXIT
  trap 'exit 130' INT
  trap 'exit 143' TERM

  # --- kernel source: untarred once per package version -------------------------
  srcdir=$cache/src/$SRC_PKG-$src_ver
  if [[ ! -f $srcdir/Makefile ]]; then
    log "unpacking $SRC_TAR ($SRC_PKG $src_ver)"
    untar=$(mktemp -d "$cache/src/.untar.XXXXXX")
    tar -C "$untar" -xf "$SRC_TAR"
    [[ -f $untar/$SRC_PKG/Makefile ]] || die "unexpected layout in $SRC_TAR"
    rm -rf -- "$srcdir"
    mv -T -- "$untar/$SRC_PKG" "$srcdir"
    rm -rf -- "$untar"; untar=''
  fi

  build=$(mktemp -d "$cache/.build-$short.XXXXXX")
  logf=$cache/logs/minimal-$short.log
  : >"$logf"
  kmake() { make -C "$srcdir" O="$build" "${ARCH_ARGS[@]}" "$@"; }

  fail_with_log() {
    printf 'build-kernel: error: %s; last lines of %s:\n' "$1" "$logf" >&2
    tail -n 40 "$logf" | sed 's/^/  | /' >&2
    exit 1
  }

  # --- configuration --------------------------------------------------------
  log "configuring: tinyconfig + ${#frags[@]} fragments from $frag_dir"
  kmake tinyconfig >>"$logf" 2>&1 || fail_with_log "make tinyconfig failed"
  # merge_config.sh writes temporary files into the current directory.
  (cd "$build" && "$srcdir/scripts/kconfig/merge_config.sh" -m -O "$build" "$build/.config" "${frags[@]}") \
    >>"$logf" 2>&1 || fail_with_log "merge_config.sh failed"
  kmake olddefconfig >>"$logf" 2>&1 || fail_with_log "make olddefconfig failed"

  # Every CONFIG_X=value and '# CONFIG_X is not set' line of the fragments must
  # hold in the final .config. A later fragment overrides an earlier one, as in
  # merge_config.sh.
  declare -A want=() from=()
  order=()
  for f in "${frags[@]}"; do
    while IFS= read -r line || [[ -n $line ]]; do
      if [[ $line =~ ^(CONFIG_[A-Za-z0-9_]+)=(.*)$ ]]; then
        name=${BASH_REMATCH[1]}; val=${BASH_REMATCH[2]}
      elif [[ $line =~ ^\#\ (CONFIG_[A-Za-z0-9_]+)\ is\ not\ set$ ]]; then
        name=${BASH_REMATCH[1]}; val=n
      else
        continue
      fi
      [[ -v want[$name] ]] || order+=("$name")
      want[$name]=$val; from[$name]=${f##*/}
    done <"$f"
  done
  declare -A have=()
  while IFS= read -r line; do
    if [[ $line =~ ^(CONFIG_[A-Za-z0-9_]+)=(.*)$ ]]; then
      have[${BASH_REMATCH[1]}]=${BASH_REMATCH[2]}
    fi
  done <"$build/.config"
  bad=0
  for name in "${order[@]}"; do
    w=${want[$name]}
    h=${have[$name]:-n}
    if [[ $w != "$h" ]]; then
      ((bad += 1))
      note=''
      grep -rqsE --include='Kconfig*' "^[[:space:]]*(menu)?config ${name#CONFIG_}\$" "$srcdir" \
        || note=' [no such Kconfig symbol in this kernel: typo?]'
      printf 'build-kernel: NOT APPLIED: %s=%s (from %s) but the final .config has %s%s\n' \
        "$name" "$w" "${from[$name]}" "$([[ $h == n ]] && echo 'it unset' || echo "$name=$h")" "$note" >&2
    fi
  done
  if ((bad)); then
    cp -- "$build/.config" "$cache/logs/minimal-$short.config"
    die "$bad requested option(s) did not survive make olddefconfig (missing dependency, typo or a choice lost to another); final config: $cache/logs/minimal-$short.config"
  fi
  log "config ok: all ${#order[@]} requested options present"

  if $check_only; then
    cp -- "$build/.config" "$cache/logs/minimal-$short.config"
    echo "$cache/logs/minimal-$short.config"
    exit 0
  fi

  # --- build, with one compact progress line ------------------------------------
  jobs=$(nproc)
  log "building bzImage with $jobs jobs (full log: $logf)"
  start=$SECONDS
  progress() {
    local n=0 last=$SECONDS tty=false line step
    [[ -t 2 ]] && tty=true
    while IFS= read -r line; do
      printf '%s\n' "$line" >>"$logf"
      if [[ $line =~ ^\ \ ([A-Z0-9_]+)\ +(.*)$ ]]; then
        ((n += 1))
        step="${BASH_REMATCH[1]} ${BASH_REMATCH[2]}"
        if $tty; then
          printf '\r\033[Kbuild-kernel: [%d/~%d %dm%02ds] %.60s' "$n" "$EXPECTED_STEPS" \
            $(((SECONDS - start) / 60)) $(((SECONDS - start) % 60)) "$step" >&2
        elif ((SECONDS - last >= 30)); then
          last=$SECONDS
          printf 'build-kernel: [%d/~%d %dm%02ds] %s\n' "$n" "$EXPECTED_STEPS" \
            $(((SECONDS - start) / 60)) $(((SECONDS - start) % 60)) "$step" >&2
        fi
      fi
    done
    $tty && printf '\r\033[K' >&2
    printf 'build-kernel: %d build steps in %dm%02ds\n' "$n" $(((SECONDS - start) / 60)) $(((SECONDS - start) % 60)) >&2
  }
  # make runs as a background job in its own process group (set -m), so that
  # a SIGINT/SIGTERM sent to this script alone interrupts the wait at once and
  # cleanup can stop make and its compilers as a group.
  set -m
  { kmake -j"$jobs" bzImage </dev/null 2>&1 | progress; exit "${PIPESTATUS[0]}"; } &
  make_job=$!
  set +m
  rc=0
  wait "$make_job" || rc=$?
  make_job=''
  ((rc == 0)) || fail_with_log "make bzImage failed (exit $rc)"
  [[ -f $build/arch/x86/boot/bzImage ]] || fail_with_log "make succeeded but no arch/x86/boot/bzImage"

  # --- move into place atomically ------------------------------------------------
  stage=$(mktemp -d "$cache/.minimal-$short.XXXXXX")
  cp -- "$build/arch/x86/boot/bzImage" "$stage/bzImage"
  cp -- "$build/.config" "$stage/config"
  # No KALLSYMS in this kernel: keep the symbol map to decode panic addresses.
  cp -- "$build/System.map" "$stage/System.map"
  cp -- "$logf" "$stage/build.log"
  {
    printf 'hash %s\n' "$hash"
    printf 'source %s %s\n' "$SRC_PKG" "$src_ver"
    printf 'recipe %s\n' "$RECIPE"
    printf 'kernelrelease %s\n' "$(kmake -s kernelrelease 2>/dev/null)"
    printf 'fragments %s\n' "$(cd "$frag_dir" && echo *.config)"
    printf 'build_seconds %d\n' $((SECONDS - start))
  } >"$stage/info"
  chmod 755 "$stage"
  rm -rf -- "$out"
  mv -T -- "$stage" "$out"
  stage=''
  log "built $(du -h "$out/bzImage" | cut -f1) bzImage in $(((SECONDS - start) / 60))m$(((SECONDS - start) % 60))s"
  echo "$out/bzImage"
}

# On one line, so bash has read everything it will run before main starts.
main "$@"; exit
