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

# shellcheck source=bench/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
memhog="$build/bench/cryo-bench-memhog"
text_victim="$build/tests/victims/victim_crypt"
victim_exes=("$memhog" "$text_victim")
mib=256

bench_parse "usage: bench/crypt.sh [--mib N] [--runs N] [--dir DIR]" --mib=#mib -- "$@"
bench_require "$cryo" "$memhog" "$text_victim"
bench_work crypt
head -c 32 /dev/urandom >"$work/key"

# Starts the workload's victim as a child of this shell and waits for READY.
start_workload() {
    if [[ "$1" == text ]]; then
        start_victim --log-arg "$text_victim"
    else
        start_victim "$memhog" "$mib"
    fi
}

# One dump and restore; sets dump_ms, restore_ms, size_mib.
run_once() {
    local workload="$1" pid start
    shift
    start_workload "$workload"
    pid=$live
    rm -rf "$work/images"
    start=$(now_ns)
    "$cryo" dump -t "$pid" -D "$work/images" "$@" 2>"$work/dump.err" || die "cryo dump $*: $(cat "$work/dump.err")"
    dump_ms=$(ms_since "$start")
    live=""
    wait_gone "$pid" || true
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

echo "cryo --compress / --encrypt, in $base_dir ($(fs_type "$base_dir")), kernel $(uname -r), $(nproc) CPUs, median of $runs"
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
