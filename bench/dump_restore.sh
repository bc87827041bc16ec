#!/usr/bin/env bash
# How long `cryo dump` and `cryo restore` take for a set of workloads, next
# to what the same machine needs without cryo. See bench/README.md.
#
#     sudo bench/dump_restore.sh [--workloads "mem256 mem1024 ..."] [--runs N] [--dir DIR]
#
# Workloads (default: all of them but mem4096 when memory is short):
#   memN        cryo-bench-memhog with N MiB of resident random memory;
#               baselines: writing the same N MiB from memory to a file
#               (fdatasync, the faster of O_DIRECT and buffered), and reading
#               the page file into freshly mapped memory (cold page cache).
#   cacheN      the same with `cryo dump --no-sync`; baselines: the plain
#               write without fdatasync (to the page cache), and the read of
#               the page file from the page cache.
#   sparse      memhog with 256 MiB, a 1 TiB PROT_NONE reservation and a
#               64 GiB untouched read-write mapping; baseline: mem256's cryo
#               times (so the ratio is the cost of the empty address space).
#   counter     the `counter` test victim (a few MiB): absolute times, and
#               cryo's own total from --display-stats.
#   treeN       memhog 0 MiB with N processes (each 1 MiB, 16 fds on
#               /dev/null); baseline: tree1, and the note gives the cost per
#               extra process.
#   threadsN    memhog 0 MiB with N threads; baseline: threads1, and the cost
#               per extra thread.
# Each workload runs --runs times (default 3) and the median is printed.
# The page cache is dropped before every timed read of a memN workload.
# On any failure the script reports it, kills what it started (by process
# group, after checking it runs a benchmark victim) and removes its
# temporary directory.
set -euo pipefail

# shellcheck source=bench/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
memhog="$build/bench/cryo-bench-memhog"
plainio="$build/bench/cryo-bench-plainio"
counter="$build/tests/victims/victim_counter"
victim_exes=("$memhog" "$counter")
workloads=""
sizes=""

bench_parse "usage: bench/dump_restore.sh [--workloads \"mem256 mem1024 mem4096 cache1024 cache4096 sparse counter tree1 tree10 tree100 threads1 threads64\"] [--runs N] [--dir DIR]" \
    --workloads=workloads --sizes=sizes -- "$@"
[[ -z "$sizes" ]] || workloads="$(for s in $sizes; do echo -n "mem$s "; done)"
bench_require "$cryo" "$memhog" "$plainio" "$counter"
available_mib=$(awk '/^MemAvailable:/ { print int($2 / 1024) }' /proc/meminfo)
if [[ -z "$workloads" ]]; then
    workloads="mem256 mem1024"
    ((available_mib > 4096 + 1024)) && workloads+=" mem4096"
    workloads+=" cache1024"
    ((available_mib > 2 * 4096 + 1024)) && workloads+=" cache4096"
    workloads+=" sparse counter tree1 tree10 tree100 threads1 threads64"
fi
bench_work dump

# Kills the victim's process group (memhog makes its own session), or the
# process alone when it leads no group.
kill_victim() {
    if [[ "$(ps -o pgid= -p "$1" | tr -d ' ')" == "$1" ]]; then
        kill -KILL -- "-$1" 2>/dev/null || true
    else
        kill -KILL "$1" 2>/dev/null || true
    fi
}

# One dump and restore of the command's victim. Sets dump_ms, dump_total,
# restore_ms, restore_total and images (the directory, kept for baselines).
# $1: drop the page cache before the restore (1) or not (0).
dump_and_restore() {
    local drop="$1"
    shift
    local pid start
    if [[ "$1" == "$counter" ]]; then
        start_victim --log-arg "$@"
    else
        start_victim "$@"
    fi
    pid=$live
    images="$work/images"
    rm -rf "$images"
    # Every process of the tree (memhog leads its own process group): their
    # pids must be free again before the restore.
    local tree_pids
    tree_pids=$(ps -o pid= -g "$pid" 2>/dev/null || true)
    stamp start
    "$cryo" dump -t "$pid" -D "$images" --display-stats "${dump_flags[@]}" >"$work/dump.out" 2>"$work/dump.err" ||
        die "cryo dump of '$*' failed: $(cat "$work/dump.err")"
    ms_since_stamp dump_ms "$start"
    dump_total=$(awk '$1 == "total" { print $2 }' "$work/dump.out")
    dump_frozen=$(awk '$1 == "frozen" && $2 == "for" { print $3 }' "$work/dump.out")
    is_victim "$pid" && die "victim $pid still runs after cryo dump"
    live=""
    for member in $pid $tree_pids; do wait_gone "$member" || true; done
    # The plain read (the base) reads these page files after this restore,
    # when the VM host's own cache holds them; read them once here as well,
    # so that both start from the same state: out of this kernel's page
    # cache (dropped), in whatever the host keeps.
    ((drop)) && cat "$images"/pages-*.img >/dev/null
    ((drop)) && drop_caches
    stamp start
    "$cryo" restore -D "$images" -d --pidfile "$work/pid" --display-stats >"$work/restore.out" 2>"$work/restore.err" ||
        die "cryo restore of '$*' failed: $(cat "$work/restore.err")"
    ms_since_stamp restore_ms "$start"
    restore_total=$(awk '$1 == "total" { print $2 }' "$work/restore.out")
    local restored
    restored=$(cat "$work/pid" 2>/dev/null || true)
    rm -f "$work/pid"
    is_victim "$restored" || die "after cryo restore the pidfile holds '$restored', which is not a running victim"
    live=$restored
    stop_victim
}

ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (a == "-" || b == "-" || b == 0) print "-"; else printf "%.2f", a / b }'; }

