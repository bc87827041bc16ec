# shellcheck shell=bash
# shellcheck disable=SC2154  # cryo, memhog, runs, sizes, work: set by bench/lazy.sh and bench/lib.sh
# The remote modes of bench/lazy.sh, which sources this once its options are
# parsed and $work exists. The other host is a network namespace joined to
# this one by a veth pair; the namespace, the servers and the victims are
# removed on exit, also on failure or Ctrl-C.
#
# --mode remote: for each size, the median of --runs of
#   transfer + restore   `cryo dump --page-server` of a running memhog to
#                        `cryo page-server --once` on the other host, then
#                        `cryo restore -d` there: until the tree runs with
#                        every page;
#   remote lazy          `cryo restore -d --lazy-pages --page-server` here of
#                        a checkpoint that `cryo page-server --serve` serves
#                        on the other host: until restore returns (the tree
#                        runs, its memory still arriving);
#   remote lazy full     the same until the lazy-pages server is done (every
#                        page fetched over the network).
# --mode migrate: for each size, the median of --runs of `cryo migrate` of a
#   running memhog to `cryo page-server --restore` on the other host (in a
#   PID namespace of its own: the frozen source keeps its pids), without
#   and with --lazy: the frozen time of the final dump (until the source
#   is killed: the destination restored it, or with --lazy had every page)
#   and, with --lazy, the time to running on the destination and what the
#   final dump wrote on the source (metadata and file data: the pages stay
#   in the frozen tree, which serves them).

server_ns="cryo-bench-lz-$$-s"
address=10.233.0.1
port=7414
destination=""   # the destination's `unshare --kill-child` (migrate mode)

cleanup() {
    stop_victim
    if [[ -n "$work" && -s "$work/pid" ]]; then
        live=$(cat "$work/pid")
        stop_victim
    fi
    stop_destination
    ip netns del "$server_ns" 2>/dev/null || true
    [[ -z "$work" ]] || rm -rf "$work"
}

# Killing `unshare --kill-child` kills the init of the destination's PID
# namespace, and with it everything restored there.
stop_destination() {
    [[ -n "$destination" ]] || return 0
    kill -KILL "$destination" 2>/dev/null || true
    wait "$destination" 2>/dev/null || true
    destination=""
}

command -v ip >/dev/null || die "ip (iproute2) is missing"
ip netns add "$server_ns"
ip link add "cblz$$c" type veth peer name "cblz$$s" netns "$server_ns"
ip -n "$server_ns" addr add "$address/24" dev "cblz$$s"
ip addr add 10.233.0.2/24 dev "cblz$$c"
ip -n "$server_ns" link set "cblz$$s" up
ip -n "$server_ns" link set lo up
ip link set "cblz$$c" up

# The lazy-pages server whose pid file is $1, once it is done.
wait_lazy_server() {
    local pid
    pid="$(cat "$1" 2>/dev/null)" || return 0
    for _ in $(seq 24000); do
        [[ "$(cat "/proc/$pid/comm" 2>/dev/null)" == "cryo-lazy-pages" ]] || return 0
        [[ "$(awk '{ print $3 }' "/proc/$pid/stat" 2>/dev/null)" != "Z" ]] || return 0
        sleep 0.005
    done
    die "the lazy-pages server $pid did not finish in 120 s"
}

# One dump sent to a page server over there and restored there; prints ms.
transfer_and_restore_once() {
    local mib="$1" start server
    rm -rf "$work/received" "$work/server.out" "$work/pid"
    start_victim "$memhog" "$mib"
    ip netns exec "$server_ns" "$cryo" page-server -D "$work/received" --address "$address" --port "$port" --once \
        >"$work/server.out" 2>&1 &
    server=$!
    wait_for "$work/server.out" listening
    start=$(now_ns)
    "$cryo" dump -t "$live" --page-server --address "$address" --port "$port" 2>"$work/dump.err" \
        || die "cryo dump --page-server: $(cat "$work/dump.err")"
    wait "$server" || die "page server: $(cat "$work/server.out")"
    wait_gone "$live" || die "the dumped victim is still there"
    live=""
    ip netns exec "$server_ns" "$cryo" restore -D "$work/received" -d --pidfile "$work/pid" 2>"$work/restore.err" \
        || die "restore: $(cat "$work/restore.err")"
    ms_since "$start"
    live="$(cat "$work/pid")"
    is_victim "$live" || die "the restored process $live is not the victim"
    stop_victim
}

