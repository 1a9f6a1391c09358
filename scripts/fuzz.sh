#!/usr/bin/env bash
# Coverage-guided fuzzing on stable Rust with afl.rs: the manifest parser
# (`manifest`), image import from a layout's JSON (`oci`) and tar layers
# applied to the in-memory tree (`layer`). See fuzz/src/ for what each
# target does with its input.
#
#   scripts/fuzz.sh [SECONDS] [TARGET...]
#
# Runs each target for SECONDS (default 60), as many at once as there are
# CPUs, then prints per target its run time, execs and crashes and hangs.
# Crash inputs are copied to fuzz/regressions/<target>/, which `cargo test`
# replays (manifest/tests/fuzz_regressions.rs, builder/tests/fuzz_regressions.rs).
# Exits 1 if any target crashed.
#
# Each target's corpus grows across runs in target/fuzz/corpus/<target>/
# (seeded from fuzz/seeds/<target>/), with the dictionary
# fuzz/dicts/<target>.dict; afl's output for the last run is in
# target/fuzz/out/<target>/default/ (hangs included). FUZZ_JOBS=N overrides
# the number of targets run at once.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD

seconds=${1:-60}
shift || true
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=(manifest oci layer registry)
case $seconds in
'' | *[!0-9]*)
    echo "usage: $0 [SECONDS] [TARGET...]" >&2
    exit 2
    ;;
esac

# cargo-afl, and the AFL++ it builds (cargo install builds it too).
if ! cargo afl --version >/dev/null 2>&1; then
    echo "fuzz: installing cargo-afl"
    cargo install cargo-afl --locked
fi
# (afl-fuzz -h exits 1; its usage line says AFL++ is there.)
if [[ $(cargo afl fuzz -h 2>&1 || true) != *"afl-fuzz [ options ]"* ]]; then
    echo "fuzz: building AFL++"
    cargo afl config --build
fi

# fuzz/ is a workspace of its own; fuzz/.cargo/config.toml puts its build
# in target/fuzz/ (cargo afl's RUSTFLAGS replace the root's +crt-static).
echo "fuzz: building the targets"
(cd fuzz && cargo afl build --release --quiet)
bin=$root/target/fuzz/x86_64-unknown-linux-gnu/release

# afl-fuzz, non-interactive and container-friendly: no UI, no CPU governor
# or core_pattern checks; a seed that crashes (a regression kept in the
# corpus) does not stop the run.
export AFL_NO_UI=1 AFL_SKIP_CPUFREQ=1 AFL_I_DONT_CARE_ABOUT_MISSING_CRASHES=1
export AFL_IGNORE_SEED_PROBLEMS=1 AFL_NO_AFFINITY=1
# afl's current input and the oci target's files (it writes each input as
# a layout) go to memory when it can, one directory per target: two
# afl-fuzz sharing one AFL_TMPDIR refuse to start.
shm=
if [ -d /dev/shm ] && [ -w /dev/shm ]; then
    shm=/dev/shm/pod1-fuzz
fi

fuzz_one() {
    local t=$1 corpus=$root/target/fuzz/corpus/$1 out=$root/target/fuzz/out/$1
    mkdir -p "$corpus"
    cp -n "$root/fuzz/seeds/$t"/* "$corpus"/
    rm -rf "$out"
    if [ -n "$shm" ]; then
        mkdir -p "$shm/$t"
        rm -f "$shm/$t/.cur_input" # left by a run that was killed
        export TMPDIR=$shm/$t AFL_TMPDIR=$shm/$t
    fi
    mkdir -p "${out%/*}"
    local dict=()
    [ -f "$root/fuzz/dicts/$t.dict" ] && dict=(-x "$root/fuzz/dicts/$t.dict")
    cargo afl fuzz -i "$corpus" -o "$out" "${dict[@]}" -V "$seconds" -- "$bin/$t" \
        >"$root/target/fuzz/$t.log" 2>&1 || {
        echo "fuzz: afl-fuzz failed for $t; the end of target/fuzz/$t.log:" >&2
        tail -20 "$root/target/fuzz/$t.log" >&2
        return 1
    }
    # Keep what it found for the next run (names by content: no duplicates).
    # (afl hard-links the inputs it started from into its queue.)
    local f dest
    for f in "$out"/default/queue/id:*; do
        [ -f "$f" ] || continue
        dest=$corpus/$(sha256sum "$f" | cut -c1-16)
        [ -e "$dest" ] || cp "$f" "$dest"
    done
    return 0
}

jobs=${FUZZ_JOBS:-$(nproc)}
echo "fuzz: ${targets[*]} for ${seconds}s each, $jobs at a time"
mkdir -p target/fuzz
failed=0
running=0
for t in "${targets[@]}"; do
    if [ ! -x "$bin/$t" ]; then
        echo "fuzz: no target $t (have: manifest oci layer)" >&2
        exit 2
    fi
    fuzz_one "$t" &
    running=$((running + 1))
    if [ "$running" -ge "$jobs" ]; then
        wait -n || failed=1
        running=$((running - 1))
    fi
done
while [ "$running" -gt 0 ]; do
    wait -n || failed=1
    running=$((running - 1))
done
[ "$failed" = 0 ] || exit 1

field() { awk -F' *: *' -v k="$2" '$1 == k { print $2 }' "$1"; }
crashed=0
printf '\n%-10s %8s %12s %10s %8s %6s\n' target seconds execs execs/s crashes hangs
for t in "${targets[@]}"; do
    d=$root/target/fuzz/out/$t/default
    s=$d/fuzzer_stats
    printf '%-10s %8s %12s %10s %8s %6s\n' "$t" "$(field "$s" run_time)" "$(field "$s" execs_done)" \
        "$(field "$s" execs_per_sec)" "$(field "$s" saved_crashes)" "$(field "$s" saved_hangs)"
    for f in "$d"/crashes/id:*; do
        [ -f "$f" ] || continue
        crashed=1
        mkdir -p "fuzz/regressions/$t"
        name=crash-$(sha256sum "$f" | cut -c1-16)
        cp "$f" "fuzz/regressions/$t/$name"
        echo "  crash: fuzz/regressions/$t/$name (afl: ${f#"$root"/})"
    done
    for f in "$d"/hangs/id:*; do
        [ -f "$f" ] && echo "  hang: ${f#"$root"/}"
    done
done
if [ "$crashed" = 1 ]; then
    echo "fuzz: crashes found; replay one with: target/fuzz/x86_64-unknown-linux-gnu/release/TARGET < FILE"
    exit 1
fi
echo "fuzz: no crashes"