# Medians of the last workload: d (dump wall), dt (dump total), f (frozen),
# r, rt.
measure() {
    local drop="$1"
    shift
    local ds="" dts="" fs="" rs="" rts=""
    for _ in $(seq "$runs"); do
        dump_and_restore "$drop" "$@"
        ds+=" $dump_ms"; dts+=" $dump_total"; fs+=" $dump_frozen"; rs+=" $restore_ms"; rts+=" $restore_total"
    done
    d=$(echo "$ds" | median); dt=$(echo "$dts" | median); f=$(echo "$fs" | median)
    r=$(echo "$rs" | median); rt=$(echo "$rts" | median)
}

dump_flags=()   # extra options of cryo dump for the current workload
declare -A unit_dump unit_restore   # tree1 / threads1 figures, for the per-unit notes
row() {   # workload dump total dump-base frozen restore total restore-base note
    printf "%-10s | %8s %8s %8s %6s %8s | %8s %8s %8s %6s | %s\n" "$1" "$2" "$3" "$4" "$(ratio "$2" "$4")" "$5" \
        "$6" "$7" "$8" "$(ratio "$6" "$8")" "$9"
}

echo "cryo dump/restore against plain I/O, in $base_dir ($(fs_type "$base_dir")), kernel $(uname -r), $(nproc) CPUs, median of $runs"
echo "ms: wall time of the command; 'stats' is cryo's own total (--display-stats); frozen: how long the dumped"
echo "tree was stopped (freeze to kill, --display-stats); base: see bench/README.md"
printf "%-10s | %8s %8s %8s %6s %8s | %8s %8s %8s %6s | %s\n" workload dump stats base ratio frozen restore stats base ratio note

for workload in $workloads; do
    case "$workload" in
        mem[0-9]*|cache[0-9]*)
            # memN: durable dump against a synced plain write, restore with a
            # cold page cache; cacheN: dump --no-sync against a plain write to
            # the page cache, restore from the page cache.
            size=${workload##*[a-z]}
            cached=0
            [[ "$workload" == cache* ]] && cached=1
            if ((size + 1024 + cached * size > available_mib)); then
                echo "$workload: skipped, needs about $((size + 1024 + cached * size)) MiB of free memory, $available_mib available"
                continue
            fi
            modes=(direct buffered)
            dump_flags=()
            ((cached)) && modes=(cache) && dump_flags=(--no-sync)
            ws="" rds=""
            ds="" dts="" fs="" rs="" rts=""
            for _ in $(seq "$runs"); do
                dump_and_restore $((1 - cached)) "$memhog" "$size"
                ds+=" $dump_ms"; dts+=" $dump_total"; fs+=" $dump_frozen"; rs+=" $restore_ms"; rts+=" $restore_total"
                pages="$images/$(ls -S "$images" | head -n 1)"
                best=""
                for mode in "${modes[@]}"; do
                    elapsed=$("$plainio" write "$work/baseline" "$size" "$mode")
                    rm -f "$work/baseline"
                    [[ -z "$best" || "$elapsed" -lt "$best" ]] && best=$elapsed
                done
                ws+=" $best"
                if ((cached)); then
                    cat "$pages" >/dev/null
                else
                    drop_caches
                fi
                rds+=" $("$plainio" read "$pages")"
                rm -rf "$images"
            done
            dump_flags=()
            d=$(echo "$ds" | median); dt=$(echo "$dts" | median); f=$(echo "$fs" | median)
            r=$(echo "$rs" | median); rt=$(echo "$rts" | median)
            if ((cached)); then
                note="base: plain write to / read from the page cache (dump --no-sync)"
            else
                note="base: plain write + fdatasync / read into fresh memory, cold cache"
            fi
            row "$workload" "$d" "$dt" "$(echo "$ws" | median)" "$f" "$r" "$rt" "$(echo "$rds" | median)" "$note"
            ;;
        sparse)
            measure 0 "$memhog" 256
            dense_d=$d dense_r=$r
            measure 0 "$memhog" 256 --reserve 1024 --untouched 64
            row sparse "$d" "$dt" "$dense_d" "$f" "$r" "$rt" "$dense_r" "base: the same 256 MiB without the 1 TiB + 64 GiB"
            ;;
        counter)
            measure 0 "$counter"
            row counter "$d" "$dt" - "$f" "$r" "$rt" - "target: well under 10 ms each"
            ;;
        tree[0-9]*|threads[0-9]*)
            n=${workload##*[a-z]}
            family=${workload%%[0-9]*}
            option=--children
            [[ "$family" == threads ]] && option=--threads
            measure 0 "$memhog" 0 "$option" "$n" --fds 16
            if ((n == 1)); then
                unit_dump[$family]=$d unit_restore[$family]=$r
                row "$workload" "$d" "$dt" - "$f" "$r" "$rt" - "the base of ${family}N"
            elif [[ -n "${unit_dump[$family]:-}" ]]; then
                note=$(awk -v d="$d" -v r="$r" -v d1="${unit_dump[$family]}" -v r1="${unit_restore[$family]}" -v n="$n" -v f="${family%s}" \
                    'BEGIN { printf "per extra %s: dump %.2f ms, restore %.2f ms", f == "tree" ? "process" : "thread", (d - d1) / (n - 1), (r - r1) / (n - 1) }')
                row "$workload" "$d" "$dt" "${unit_dump[$family]}" "$f" "$r" "$rt" "${unit_restore[$family]}" "$note"
            else
                row "$workload" "$d" "$dt" - "$f" "$r" "$rt" - "run ${family}1 first for the per-unit cost"
            fi
            ;;
        *) die "unknown workload '$workload'" ;;
    esac
done
