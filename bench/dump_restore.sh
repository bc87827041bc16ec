#!/usr/bin/env bash
# How long `cryo dump` and `cryo restore` take for a process holding N MiB of
# resident, incompressible anonymous memory (cryo-bench-memhog), next to the
# time the same disk needs to simply write (with fsync) and read N MiB
# sequentially in the same directory. See bench/README.md.
#
#     sudo bench/dump_restore.sh [--sizes "256 1024 4096"] [--dir DIR]
#
# The page cache is dropped before each timed read (cryo restore and the
# baseline read) when /proc/sys/vm/drop_caches is writable, so both read from
# the disk; the table says whether it was. On any failure the script reports
# it, kills the memhog it started (by PID, and only after checking that the
# PID still runs memhog) and removes its temporary directory.
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
build="${CRYO_BUILD_DIR:-$repo/build}"
cryo="$build/src/cryo"
memhog="$build/bench/cryo-bench-memhog"
sizes="256 1024 4096"
base_dir="${TMPDIR:-/var/tmp}"

usage() { echo "usage: bench/dump_restore.sh [--sizes \"256 1024 4096\"] [--dir DIR]"; }
while (($#)); do
    case "$1" in
        --sizes) [[ $# -ge 2 ]] || { usage >&2; exit 2; }; sizes="$2"; shift 2 ;;
        --dir) [[ $# -ge 2 ]] || { usage >&2; exit 2; }; base_dir="$2"; shift 2 ;;
        -h|--help) usage; exit 0 ;;
        *) usage >&2; exit 2 ;;
    esac
done

die() { echo "bench: $*" >&2; exit 1; }
for binary in "$cryo" "$memhog"; do
    [[ -x "$binary" ]] || die "$binary is missing: build first with scripts/setup --no-demo"
done
[[ -d "$base_dir" ]] || die "--dir $base_dir is not a directory"

work="$(mktemp -d "$base_dir/cryo-bench.XXXXXX")"
live=""   # the PID our memhog runs as right now

is_memhog() {
    local pid="$1"
    [[ "$pid" =~ ^[0-9]+$ ]] && ((pid > 1)) &&
        [[ "$(readlink "/proc/$pid/exe" 2>/dev/null)" == "$(readlink -f "$memhog")" ]]
}

# Until the PID is gone, or is a zombie (its memory is freed by then).
wait_gone() {
    for _ in $(seq 100); do
        [[ -d "/proc/$1" && "$(awk '{print $3}' "/proc/$1/stat" 2>/dev/null)" != Z ]] || return 0
        sleep 0.05
    done
}

stop_memhog() {
    local pid="$live"
    live=""
    is_memhog "$pid" || return 0
    kill -KILL "$pid" 2>/dev/null || true
    wait_gone "$pid"
}

cleanup() {
    stop_memhog
    # Interrupted right after a restore, before its PID was taken over.
    if [[ -s "$work/pid" ]]; then
        live=$(cat "$work/pid")
        stop_memhog
    fi
    rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

now_ms() { echo $(( $(date +%s%N) / 1000000 )); }

caches="warm"
drop_caches() {
    sync
    if echo 3 2>/dev/null >/proc/sys/vm/drop_caches; then caches="dropped"; else caches="warm"; fi
}

available_mib=$(awk '/^MemAvailable:/ { print int($2 / 1024) }' /proc/meminfo)
echo "cryo dump/restore vs. sequential write/read, in $base_dir ($(df -T "$base_dir" | awk 'NR == 2 { print $2 }')), kernel $(uname -r)"
printf "%9s | %8s %8s %6s | %8s %8s %6s | %9s | %s\n" \
    "size MiB" "dump ms" "write ms" "ratio" "rest. ms" "read ms" "ratio" "image MiB" "page cache before reads"

for size in $sizes; do
    [[ "$size" =~ ^[1-9][0-9]*$ ]] || die "--sizes: '$size' is not a number of MiB"
    if ((size + 512 > available_mib)); then
        printf "%9s | skipped: needs about %d MiB of free memory, %d available\n" "$size" $((size + 512)) "$available_mib"
        continue
    fi
    images="$work/images-$size"
    log="$work/memhog-$size.log"

    # Not a job of this script: bash still reaps it, without a "Killed" notice.
    "$memhog" "$size" </dev/null >"$log" 2>&1 &
    pid=$!
    live=$pid
    disown "$pid"
    for _ in $(seq $((300 + size / 4))); do
        grep -q READY "$log" && break
        is_memhog "$pid" || die "memhog ($size MiB) exited before it was ready: $(cat "$log")"
        sleep 0.1
    done
    grep -q READY "$log" || die "memhog ($size MiB) was not ready in time"

    start=$(now_ms)
    "$cryo" dump -t "$pid" -D "$images" 2>"$work/dump.err" ||
        die "cryo dump of the $size MiB memhog failed: $(cat "$work/dump.err")"
    dump_ms=$(( $(now_ms) - start ))
    is_memhog "$pid" && die "memhog $pid still runs after cryo dump"
    live=""
    wait_gone "$pid"   # its PID must be free again for the restore
    image_mib=$(du -sm "$images" | cut -f1)
    # shellcheck disable=SC2012  # plain image names; the page file is the biggest
    pages="$images/$(ls -S "$images" | head -n 1)"

    # Baseline write: the same bytes, from the page cache to a new file,
    # fsynced; through the page cache and with O_DIRECT (as cryo writes
    # pages where it can); the faster of the two is the baseline.
    cat "$pages" >/dev/null
    write_ms=""
    for flags in "conv=fsync" "oflag=direct conv=fsync"; do
        start=$(now_ms)
        # shellcheck disable=SC2086
        dd if="$pages" of="$work/baseline" bs=4M $flags status=none
        elapsed=$(( $(now_ms) - start ))
        [[ -z "$write_ms" || "$elapsed" -lt "$write_ms" ]] && write_ms=$elapsed
        rm -f "$work/baseline"
    done

    drop_caches
    start=$(now_ms)
    "$cryo" restore -D "$images" -d --pidfile "$work/pid" 2>"$work/restore.err" ||
        die "cryo restore of the $size MiB memhog failed: $(cat "$work/restore.err")"
    restore_ms=$(( $(now_ms) - start ))
    restored=$(cat "$work/pid" 2>/dev/null || true)
    rm -f "$work/pid"
    is_memhog "$restored" || die "after cryo restore the pidfile holds '$restored', which is not a running memhog"
    live=$restored
    stop_memhog

    # Baseline read: the page file itself, sequentially.
    drop_caches
    start=$(now_ms)
    dd if="$pages" of=/dev/null bs=4M status=none
    read_ms=$(( $(now_ms) - start ))
    rm -rf "$images"

    awk -v s="$size" -v d="$dump_ms" -v w="$write_ms" -v r="$restore_ms" -v rd="$read_ms" -v i="$image_mib" -v c="$caches" \
        'BEGIN { printf "%9d | %8d %8d %6.2f | %8d %8d %6.2f | %9d | %s\n", s, d, w, d / (w ? w : 1), r, rd, r / (rd ? rd : 1), i, c }'
done
