#!/usr/bin/env bash
# Frozen time of a plain dump against a dump after 1, 2 and 3 pre-dump
# rounds, for a process that rewrites a fixed share of its pages every
# second (bench/dirtier.c). See bench/README.md.
#
#     sudo bench/predump.sh [--mib N] [--percent P] [--interval S] [--runs N] [--part P] [--dir DIR]
#
#   --mib N       resident memory of the process (default 1024)
#   --percent P   share of its pages rewritten per second (default 1)
#   --interval S  seconds between rounds (default 1)
#   --runs N      runs of each case; the median is printed (default 3)
#   --part P      frozen (the frozen times), dedup (the disk a chain
#                 uses before and after `cryo dedup`) or all (default)
#
# Each case starts a fresh process, lets it run one interval, makes K
# pre-dumps one interval apart (a chain), then `cryo dump --prev-images-dir`
# one interval later; the dump's "frozen for" (from --display-stats) and the
# pages it stored are reported. The process is killed by the dump itself;
# on a failure the script kills what it started (its pid, after checking it
# runs the benchmark victim) and removes its temporary directory.
#
# The dedup part makes the chain of 3 pre-dumps and the dump the same way
# and reports the disk its checkpoints use (du) before and after `cryo
# dedup -D final` punched out of the pre-dumps the pages the dump does not
# need (median of --runs).
set -euo pipefail

# shellcheck source=bench/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
dirtier="$build/bench/cryo-bench-dirtier"
victim_exes=("$dirtier")
mib=1024
percent=1
interval=1
part=all

bench_parse "usage: bench/predump.sh [--mib N] [--percent P] [--interval S] [--runs N] [--part frozen|dedup|all] [--dir DIR]" \
    --mib=#mib --percent=percent --interval=interval --part=part -- "$@"
[[ "$part" =~ ^(frozen|dedup|all)$ ]] || die "--part $part: expected frozen, dedup or all"
bench_require "$cryo" "$dirtier"
bench_work predump

stat_of() { awk -v key="$1" 'index($0, key) == 1 { print $NF }' "$2"; }

# One case: $1 pre-dumps, then the dump. Prints "frozen_ms stored_pages".
one_case() {
    local rounds="$1" previous="" dir
    rm -rf "$work"/round* "$work"/final
    start_victim "$dirtier" "$mib" "$percent"
    sleep "$interval"
    for ((round = 1; round <= rounds; round++)); do
        dir="$work/round$round"
        "$cryo" pre-dump -t "$live" -D "$dir" ${previous:+--prev-images-dir "$previous"} >/dev/null \
            || die "pre-dump round $round failed"
        previous="../round$round"
        sleep "$interval"
    done
    "$cryo" dump -t "$live" -D "$work/final" ${previous:+--prev-images-dir "$previous"} --display-stats \
        >"$work/stats" || die "dump failed"
    live=""
    echo "$(stat_of "frozen for" "$work/stats") $(stat_of "pages stored" "$work/stats")"
}

# KiB the chain left by one_case uses on disk.
chain_kib() { du -sk "$work"/round* "$work"/final | awk '{ total += $1 } END { print total }'; }

# The chain of 3 pre-dumps and the dump; prints "KiB_before KiB_after" dedup.
dedup_case() {
    one_case 3 >/dev/null
    local before
    before=$(chain_kib)
    "$cryo" dedup -D "$work/final" >/dev/null || die "dedup failed"
    echo "$before $(chain_kib)"
}

echo "process: $mib MiB, $percent % of its pages rewritten per second, rounds ${interval} s apart, median of $runs runs"
if [[ "$part" != frozen ]]; then
    : >"$work/results"
    for ((run = 0; run < runs; run++)); do
        dedup_case >>"$work/results"
    done
    before=$(awk '{ print $1 }' "$work/results" | median)
    after=$(awk '{ print $2 }' "$work/results" | median)
    printf "chain of 3 pre-dumps + dump on %s: %s MiB on disk, %s MiB after cryo dedup\n" "$(fs_type "$work")" \
        "$((${before%.*} / 1024))" "$((${after%.*} / 1024))"
    [[ "$part" == dedup ]] && exit 0
fi
printf "%-22s %14s %14s\n" "case" "frozen (ms)" "pages stored"
for rounds in 0 1 2 3; do
    : >"$work/results"
    for ((run = 0; run < runs; run++)); do
        one_case "$rounds" >>"$work/results"
    done
    frozen=$(awk '{ print $1 }' "$work/results" | median)
    stored=$(awk '{ print $2 }' "$work/results" | median)
    name=$([[ $rounds == 0 ]] && echo "plain dump" || echo "after $rounds pre-dump(s)")
    printf "%-22s %14s %14s\n" "$name" "$frozen" "$stored"
done
