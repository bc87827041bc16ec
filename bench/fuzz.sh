#!/usr/bin/env bash
# Fuzzes every reader of untrusted checkpoint files (the libFuzzer targets of
# fuzz/) for a fixed number of executions each, with AddressSanitizer and
# UndefinedBehaviorSanitizer, and prints one line per target: executions,
# seconds, crashes found. See bench/README.md, "Fuzzing".
#
#   sudo bench/fuzz.sh                      # every target, 200000 executions each
#   sudo bench/fuzz.sh --runs 20000 --targets "fuzz_page_map fuzz_json_encode"
#
# Builds what is missing: the normal build (build/: cryo and the victims that
# make the seed corpus) and the fuzz build (build-fuzz/, clang-16 with
# -DCRYO_FUZZ=ON). The seed corpus is made fresh from real checkpoints
# (fuzz/make_corpus.sh, needs root); what a run adds to it, and the inputs
# that crashed, stay in build-fuzz/fuzz-out/<target>/ for inspection (a crash
# is replayed with `build-fuzz/fuzz/<target> FILE`). Exits 1 if any target
# found a crash, a hang (-timeout), a leak or a huge allocation
# (-malloc_limit_mb).
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
runs=200000
targets=""
timeout_s=10
malloc_limit_mb=512
usage() {
    echo "usage: bench/fuzz.sh [--runs N] [--targets \"T1 T2 ...\"] [--timeout SECONDS] [--malloc-limit-mb MB]" >&2
    exit 2
}
while (($#)); do
    case "$1" in
        --runs) runs="${2:?}"; shift 2 ;;
        --targets) targets="${2:?}"; shift 2 ;;
        --timeout) timeout_s="${2:?}"; shift 2 ;;
        --malloc-limit-mb) malloc_limit_mb="${2:?}"; shift 2 ;;
        -h|--help) usage ;;
        *) usage ;;
    esac
done
[[ "$runs" =~ ^[0-9]+$ ]] || usage

build="$repo/build"
build_fuzz="$repo/build-fuzz"
out="$build_fuzz/fuzz-out"

# Build output is shown only when a build fails.
build_log="$(mktemp "${TMPDIR:-/tmp}/cryo-fuzz-build.XXXXXX")"
quiet() { "$@" >"$build_log" 2>&1 || { cat "$build_log" >&2; rm -f "$build_log"; exit 1; }; }

# The normal build: cryo and the victims, to make checkpoints.
if [[ ! -f "$build/CMakeCache.txt" ]]; then
    quiet cmake -S "$repo" -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo
fi
quiet cmake --build "$build"

# The fuzz build.
clangxx=""
for cxx in clang++-16 clang++-17 clang++-18 clang++-19; do
    if command -v "$cxx" >/dev/null; then clangxx="$cxx"; break; fi
done
if [[ ! -f "$build_fuzz/CMakeCache.txt" ]]; then
    if [[ -z "$clangxx" ]]; then
        echo "fuzz: no clang++-16 (or newer) found: apt-get install clang-16 libclang-rt-16-dev (scripts/setup does)" >&2
        exit 1
    fi
    quiet env CC="${clangxx/clang++/clang}" CXX="$clangxx" \
        cmake -S "$repo" -B "$build_fuzz" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DCRYO_FUZZ=ON
fi
quiet cmake --build "$build_fuzz" --target cryo_fuzz
rm -f "$build_log"

all_targets=(fuzz_image_tree fuzz_image_core fuzz_image_mm fuzz_image_pagemap fuzz_image_fds fuzz_image_files
             fuzz_image_manifest fuzz_image_stats fuzz_checkpoint_dir fuzz_page_map fuzz_json_encode fuzz_transform)
if [[ -n "$targets" ]]; then
    read -r -a selected <<<"$targets"
else
    selected=("${all_targets[@]}")
fi
for target in "${selected[@]}"; do
    [[ -x "$build_fuzz/fuzz/$target" ]] || { echo "fuzz: unknown target $target (known: ${all_targets[*]})" >&2; exit 2; }
done

# Seeds from real checkpoints, made fresh.
seeds="$out/seeds"
rm -rf "$seeds"
mkdir -p "$seeds"
"$repo/fuzz/make_corpus.sh" "$build" "$build_fuzz" "$seeds" >&2

# The fuzz targets' scratch directories (each makes one, removed at exit;
# one left by a crash goes with this one).
scratch="$(mktemp -d "/dev/shm/cryo-fuzz-run.XXXXXX" 2>/dev/null || mktemp -d "${TMPDIR:-/tmp}/cryo-fuzz-run.XXXXXX")"
fuzzer_pid=""
cleanup() {
    if [[ -n "$fuzzer_pid" ]] && kill -0 "$fuzzer_pid" 2>/dev/null; then
        kill -TERM "$fuzzer_pid" 2>/dev/null || true
        wait "$fuzzer_pid" 2>/dev/null || true
    fi
    rm -rf "$scratch"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

printf '%-22s %12s %10s %8s\n' target executions seconds crashes
total_crashes=0
for target in "${selected[@]}"; do
    dir="$out/$target"
    rm -rf "$dir"
    mkdir -p "$dir/corpus" "$dir/artifacts"
    mkdir -p "$seeds/$target"
    start=$(date +%s.%N)
    # -close_fd_mask=3: the targets' own output (show, warnings) is not
    # the fuzzer's; libFuzzer and the sanitizers keep reporting.
    CRYO_FUZZ_SCRATCH="$scratch" "$build_fuzz/fuzz/$target" -runs="$runs" -timeout="$timeout_s" \
        -malloc_limit_mb="$malloc_limit_mb" -rss_limit_mb=2048 -close_fd_mask=3 -print_final_stats=1 \
        -artifact_prefix="$dir/artifacts/" "$dir/corpus" "$seeds/$target" >"$dir/log" 2>&1 &
    fuzzer_pid=$!
    status=0
    wait "$fuzzer_pid" || status=$?
    fuzzer_pid=""
    end=$(date +%s.%N)
    executions=$(sed -n 's/^stat::number_of_executed_units: *//p' "$dir/log" | tail -1)
    if [[ -z "$executions" ]]; then
        # A crash ends the run before the final statistics: the last status line.
        executions=$(grep -oE '^#[0-9]+' "$dir/log" | tail -1 | tr -d '#')
    fi
    crashes=$(find "$dir/artifacts" -type f | wc -l)
    if ((status != 0 && crashes == 0)); then
        crashes=1   # died without an artifact (e.g. killed): count it, the log says why
    fi
    total_crashes=$((total_crashes + crashes))
    printf '%-22s %12s %10.1f %8s\n' "$target" "${executions:-?}" "$(awk -v a="$start" -v b="$end" 'BEGIN { print b - a }')" "$crashes"
    if ((crashes)); then
        grep -E 'ERROR: |SUMMARY: |Test unit written to' "$dir/log" | sed 's/^/    /' | head -5
    fi
done
if ((total_crashes)); then
    echo "fuzz: $total_crashes crash(es); inputs and logs in $out" >&2
    exit 1
fi
