#!/usr/bin/env bash
# What --compress and --encrypt cost: dump and restore time and checkpoint
# size of a plain checkpoint, a compressed one, an encrypted one and one
# that is both. See bench/README.md.
#
#     sudo bench/crypt.sh [--mib N] [--runs N] [--dir DIR]
#
# Workloads:
#   randomN   cryo-bench-memhog with N MiB (default 256) of random memory:
#             nothing to gain by compressing, the worst case for it.
#   text      the `crypt` test victim: 32 MiB of repeated text (compresses
#             about 100:1) and 8 MiB of random bytes.
# Times are wall times of the commands (ms), the median of --runs (default
# 3); size is the whole checkpoint directory. The page cache is dropped
# before every restore. On any failure the script says so, kills what it
# started (only processes running a benchmark or test victim) and removes
# its temporary directory.
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
build="${CRYO_BUILD_DIR:-$repo/build}"
cryo="$build/src/cryo"
memhog="$build/bench/cryo-bench-memhog"
text_victim="$build/tests/victims/victim_crypt"
mib=256
runs=3
base_dir="${TMPDIR:-/var/tmp}"

usage() { echo "usage: bench/crypt.sh [--mib N] [--runs N] [--dir DIR]"; }
while (($#)); do
    case "$1" in
        --mib) [[ $# -ge 2 && "$2" =~ ^[1-9][0-9]*$ ]] || { usage >&2; exit 2; }; mib="$2"; shift 2 ;;
        --runs) [[ $# -ge 2 && "$2" =~ ^[1-9][0-9]*$ ]] || { usage >&2; exit 2; }; runs="$2"; shift 2 ;;
        --dir) [[ $# -ge 2 ]] || { usage >&2; exit 2; }; base_dir="$2"; shift 2 ;;
        -h|--help) usage; exit 0 ;;
        *) usage >&2; exit 2 ;;
    esac
done

die() { echo "bench: $*" >&2; exit 1; }
for binary in "$cryo" "$memhog" "$text_victim"; do
    [[ -x "$binary" ]] || die "$binary is missing: build first with scripts/setup --no-demo"
done
[[ -d "$base_dir" ]] || die "--dir $base_dir is not a directory"

work="$(mktemp -d "$base_dir/cryo-bench-crypt.XXXXXX")"
live=""
head -c 32 /dev/urandom >"$work/key"

is_victim() {
    local pid="$1" exe
    [[ "$pid" =~ ^[0-9]+$ ]] && ((pid > 1)) || return 1
    exe="$(readlink "/proc/$pid/exe" 2>/dev/null)" || return 1
    [[ "$exe" == "$(readlink -f "$memhog")" || "$exe" == "$(readlink -f "$text_victim")" ]]
}

wait_gone() {
    for _ in $(seq 400); do
        [[ -d "/proc/$1" ]] || return 0
        sleep 0.02
    done
}

stop_victim() {
    local pid="$live"
    live=""
    is_victim "$pid" || return 0
    kill -KILL "$pid" 2>/dev/null || true
    wait_gone "$pid"
}

cleanup() {
    stop_victim
    if [[ -s "$work/pid" ]]; then
        live=$(cat "$work/pid")
        stop_victim
    fi
    rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

now_ns() { date +%s%N; }
ms_since() { echo $(( ($(now_ns) - $1) / 1000000 )); }
drop_caches() { sync; echo 3 2>/dev/null >/proc/sys/vm/drop_caches || true; }
median() { tr ' ' '\n' | grep -v '^$' | sort -n | awk '{ v[NR] = $1 } END { if (NR % 2) print v[(NR + 1) / 2]; else print (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }

# Starts the workload's victim as a child of this shell and waits for READY.
start_victim() {
    local log="$work/victim.log"
    rm -f "$log"
    if [[ "$1" == text ]]; then
        "$text_victim" "$log" </dev/null >/dev/null 2>&1 &
    else
        "$memhog" "$mib" </dev/null >"$log" 2>&1 &
    fi
    local pid=$!
    disown "$pid"
    live=$pid
    for _ in $(seq 3000); do
        grep -q READY "$log" 2>/dev/null && break
        [[ -d "/proc/$pid" ]] || die "the $1 victim exited before it was ready"
        sleep 0.02
    done
    grep -q READY "$log" || die "the $1 victim was not ready in time"
}

# One dump and restore; sets dump_ms, restore_ms, size_mib.
run_once() {
    local workload="$1" pid start
    shift
    start_victim "$workload"
    pid=$live
    rm -rf "$work/images"
    start=$(now_ns)
    "$cryo" dump -t "$pid" -D "$work/images" "$@" 2>"$work/dump.err" || die "cryo dump $*: $(cat "$work/dump.err")"
    dump_ms=$(ms_since "$start")
    live=""
    wait_gone "$pid"
    size_mib=$(du -sb "$work/images" | awk '{ printf "%.1f", $1 / 1048576 }')
    local key=()
    [[ " $* " == *" --encrypt "* ]] && key=(--key "$work/key")
    drop_caches
    start=$(now_ns)
    "$cryo" restore -D "$work/images" -d --pidfile "$work/pid" "${key[@]}" 2>"$work/restore.err" ||
        die "cryo restore ($*): $(cat "$work/restore.err")"
    restore_ms=$(ms_since "$start")
    live=$(cat "$work/pid")
    rm -f "$work/pid"
    is_victim "$live" || die "the restored victim $live does not run"
    stop_victim
}

echo "cryo --compress / --encrypt, in $base_dir ($(df -T "$base_dir" | awk 'NR == 2 { print $2 }')), kernel $(uname -r), $(nproc) CPUs, median of $runs"
printf "%-10s | %-26s | %8s | %8s | %9s\n" workload options "dump ms" "rest. ms" "size MiB"
for workload in "random$mib" text; do
    for options in "" "--compress" "--encrypt $work/key" "--compress --encrypt $work/key"; do
        ds="" rs="" size=""
        for _ in $(seq "$runs"); do
            # shellcheck disable=SC2086
            run_once "${workload%%[0-9]*}" $options
            ds+=" $dump_ms"; rs+=" $restore_ms"; size=$size_mib
        done
        label="${options//$work\/key/KEY}"
        printf "%-10s | %-26s | %8s | %8s | %9s\n" "$workload" "${label:-plain}" "$(echo "$ds" | median)" \
            "$(echo "$rs" | median)" "$size"
    done
done