# One lazy restore here from `page-server --serve` over there; prints
# "to-running-ms all-pages-ms".
remote_lazy_once() {
    local start running server
    rm -rf "$work/fetched" "$work/serve.out" "$work/pid"
    ip netns exec "$server_ns" "$cryo" page-server -D "$work/images" --serve --once --address "$address" \
        --port "$port" >"$work/serve.out" 2>&1 &
    server=$!
    wait_for "$work/serve.out" listening
    start=$(now_ns)
    "$cryo" restore -D "$work/fetched" -d --pidfile "$work/pid" --lazy-pages --page-server --address "$address" \
        --port "$port" 2>"$work/restore.err" || die "remote lazy restore: $(cat "$work/restore.err")"
    running=$(ms_since "$start")
    live="$(cat "$work/pid")"
    is_victim "$live" || die "the restored process $live is not the victim"
    wait_lazy_server "$work/fetched/lazy-pages.pid"
    echo "$running $(ms_since "$start")"
    wait "$server" || die "page server --serve: $(cat "$work/serve.out")"
    stop_victim
}

remote_mode() {
    echo "remote lazy restore over a veth pair, kernel $(uname -r), $(nproc) CPUs, median of $runs"
    printf "%-8s %22s %20s %24s\n" "MiB" "transfer+restore (ms)" "remote lazy (ms)" "remote lazy full (ms)"
    local mib
    for mib in $sizes; do
        : >"$work/full"
        for ((run = 0; run < runs; run++)); do transfer_and_restore_once "$mib" >>"$work/full"; done
        rm -rf "$work/images" "$work/received"
        start_victim "$memhog" "$mib"
        "$cryo" dump -t "$live" -D "$work/images" >/dev/null || die "dump of $mib MiB failed"
        wait_gone "$live" || die "the dumped victim is still there"
        live=""
        : >"$work/lazy"
        for ((run = 0; run < runs; run++)); do remote_lazy_once >>"$work/lazy"; done
        printf "%-8s %22s %20s %24s\n" "$mib" "$(median <"$work/full")" "$(awk '{ print $1 }' "$work/lazy" | median)" \
            "$(awk '{ print $2 }' "$work/lazy" | median)"
    done
}

# One migration of a memhog of $1 MiB to the other host, with the options
# $2...; its report goes to $work/migrate.out.
migrate_once() {
    local mib="$1"
    shift
    rm -rf "$work/destination" "$work/destination.out"
    start_victim "$memhog" "$mib"
    ip netns exec "$server_ns" unshare --pid --kill-child --mount-proc sh -c '"$@"; exec sleep 3600' sh \
        "$cryo" page-server -D "$work/destination" --address "$address" --port "$port" --restore \
        >"$work/destination.out" 2>&1 &
    destination=$!
    wait_for "$work/destination.out" listening
    "$cryo" migrate -t "$live" --address "$address" --port "$port" --work-dir "$work" "$@" >"$work/migrate.out" \
        2>"$work/migrate.err" \
        || die "cryo migrate $*: $(cat "$work/migrate.err")"
    wait_gone "$live" || die "the migrated source is still there"
    live=""
    stop_destination
}

# The number after "LABEL" in a migrate report.
report_ms() { awk -v label="$1" 'index($0, label) == 1 { print $(NF - 1) }'; }

# What the final dump of a --lazy migrate report wrote, in MiB.
report_written_mib() {
    awk 'index($0, "checkpoint (final dump):") == 1 { printf "%.1f\n", $(NF - 8) / 1024 + $(NF - 4) }'
}

migrate_mode() {
    echo "cryo migrate over a veth pair, kernel $(uname -r), $(nproc) CPUs, median of $runs"
    printf "%-8s %24s %24s %26s %24s\n" "MiB" "migrate frozen (ms)" "--lazy to running (ms)" "--lazy frozen (ms)" \
        "--lazy written (MiB)"
    local mib frozen running lazy_frozen written
    for mib in $sizes; do
        frozen="" running="" lazy_frozen="" written=""
        for ((run = 0; run < runs; run++)); do
            migrate_once "$mib"
            frozen+=" $(report_ms "frozen time" <"$work/migrate.out")"
            migrate_once "$mib" --lazy
            running+=" $(report_ms "time to running" <"$work/migrate.out")"
            lazy_frozen+=" $(report_ms "frozen time" <"$work/migrate.out")"
            written+=" $(report_written_mib <"$work/migrate.out")"
        done
        printf "%-8s %24s %24s %26s %24s\n" "$mib" "$(echo "$frozen" | median)" "$(echo "$running" | median)" \
            "$(echo "$lazy_frozen" | median)" "$(echo "$written" | median)"
    done
}
