#!/usr/bin/env bash
# Dump and restore time of a process with N MiB of resident anonymous memory,
# next to the time to simply write and read N MiB sequentially in the same
# directory. Run as root after scripts/setup:
#     bench/dump_restore.sh [--sizes "256 1024 4096"] [--dir DIR]
# Page caches are dropped before each read (cryo restore and the baseline
# read) when /proc/sys/vm/drop_caches is writable, so both read from disk.
set -euo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cryo="$repo/build/src/cryo"
memhog="$repo/build/bench/cryo-bench-memhog"
sizes="256 1024 4096"
base_dir="${TMPDIR:-/var/tmp}"
while (($#)); do
    case "$1" in
        --sizes) sizes="$2"; shift 2 ;;
        --dir) base_dir="$2"; shift 2 ;;
        *) echo "usage: $0 [--sizes \"256 1024\"] [--dir DIR]" >&2; exit 2 ;;
    esac
done
work="$(mktemp -d "$base_dir/cryo-bench-XXXXXX")"
victim=""
restore_waiter=""

cleanup() {
    if [[ -n "$victim" && "$victim" -gt 1 ]] && kill -0 "$victim" 2>/dev/null; then
        kill -9 "$victim" 2>/dev/null || true
    fi
    [[ -n "$restore_waiter" ]] && wait "$restore_waiter" 2>/dev/null || true
    [[ -n "$victim" ]] && wait "$victim" 2>/dev/null || true
    rm -rf "$work"
}
trap cleanup EXIT

drop_caches() {
    sync
    if echo 3 > /proc/sys/vm/drop_caches 2>/dev/null; then caches="dropped"; else caches="warm"; fi
}
now_ms() { date +%s%3N; }

printf "%6s | %8s %8s %8s %6s | %8s %8s %6s | %8s | %s\n" "MiB" "dump ms" "write ms" "wdirect" "ratio" "rest. ms" "read ms" "ratio" "image MiB" "caches"
for size in $sizes; do
    images="$work/images-$size"
    "$memhog" "$size" > "$work/memhog.out" 2>&1 &
    victim=$!
    for _ in $(seq 600); do grep -q READY "$work/memhog.out" 2>/dev/null && break; sleep 0.1; done

    start=$(now_ms)
    if ! "$cryo" dump -t "$victim" -D "$images" 2> "$work/dump.err"; then
        echo "bench: cryo dump failed: $(cat "$work/dump.err")" >&2
        exit 1
    fi
    dump_ms=$(( $(now_ms) - start ))
    wait "$victim" 2>/dev/null || true
    image_mib=$(( $(du -sb "$images" | cut -f1) / 1048576 ))

    # Baseline write: the same bytes, written sequentially and fsynced.
    pages="$(ls "$images"/pages-*.img)"
    drop_caches
    start=$(now_ms)
    dd if="$pages" of="$work/baseline" bs=4M conv=fsync status=none
    write_ms=$(( $(now_ms) - start ))
    rm -f "$work/baseline-direct"
    drop_caches
    start=$(now_ms)
    dd if="$pages" of="$work/baseline-direct" bs=4M oflag=direct conv=fsync status=none
    direct_ms=$(( $(now_ms) - start ))
    rm -f "$work/baseline-direct"
    # The better of the two ways to write is the baseline.
    best_write=$(( write_ms < direct_ms ? write_ms : direct_ms ))

    drop_caches
    start=$(now_ms)
    "$cryo" restore -D "$images" --pidfile "$work/pid" 2> "$work/restore.err" &
    restore_waiter=$!
    for _ in $(seq 6000); do [[ -s "$work/pid" ]] && break; sleep 0.01; done
    restore_ms=$(( $(now_ms) - start ))
    if [[ ! -s "$work/pid" ]]; then
        echo "bench: cryo restore failed: $(cat "$work/restore.err")" >&2
        exit 1
    fi
    victim=$(cat "$work/pid")
    rm -f "$work/pid"
    kill -9 "$victim"
    wait "$restore_waiter" 2>/dev/null || true
    restore_waiter=""
    victim=""

    drop_caches
    start=$(now_ms)
    dd if="$work/baseline" of=/dev/null bs=4M status=none
    read_ms=$(( $(now_ms) - start ))

    rm -rf "$images" "$work/baseline"
    awk -v s="$size" -v d="$dump_ms" -v w="$write_ms" -v wd="$direct_ms" -v b="$best_write" -v r="$restore_ms" -v rd="$read_ms" \
        -v i="$image_mib" -v c="$caches" \
        'BEGIN { printf "%6d | %8d %8d %8d %6.2f | %8d %8d %6.2f | %8d | %s\n", s, d, w, wd, d / (b ? b : 1), r, rd, r / (rd ? rd : 1), i, c }'
done
