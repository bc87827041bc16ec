#!/usr/bin/env bash
# Time to running of `cryo restore --lazy-pages` against a plain restore,
# for processes of several sizes. See bench/README.md.
#
#     sudo bench/lazy.sh [--mode local|chain|remote|migrate] [--sizes "256 1024 4096"] [--runs N] [--dir DIR]
#
# --mode local (the default) is described here; --mode chain at chain_mode
# below; --mode remote and --mode migrate take the pages from another host
# (two network namespaces joined by a veth pair) and are described at
# remote_mode and migrate_mode in bench/lazy_remote.sh.
#
# For each size, cryo-bench-memhog fills that many MiB of private memory and
# is dumped once; then, --runs times each (median printed):
#   plain      `cryo restore -d` until it returns (the tree runs, every page
#              in place);
#   lazy       `cryo restore -d --lazy-pages` until it returns (the tree
#              runs, its memory still arriving);
#   lazy - verify  the same without the restore's "verify" step
#              (--display-stats): the checksums of the metadata, and of
#              every page file of a checkpoint without chunk checksums
#              (the lazy-pages server checks those chunk by chunk);
#   lazy full  from the start of that restore until the lazy-pages server
#              exits (every page in place, streamed in the background).
# The page file is in the page cache (read once before the runs). 4096 is
# left out when memory is short. On any failure the script reports it,
# kills what it started (after checking it runs the benchmark victim) and
# removes its temporary directory.
set -euo pipefail

# shellcheck source=bench/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
memhog="$build/bench/cryo-bench-memhog"
victim_exes=("$memhog")
sizes=""
mode=local

bench_parse "usage: bench/lazy.sh [--mode local|chain|remote|migrate] [--sizes \"256 1024 4096\"] [--runs N] [--dir DIR]" \
    --sizes=sizes --mode=mode -- "$@"
[[ "$mode" =~ ^(local|chain|remote|migrate)$ ]] || die "--mode $mode: local, chain, remote or migrate"
bench_require "$cryo" "$memhog"
available_mib=$(awk '/^MemAvailable:/ { print int($2 / 1024) }' /proc/meminfo)
if [[ -z "$sizes" ]]; then
    sizes="256 1024"
    ((available_mib > 2 * 4096 + 1024)) && sizes+=" 4096"
fi
bench_work lazy

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
# One restore; prints "to-running-ms all-in-place-ms verify-ms".
restore_once() {
    local start running pid verify
    start=$(now_ns)
    "$cryo" restore -D "$work/images" -d --pidfile "$work/pid" --display-stats "$@" >"$work/stats" \
        2>"$work/restore.err" || die "restore $* failed: $(cat "$work/restore.err")"
    running=$(ms_since "$start")
    verify=$(awk '$1 == "verify" && NF == 2 { print int($2) }' "$work/stats")
    pid="$(cat "$work/pid")"
    live="$pid"
    is_victim "$pid" || die "the restored process $pid is not the victim"
    wait_server
    echo "$running $(ms_since "$start") $verify"
    stop_victim
}

# Restores the checkpoint in $work/images --runs times plainly and lazily,
# alternating; sets plain, lazy (to running) and full (all pages in), the
# medians in ms, and keeps each lazy run's figures in $work/lazy.
time_restores() {
    : >"$work/plain"
    : >"$work/lazy"
    for ((run = 0; run < runs; run++)); do
        restore_once >>"$work/plain"
        restore_once --lazy-pages >>"$work/lazy"
    done
    plain=$(awk '{ print $1 }' "$work/plain" | median)
    lazy=$(awk '{ print $1 }' "$work/lazy" | median)
    full=$(awk '{ print $2 }' "$work/lazy" | median)
}

# --mode chain: the same for an incremental chain of 3 rounds (pre-dump,
# pre-dump --prev-images-dir, dump --prev-images-dir --track-mem; the
# victim writes nothing after filling its memory, so nearly every page is
# in the first round's page file): time to running of a plain and of a
# lazy restore of the last round, and until the lazy-pages server is done.
# A lazy restore verifies the ancestors' page files chunk by chunk as it
# reads them, so its time to running should not grow with the size.
chain_mode() {
    printf "%-8s %12s %12s %16s\n" "MiB" "plain (ms)" "lazy (ms)" "lazy full (ms)"
    for mib in $sizes; do
        rm -rf "$work/r1" "$work/r2" "$work/images"
        start_victim "$memhog" "$mib"
        "$cryo" pre-dump -t "$live" -D "$work/r1" >/dev/null || die "pre-dump of $mib MiB failed"
        "$cryo" pre-dump -t "$live" -D "$work/r2" --prev-images-dir ../r1 >/dev/null || die "second pre-dump failed"
        "$cryo" dump -t "$live" -D "$work/images" --prev-images-dir ../r2 --track-mem >/dev/null || die "dump failed"
        wait_gone "$live" || die "the dumped victim is still there"
        live=""
        cat "$work"/r1/pages-*.img "$work"/r2/pages-*.img "$work"/images/pages-*.img >/dev/null
        time_restores
        printf "%-8s %12s %12s %16s\n" "$mib" "$plain" "$lazy" "$full"
    done
}

if [[ "$mode" == chain ]]; then
    chain_mode
    exit 0
fi
if [[ "$mode" != local ]]; then
    # shellcheck source=bench/lazy_remote.sh
    source "$(dirname "${BASH_SOURCE[0]}")/lazy_remote.sh"
    "${mode}_mode"
    exit 0
fi

printf "%-8s %12s %12s %20s %16s\n" "MiB" "plain (ms)" "lazy (ms)" "lazy - verify (ms)" "lazy full (ms)"
for mib in $sizes; do
    rm -rf "$work/images"
    start_victim "$memhog" "$mib"
    "$cryo" dump -t "$live" -D "$work/images" >/dev/null || die "dump of $mib MiB failed"
    wait_gone "$live" || die "the dumped victim is still there"
    live=""
    cat "$work/images"/pages-*.img >/dev/null
    time_restores
    after_verify=$(awk '{ print $1 - $3 }' "$work/lazy" | median)
    printf "%-8s %12s %12s %20s %16s\n" "$mib" "$plain" "$lazy" "$after_verify" "$full"
done
