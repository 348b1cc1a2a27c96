# Sourced by the Slurm tests (tests/test_slurm.sh, tests/slurm/test_nodes.sh)
# after they set `cluster` (tests/slurm/cluster.sh) and `test_limit` (seconds):
# a work folder (the current folder from here on), removed on exit after the
# cluster is stopped (KEEP=1 keeps it); the test's own time limit, $LIMIT or
# $test_limit, under CTest's, since a test killed from outside could not stop the
# daemons, which are no children of it; and the helpers both tests use.
test_limit=${LIMIT:-$test_limit}
work=$(mktemp -d)
begin=$(date +%s)
cleanup() {
    kill "$watchdog" 2> /dev/null
    "$cluster" stop "$work/cluster"
    [ "${KEEP:-0}" = 1 ] && echo "kept $work" || rm -rf "$work"
}
trap cleanup EXIT
trap 'echo "FAIL: stopped (signal, or over $test_limit s)"; exit 1' INT TERM
(
    sleep "$test_limit" &
    nap=$!
    trap 'kill "$nap"; exit 0' TERM
    wait "$nap" && kill -TERM $$
) > /dev/null 2>&1 &
watchdog=$!
cd "$work" || exit 1

fail=0
pass=0
ok() { echo "ok $1"; pass=$((pass + 1)); }
bad() { echo "FAIL $1"; fail=$((fail + 1)); for f in "${@:2}"; do [ -f "$f" ] && { echo "--- $f"; cat "$f"; }; done; }
field() { scontrol -o show job "$1" 2> /dev/null | tr ' ' '\n' | sed -n "s/^$2=//p" | head -n 1; }
submit() { sbatch --parsable "$@" | cut -d';' -f1; }
# Waits until job $1 is in a state matching $2 (an ERE), at most $3 seconds;
# fails at once in another final state.
wait_state() {
    local s
    [ -n "$1" ] || { echo "  no job (its submission failed)"; return 1; }
    for _ in $(seq $(($3 * 5))); do
        s=$(field "$1" JobState)
        [[ $s =~ ^($2)$ ]] && return 0
        [[ $s =~ ^(COMPLETED|FAILED|CANCELLED|TIMEOUT|NODE_FAIL|OUT_OF_MEMORY|BOOT_FAIL|DEADLINE)$ ]] && break
        sleep 0.2
    done
    echo "  job $1: state ${s:-unknown}, waited for $2 (at most $3 s)"
    return 1
}
# Waits until folder $1 holds a checkpoint (job $2 running), at most 60 s.
wait_checkpoint() {
    for _ in $(seq 3000); do
        [ -f "$1/checkpoint.h5" ] && return 0
        [[ $(field "$2" JobState) =~ ^(PENDING|RUNNING|CONFIGURING)$ ]] || return 1
        sleep 0.02
    done
    return 1
}
# Waits until job $1 is back in the queue after a start, at most 60 s.
requeued() {
    for _ in $(seq 300); do
        [ "$(field "$1" Restarts)" -ge 1 ] 2> /dev/null && return 0
        sleep 0.2
    done
    echo "  job $1: not requeued after 60 s: $(scontrol -o show job "$1" | grep -o 'JobState=[^ ]*\|Reason=[^ ]*\|StartTime=[^ ]*')"
    return 1
}
