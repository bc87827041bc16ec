#!/usr/bin/env bash
# Page-server throughput against a plain TCP copy of the same bytes, between
# two network namespaces joined by a veth pair (standing for two hosts).
# See bench/README.md.
#
#     sudo bench/page_server.sh [--mib N] [--runs N] [--dir DIR]
#
# For N MiB (default 1024) of random memory (cryo-bench-memhog):
#   tcp copy      cryo-bench-tcpcopy: N MiB sent from memory in one
#                 namespace, written and fdatasync()ed into a file in the
#                 other (connect to answer);
#   page server   `cryo dump --leave-running --page-server` run in the client
#                 namespace, `cryo page-server --once` in the server one
#                 (connect to committed manifest: every file written, checked
#                 and fsynced there);
#   ... --key     the same with a pre-shared key (every frame HMAC-SHA256).
# Times are wall milliseconds, the median of --runs (default 3); MiB/s is N
# over that time; "server CPU ms" the user + system time of the page
# server (median), which the shared machine's load disturbs less. The
# namespaces, the victim and the temporary directory are removed on exit,
# also on failure or Ctrl-C.
set -euo pipefail

# shellcheck source=bench/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
memhog="$build/bench/cryo-bench-memhog"
tcpcopy="$build/bench/cryo-bench-tcpcopy"
victim_exes=("$memhog")
mib=1024

bench_parse "usage: bench/page_server.sh [--mib N] [--runs N] [--dir DIR]" --mib=#mib -- "$@"
bench_require "$cryo" "$memhog" "$tcpcopy"
command -v ip >/dev/null || die "ip (iproute2) is missing"

server_ns="cryo-bench-ps-$$-s"
address=10.232.0.1
port=7412

cleanup() {
    stop_victim
    # Deleting a namespace ends the servers still listening in it only
    # once they exit; they are started with --once or exit after one copy.
    ip netns del "$server_ns" 2>/dev/null || true
    [[ -z "$work" ]] || rm -rf "$work"
}
bench_work ps
head -c 32 /dev/urandom >"$work/key"

ip netns add "$server_ns"
# The client side is this (the root) network namespace: cryo dumps only
# processes in its own namespaces, and the memory hog runs here.
ip link add "cbps$$c" type veth peer name "cbps$$s" netns "$server_ns"
ip -n "$server_ns" addr add "$address/24" dev "cbps$$s"
ip addr add 10.232.0.2/24 dev "cbps$$c"
ip -n "$server_ns" link set "cbps$$s" up
ip link set "cbps$$c" up

tcp_copy_ms() {
    rm -f "$work/copy" "$work/receiver.out"
    ip netns exec "$server_ns" "$tcpcopy" receive "$address" "$port" "$work/copy" >"$work/receiver.out" 2>&1 &
    local receiver=$!
    wait_for "$work/receiver.out" listening
    "$tcpcopy" send "$address" "$port" "$mib" || die "tcp copy failed"
    wait "$receiver" || die "tcp receiver failed: $(cat "$work/receiver.out")"
}

# Echoes the wall ms of one dump; appends the CPU ms (user + system) the
# page server used to $work/server.cpu.
page_server_ms() {
    rm -rf "$work/images" "$work/server.out" "$work/server.times"
    # `times` in the subshell: what its children (the server) used.
    (
        ip netns exec "$server_ns" "$cryo" page-server -D "$work/images" --address "$address" --port "$port" \
            --once "$@" >"$work/server.out" 2>&1
        status=$?
        times >"$work/server.times"
        exit "$status"
    ) &
    local server=$!
    wait_for "$work/server.out" listening
    local start
    start=$(now_ns)
    "$cryo" dump -t "$live" --leave-running --page-server --address "$address" \
        --port "$port" "$@" 2>"$work/dump.err" || die "cryo dump: $(cat "$work/dump.err")"
    echo $(( ($(now_ns) - start) / 1000000 ))
    wait "$server" || die "page server: $(cat "$work/server.out")"
    awk 'function ms(t, part) { split(t, part, /[ms]/); return (part[1] * 60 + part[2]) * 1000 }
         NR == 2 { printf "%d\n", ms($1) + ms($2) }' "$work/server.times" >>"$work/server.cpu"
}

start_victim "$memhog" "$mib"

echo "page server vs plain TCP over a veth pair, $mib MiB, kernel $(uname -r), $(nproc) CPUs, median of $runs"
echo "files written in $base_dir ($(fs_type "$base_dir")), load average $(cut -d' ' -f1-3 /proc/loadavg) at the start"
printf "%-22s | %8s | %8s | %14s\n" "" "ms" "MiB/s" "server CPU ms"
report() {
    awk -v name="$1" -v ms="$2" -v mib="$mib" -v cpu="$3" \
        'BEGIN { printf "%-22s | %8s | %8.0f | %14s\n", name, ms, mib * 1000 / ms, cpu }'
}
times=""
for _ in $(seq "$runs"); do times+=" $(tcp_copy_ms)"; done
report "tcp copy" "$(echo "$times" | median)" "-"
for key in "" --key; do
    times=""
    rm -f "$work/server.cpu"
    for _ in $(seq "$runs"); do times+=" $(page_server_ms ${key:+"$key" "$work/key"})"; done
    report "page server${key:+ $key}" "$(echo "$times" | median)" "$(median <"$work/server.cpu")"
done
echo "load average $(cut -d' ' -f1-3 /proc/loadavg) at the end"
