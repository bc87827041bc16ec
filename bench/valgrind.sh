#!/usr/bin/env bash
# cryo under valgrind's memcheck (--leak-check=full --track-fds=yes) on a
# real checkpoint of the stress_mix test victim (threads, children, pipes,
# sockets): `cryo show` (text and JSON), `decode`, `encode` (into a copy),
# `mem --search`, `diff` and `check`. Prints memcheck's error summary, leak
# summary and the descriptors open at exit for each, and exits non-zero if
# memcheck found an error or a definite or indirect leak.
#
#     sudo bench/valgrind.sh [--keep]      # --keep: leave the logs in the temporary directory
#
# `cryo dump` and `cryo restore` themselves cannot run under Debian 12's
# valgrind (3.19): it does not know clone3 and pidfd_open (both give
# ENOSYS under it; clone3 with set_tid is how restore recreates PIDs, and
# dump opens a pidfd for every process), and it hides the CPU's AVX-512
# from CPUID. Those two commands are checked by the sanitizer build instead
# (scripts/sanitize: AddressSanitizer with LeakSanitizer, and UBSan). The
# script still runs them, without valgrind, to make the checkpoint and to
# check that the restored victim passes.
#
# Needs valgrind (Debian package `valgrind`) and the packages of
# scripts/setup. memcheck must see cryo's malloc, which a static program
# keeps to itself: the script builds a dynamically linked cryo of its own
# in build-valgrind/ (-DCRYO_STATIC_BINARY=OFF; CRYO_BUILD_DIR names
# another such build).
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
build="${CRYO_BUILD_DIR:-$repo/build-valgrind}"
cryo="$build/src/cryo"
victim="$build/tests/victims/victim_stress_mix"
keep=0
[[ "${1:-}" == "--keep" ]] && keep=1
die() { echo "valgrind.sh: $*" >&2; exit 1; }
command -v valgrind >/dev/null || die "valgrind is missing: apt-get install valgrind"
if [[ -z "${CRYO_BUILD_DIR:-}" ]]; then
    generator=(-G Ninja)
    [[ -f "$build/CMakeCache.txt" ]] && generator=()
    cmake -S "$repo" -B "$build" "${generator[@]}" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DCRYO_STATIC_BINARY=OFF >/dev/null
    cmake --build "$build" -j2 --target cryo victim_stress_mix >/dev/null
fi
[[ -x "$cryo" && -x "$victim" ]] || die "no cryo or victim_stress_mix in $build"
readelf -d "$cryo" | grep -q NEEDED || die "$cryo is statically linked: memcheck cannot see its malloc"

dir="$(mktemp -d "${TMPDIR:-/var/tmp}/cryo-valgrind.XXXXXX")"
victim_pid=""
# Kills what this script started and is still there: the victim, or the
# restored tree (the pids of the checkpoint's core-PID.img), one pid at a
# time, never <= 1, and only a process that runs the victim's binary.
cleanup() {
    local pids=()
    [[ -n "$victim_pid" ]] && pids+=("$victim_pid")
    for core in "$dir"/images/core-*.img; do
        [[ -e "$core" ]] && pids+=("$(basename "$core" .img | cut -d- -f2)")
    done
    for pid in "${pids[@]}"; do
        if ((pid > 1)) && { tr '\0' ' ' <"/proc/$pid/cmdline"; } 2>/dev/null | grep -q victim_stress_mix; then
            kill -KILL "$pid" 2>/dev/null || true
        fi
    done
    if ((keep)); then echo "logs kept in $dir"; else rm -rf "$dir"; fi
}
trap cleanup EXIT

wait_for_line() {   # WORD COUNT: until the victim's log holds COUNT lines starting with WORD
    for _ in $(seq 600); do
        (($(grep -c "^$1" "$dir/victim.log" || true) >= $2)) && return 0
        sleep 0.1
    done
    die "the victim never said $1 (log: $(tail -3 "$dir/victim.log"))"
}

