#!/usr/bin/env bash
# Time to running of `cryo restore --lazy-pages` against a plain restore,
# for processes of several sizes. See bench/README.md.
#
#     sudo bench/lazy.sh [--sizes "256 1024 4096"] [--runs N] [--dir DIR]
#
# For each size, cryo-bench-memhog fills that many MiB of private memory and
# is dumped once; then, --runs times each (median printed):
#   plain      `cryo restore -d` until it returns (the tree runs, every page
#              in place);
#   lazy       `cryo restore -d --lazy-pages` until it returns (the tree
#              runs, its memory still arriving);
#   lazy - verify  the same without the verification of the checkpoint's
#              checksums (--display-stats), which reads every page file
#              before anything starts and so grows with the size;
#   lazy full  from the start of that restore until the lazy-pages server
#              exits (every page in place, streamed in the background).
# The page file is in the page cache (read once before the runs). 4096 is
# left out when memory is short. On any failure the script reports it,
# kills what it started (after checking it runs the benchmark victim) and
# removes its temporary directory.
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
build="${CRYO_BUILD_DIR:-$repo/build}"
cryo="$build/src/cryo"
memhog="$build/bench/cryo-bench-memhog"
sizes=""
runs=3
base_dir="${TMPDIR:-/var/tmp}"

usage() { echo "usage: bench/lazy.sh [--sizes \"256 1024 4096\"] [--runs N] [--dir DIR]"; }
while (($#)); do
    case "$1" in
        --sizes) [[ $# -ge 2 ]] || { usage >&2; exit 2; }; sizes="$2"; shift 2 ;;
        --runs) [[ $# -ge 2 && "$2" =~ ^[1-9][0-9]*$ ]] || { usage >&2; exit 2; }; runs="$2"; shift 2 ;;
        --dir) [[ $# -ge 2 ]] || { usage >&2; exit 2; }; base_dir="$2"; shift 2 ;;
        -h|--help) usage; exit 0 ;;
        *) usage >&2; exit 2 ;;
    esac
done

die() { echo "bench: $*" >&2; exit 1; }
for binary in "$cryo" "$memhog"; do
    [[ -x "$binary" ]] || die "$binary is missing: build first"
done
available_mib=$(awk '/^MemAvailable:/ { print int($2 / 1024) }' /proc/meminfo)
if [[ -z "$sizes" ]]; then
    sizes="256 1024"
    ((available_mib > 2 * 4096 + 1024)) && sizes+=" 4096"
fi
work="$(mktemp -d "$base_dir/cryo-bench-lazy.XXXXXX")"
live=""   # pid of the victim (original or restored) running right now

is_victim() {
    local pid="$1" exe
    [[ "$pid" =~ ^[0-9]+$ ]] && ((pid > 1)) || return 1
    exe="$(readlink "/proc/$pid/exe" 2>/dev/null)" || return 1
    [[ "$exe" == "$(readlink -f "$memhog")" ]]
}
# Until the PID is gone (the restore needs it free).
wait_gone() {
    for _ in $(seq 1000); do
        [[ -d "/proc/$1" ]] || return 0
        sleep 0.01
    done
    return 1
}
stop_victim() {
    local pid="$live"
    live=""
    is_victim "$pid" || return 0
    kill -KILL "$pid" 2>/dev/null || true
    wait_gone "$pid" || true
}
# The lazy-pages server of the last lazy restore, once it is done.
wait_server() {
    local pid
    pid="$(cat "$work/images/lazy-pages.pid" 2>/dev/null)" || return 0
    for _ in $(seq 12000); do
        # Gone, or a zombie nobody here can reap.
        [[ "$(cat "/proc/$pid/comm" 2>/dev/null)" == "cryo-lazy-pages" ]] || return 0
        [[ "$(awk '{ print $3 }' "/proc/$pid/stat" 2>/dev/null)" != "Z" ]] || return 0
        sleep 0.005
    done
    die "the lazy-pages server $pid did not finish in 60 s"
}
cleanup() {
    stop_victim
    rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

start_victim() {
    local log="$work/victim.log"
    rm -f "$log"
    "$memhog" "$1" </dev/null >"$log" 2>&1 &
    live=$!
    disown "$live"
    for _ in $(seq 6000); do
        grep -q READY "$log" 2>/dev/null && return 0
        [[ -d "/proc/$live" ]] || die "the victim exited before it was ready: $(cat "$log")"
        sleep 0.02
    done
    die "the victim was not ready in time"
}

now_ns() { date +%s%N; }
ms_since() { echo "$(( ($(now_ns) - $1) / 1000000 ))"; }
median() { sort -n | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'; }

# One restore; prints "to-running-ms all-in-place-ms verify-ms".
restore_once() {
    local start running pid verify
    start=$(now_ns)
    "$cryo" restore -D "$work/images" -d --pidfile "$work/pid" --display-stats "$@" >"$work/stats" \
        2>"$work/restore.err" || die "restore $* failed: $(cat "$work/restore.err")"
    running=$(ms_since "$start")
    verify=$(awk '$1 == "verify" { print int($2) }' "$work/stats")
    pid="$(cat "$work/pid")"
    live="$pid"
    is_victim "$pid" || die "the restored process $pid is not the victim"
    wait_server
    echo "$running $(ms_since "$start") $verify"
    stop_victim
}

printf "%-8s %12s %12s %20s %16s\n" "MiB" "plain (ms)" "lazy (ms)" "lazy - verify (ms)" "lazy full (ms)"
for mib in $sizes; do
    rm -rf "$work/images"
    start_victim "$mib"
    "$cryo" dump -t "$live" -D "$work/images" >/dev/null || die "dump of $mib MiB failed"
    wait_gone "$live" || die "the dumped victim is still there"
    live=""
    cat "$work/images"/pages-*.img >/dev/null
    : >"$work/plain"
    : >"$work/lazy"
    for ((run = 0; run < runs; run++)); do
        restore_once >>"$work/plain"
        restore_once --lazy-pages >>"$work/lazy"
    done
    plain=$(awk '{ print $1 }' "$work/plain" | median)
    lazy=$(awk '{ print $1 }' "$work/lazy" | median)
    full=$(awk '{ print $2 }' "$work/lazy" | median)
    after_verify=$(awk '{ print $1 - $3 }' "$work/lazy" | median)
    printf "%-8s %12s %12s %20s %16s\n" "$mib" "$plain" "$lazy" "$after_verify" "$full"
done
