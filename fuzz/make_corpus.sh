#!/usr/bin/env bash
# fuzz/make_corpus.sh BUILD BUILD_FUZZ CORPUS: the seed corpus of the fuzz
# targets, from real checkpoints. Each victim of the end-to-end tests listed
# below (BUILD/tests/victims/victim_NAME, from the normal build) is started,
# checkpointed with BUILD/src/cryo dump (which ends it), and the checkpoint
# handed to BUILD_FUZZ/fuzz/cryo-fuzz-seed, which puts each file into the
# corpus of the matching target: CORPUS/<target>/<victim>-<file>. Needs root
# (cryo dump does). A victim that fails to start or to dump is skipped with a
# note; the script fails only if no checkpoint at all could be made.
set -euo pipefail

if [[ $# -ne 3 ]]; then
    echo "usage: fuzz/make_corpus.sh BUILD BUILD_FUZZ CORPUS" >&2
    exit 2
fi
build="$1"
seed_tool="$2/fuzz/cryo-fuzz-seed"
corpus="$3"
cryo="$build/src/cryo"
victims="$build/tests/victims"
# A tree with children and a zombie, threads, pipes and a FIFO, unix
# sockets, memfds, regular files, pidfds, epoll, timers, signals.
names=(tree threads pipes unix memfd files fds_pidfd epoll fds_timers signals counter)

for tool in "$cryo" "$seed_tool"; do
    [[ -x "$tool" ]] || { echo "make_corpus: $tool is missing (build first)" >&2; exit 1; }
done

work="$(mktemp -d "${TMPDIR:-/tmp}/cryo-corpus.XXXXXX")"
victim_pid=""
cleanup() {
    # Only the victim this script started, by its pid, if it still runs.
    if [[ -n "$victim_pid" ]] && kill -0 "$victim_pid" 2>/dev/null; then
        { kill -KILL "$victim_pid"; wait "$victim_pid"; } 2>/dev/null || true
    fi
    rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

mkdir -p "$corpus"
made=0
for name in "${names[@]}"; do
    victim="$victims/victim_$name"
    if [[ ! -x "$victim" ]]; then
        echo "make_corpus: $victim is missing, skipped" >&2
        continue
    fi
    log="$work/$name.log"
    images="$work/$name.images"
    "$victim" "$log" </dev/null >/dev/null 2>&1 &
    victim_pid=$!
    for _ in $(seq 200); do
        grep -q '^READY' "$log" 2>/dev/null && break
        sleep 0.1
    done
    if ! grep -q '^READY' "$log" 2>/dev/null; then
        echo "make_corpus: victim_$name did not get ready, skipped" >&2
        { kill -KILL "$victim_pid"; wait "$victim_pid"; } 2>/dev/null || true
        victim_pid=""
        continue
    fi
    # The dump ends the victim with SIGKILL: bash's note about it is not
    # news (hence stderr of this block to /dev/null).
    {
        if ! "$cryo" dump -t "$victim_pid" -D "$images" >"$work/$name.dump" 2>&1; then
            kill -KILL "$victim_pid" 2>/dev/null || true
        fi
        wait "$victim_pid" || true
    } 2>/dev/null
    [[ -f "$images/manifest.img" ]] ||
        echo "make_corpus: cryo dump of victim_$name failed, skipped: $(tail -1 "$work/$name.dump")" >&2
    victim_pid=""
    [[ -f "$images/manifest.img" ]] || continue
    "$seed_tool" "$images" "$corpus" "$name"
    made=$((made + 1))
done
if ((made == 0)); then
    echo "make_corpus: no checkpoint could be made" >&2
    exit 1
fi
echo "make_corpus: seeds from $made checkpoints in $corpus"