memcheck=(valgrind --tool=memcheck --leak-check=full --show-leak-kinds=definite,indirect,possible
          --errors-for-leak-kinds=definite,indirect --track-fds=yes --error-exitcode=99 --num-callers=30)
status=0
# NAME LOG EXIT: memcheck's verdict on the cryo process itself (the first
# pid of the log; children that cryo forks, e.g. check's probes, report
# there too). Descriptors inherited from this script are not cryo's.
summarise() {
    local main
    main="$(head -1 "$2" | grep -o '^==[0-9]*==')"
    echo "== cryo $1 under memcheck: exit $3"
    grep "^$main" "$2" | grep -E "ERROR SUMMARY|(definitely|indirectly|possibly) lost:|still reachable:|All heap blocks" \
        | sed 's/^==[0-9]*== */   /'
    local opened
    opened="$(grep "^$main" "$2" | awk '/Open file descriptor/ { fd = $0; next }
        fd != "" { if ($0 !~ /inherited from parent/) print fd; fd = "" }' | sed 's/^==[0-9]*== */   /')"
    if [[ -n "$opened" ]]; then
        echo "   descriptors cryo opened and left open at exit:"
        echo "$opened"
        status=1
    else
        echo "   descriptors cryo opened and left open at exit: none"
    fi
    (($3 == 0)) || status=1
}

"$victim" "$dir/victim.log" </dev/null >/dev/null 2>&1 &
victim_pid=$!
wait_for_line READY 1
"$cryo" dump -t "$victim_pid" -D "$dir/images" -o "$dir/dump.log" || die "the dump failed: $(tail -3 "$dir/dump.log")"
{ wait "$victim_pid"; } 2>/dev/null || true
victim_pid=""
cp -a "$dir/images" "$dir/copy"

under_memcheck() {   # NAME ARGS...: one cryo command under memcheck
    local name="$1"
    shift
    set +e
    "${memcheck[@]}" --log-file="$dir/$name.valgrind" "$cryo" "$@" >"$dir/$name.out" 2>&1 </dev/null
    local exit_code=$?
    set -e
    summarise "$name" "$dir/$name.valgrind" "$exit_code"
}
under_memcheck show show "$dir/images"
under_memcheck show-json show "$dir/images" --format json
under_memcheck decode decode -D "$dir/images" -o "$dir/images.json"
under_memcheck encode encode -i "$dir/images.json" -D "$dir/copy"
under_memcheck mem mem -D "$dir/images" --search READY
under_memcheck diff diff "$dir/images" "$dir/copy"
# check probes clone3 and pidfds, which valgrind lacks: its NO lines make it
# exit 1, so only memcheck's own verdict (exit 99) counts here.
set +e
"${memcheck[@]}" --log-file="$dir/check.valgrind" "$cryo" check >"$dir/check.out" 2>&1 </dev/null
check_exit=$?
set -e
summarise check "$dir/check.valgrind" "$((check_exit == 99 ? 99 : 0))"

"$cryo" restore -D "$dir/images" -d --pidfile "$dir/pid" -o "$dir/restore.log" </dev/null >/dev/null 2>&1 \
    || die "the restore failed: $(tail -3 "$dir/restore.log")"
# The restored victim checks itself, then ends (it is no child of ours).
restored="$(cat "$dir/pid")"
kill -USR2 "$restored"
wait_for_line CHECK 1
kill -USR1 "$restored"
for _ in $(seq 300); do [[ -d "/proc/$restored" ]] || break; sleep 0.1; done
grep -q '^PASS' "$dir/victim.log" || { echo "the restored victim failed:"; grep FAIL "$dir/victim.log"; status=1; }
echo "== restored victim: $(grep -E '^(CHECK|PASS|FAIL)' "$dir/victim.log" | tr '\n' ' ')"
exit "$status"
