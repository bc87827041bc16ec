# shellcheck shell=bash
# Shared parts of the bench/*.sh scripts; each one sources it right after
# `set -euo pipefail`. It sets repo, build and cryo, the defaults runs=3 and
# base_dir, and defines the helpers below. A script lists the executables
# its victims run in `victim_exes` (only those are ever killed) and calls
# bench_work once its options are parsed.

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
build="${CRYO_BUILD_DIR:-$repo/build}"
# shellcheck disable=SC2034  # used by the scripts that source this
cryo="$build/src/cryo"
# shellcheck disable=SC2034
runs=3
base_dir="${TMPDIR:-/var/tmp}"
work=""
live=""   # pid of the victim (original or restored) running right now
victim_exes=()

die() { echo "bench: $*" >&2; exit 1; }

# Waits until FILE ($1) holds WORD ($2), for at most 20 s.
wait_for() {
    for _ in $(seq 2000); do
        grep -q "$2" "$1" 2>/dev/null && return 0
        sleep 0.01
    done
    die "timed out waiting for '$2' in $1: $(cat "$1" 2>/dev/null)"
}

# bench_parse USAGE SPEC... -- ARGS...: the command line. A SPEC is
# OPTION=VARIABLE (any value) or OPTION=#VARIABLE (a positive integer);
# --runs N and --dir DIR are always known, -h/--help prints USAGE. A wrong
# option or value prints USAGE on stderr and exits 2.
bench_parse() {
    local usage="$1" spec target
    shift
    local specs=("--runs=#runs" "--dir=base_dir")
    while [[ "$1" != -- ]]; do specs+=("$1"); shift; done
    shift
    while (($#)); do
        [[ "$1" == -h || "$1" == --help ]] && { echo "$usage"; exit 0; }
        target=""
        for spec in "${specs[@]}"; do [[ "${spec%%=*}" == "$1" ]] && target="${spec#*=}"; done
        [[ -n "$target" && $# -ge 2 ]] || { echo "$usage" >&2; exit 2; }
        if [[ "$target" == \#* ]]; then
            target="${target#\#}"
            [[ "$2" =~ ^[1-9][0-9]*$ ]] || { echo "$usage" >&2; exit 2; }
        fi
        printf -v "$target" '%s' "$2"
        shift 2
    done
}

# Fails unless every executable named exists.
bench_require() {
    local binary
    for binary in "$@"; do
        [[ -x "$binary" ]] || die "$binary is missing: build first with scripts/setup --no-demo"
    done
}

# Makes the temporary directory `work` (cryo-bench-NAME.* in base_dir) and
# installs the traps that call `cleanup` (a script may define its own).
bench_work() {
    [[ -d "$base_dir" ]] || die "--dir $base_dir is not a directory"
    work="$(mktemp -d "$base_dir/cryo-bench-$1.XXXXXX")"
    trap cleanup EXIT
    trap 'exit 130' INT TERM
}

# True when PID (> 1) runs one of victim_exes.
is_victim() {
    local pid="$1" exe known
    [[ "$pid" =~ ^[0-9]+$ ]] && ((pid > 1)) || return 1
    exe="$(readlink "/proc/$pid/exe" 2>/dev/null)" || return 1
    for known in "${victim_exes[@]}"; do
        [[ "$exe" == "$(readlink -f "$known")" ]] && return 0
    done
    return 1
}

# Until the PID is gone (reaped: the restore needs it free); 1 after 10 s.
wait_gone() {
    for _ in $(seq 1000); do
        [[ -d "/proc/$1" ]] || return 0
        sleep 0.01
    done
    return 1
}

# How the victim PID is killed; a script may define its own.
kill_victim() { kill -KILL "$1" 2>/dev/null || true; }

# Kills the `live` victim, if it runs one of victim_exes, and waits for it.
stop_victim() {
    local pid="$live"
    live=""
    is_victim "$pid" || return 0
    kill_victim "$pid"
    wait_gone "$pid" || true
}

# The live victim, the one a restore left in $work/pid, and $work.
cleanup() {
    stop_victim
    if [[ -n "$work" && -s "$work/pid" ]]; then
        live=$(cat "$work/pid")
        stop_victim
    fi
    [[ -z "$work" ]] || rm -rf "$work"
}

# start_victim [--log-arg] COMMAND...: starts COMMAND as a child of this
# shell (which reaps it, so its pid is free again for the restore), waits
# for READY in $work/victim.log and sets `live` to its pid. The log is
# COMMAND's output, or with --log-arg its last argument (test victims).
start_victim() {
    local log="$work/victim.log" log_arg=0
    [[ "$1" == --log-arg ]] && { log_arg=1; shift; }
    rm -f "$log"
    if ((log_arg)); then
        "$@" "$log" </dev/null >/dev/null 2>&1 &
    else
        "$@" </dev/null >"$log" 2>&1 &
    fi
    live=$!
    disown "$live"
    for _ in $(seq 6000); do
        grep -q READY "$log" 2>/dev/null && return 0
        [[ -d "/proc/$live" ]] || die "victim '$*' exited before it was ready: $(cat "$log" 2>/dev/null)"
        sleep 0.02
    done
    die "victim '$*' was not ready in time"
}

now_ns() { echo "${EPOCHREALTIME/./}000"; }
ms_since() { echo $(( ($(now_ns) - $1) / 1000000 )); }
# Wall-clock stamps that fork nothing (bash's EPOCHREALTIME, microseconds),
# for commands of a few milliseconds: `stamp start; cmd; ms_since_stamp ms
# "$start"` sets ms to the elapsed milliseconds with one decimal.
stamp() { printf -v "$1" '%s' "${EPOCHREALTIME/./}"; }
ms_since_stamp() {
    local us=$(( ${EPOCHREALTIME/./} - $2 ))
    printf -v "$1" '%d.%d' $((us / 1000)) $((us % 1000 / 100))
}
drop_caches() { sync; echo 3 2>/dev/null >/proc/sys/vm/drop_caches || true; }
# The median of numbers separated by blanks or lines ("-" for none).
median() { tr ' ' '\n' | grep -v '^$' | sort -n | awk '{ v[NR] = $1 } END { if (NR == 0) print "-"; else if (NR % 2) print v[(NR + 1) / 2]; else print (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }
# "filesystem type of DIR"
fs_type() { df -T "$1" | awk 'NR == 2 { print $2 }'; }
