#!/usr/bin/env bash
# Kill and resume, under mpirun: a rank killed with SIGKILL at a random moment,
# or the job asked to stop with SIGUSR1, then the same command with another
# number of ranks; the result must be bitwise the one of an uninterrupted run.
#   tests/test_resume.sh MPICKA MPIEXEC [FEATURES [ROUNDS]]
# ROUNDS "few" (the sanitizer build): one kill -9 round and one SIGUSR1 round
# instead of four and two; the rounds differ only in rank counts, which the
# sanitizers do not see differently.
# The launcher is $MPIEXEC when set (else the MPIEXEC argument), with the flags
# $MPIEXEC_FLAGS (default --allow-run-as-root --oversubscribe) and the rank
# count after $MPIEXEC_NUMPROC_FLAG (default -np).
# FEATURES per layer (default 4096): fewer for the sanitizer build, whose
# runs are several times slower and still last long enough to be killed.
set -euo pipefail
exe=$1
read -ra launcher <<< "${MPIEXEC:-$2}"
read -ra flags <<< "${MPIEXEC_FLAGS-"--allow-run-as-root --oversubscribe"}"
np_flag=${MPIEXEC_NUMPROC_FLAG:-"-np"}
features=${3:-4096}
kills="2,3 3,1 1,2 2,2" usr1s="3,2 1,3"
[ "${4:-}" = few ] && kills="2,3" usr1s="3,2"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cd "$work"
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OPENBLAS_NUM_THREADS=1
"$exe" synth a.h5 --n 12800 --layers 4 --features "$features" --seed 5 > /dev/null
cat > c.yaml <<'YAML'
x:
  file: a.h5
  layers: ["layer*"]
batch_size: 256
precision: float64
shuffle: true
checkpoint:
  every: 3
plot: false
output: out
YAML
launch() { "${launcher[@]}" "${flags[@]}" "$np_flag" "$1" "$exe" run c.yaml --quiet "${@:2}" 2>&1; }
# Open MPI 4.1's mpirun now and then exits 1 calling a rank that had finalized
# "exiting improperly" (a race in its run-time; mpicka never exits 1): that
# signature alone is run once more.
run() {
    local out status=0
    out=$(launch "$@") || status=$?
    if [ "$status" = 1 ] && grep -q "exiting improperly" <<< "$out"; then
        status=0
        out=$(launch "$@") || status=$?
    fi
    printf '%s\n' "$out"
    return "$status"
}
bits() { "$exe" show "$1/cka.h5" --format csv; }

run 1 --set output=ref > /dev/null
fail=0
pass=0
# The ranks under mpirun's process (pid): only this test's, never those of a
# test running beside it with the same command line.
ranks() {
    local child
    for child in $(pgrep -P "$1"); do
        [ "$(readlink "/proc/$child/exe" 2> /dev/null)" = "$(readlink -f "$exe")" ] && echo "$child"
        ranks "$child"
    done
    return 0
}
# Starts a run in the background and waits for its first checkpoint.
start() { # ranks, then options of the run
    rm -rf out
    "${launcher[@]}" "${flags[@]}" "$np_flag" "$1" "$exe" run c.yaml --quiet "${@:2}" > log 2>&1 &
    job=$! # mpirun itself, which forwards SIGUSR1 to the ranks
    for _ in $(seq 600); do
        [ -f out/checkpoint.h5 ] && return 0
        kill -0 "$job" 2> /dev/null || return 0
        sleep 0.01
    done
}
check() { # what, then the rank count to resume with
    local status=0
    run "$2" > resume.log 2>&1 || status=$?
    if [ "$status" != 0 ]; then
        echo "FAIL $1: the resumed run exited with $status"; cat resume.log; fail=$((fail + 1)); return
    fi
    if [ "$(bits out)" != "$(bits ref)" ]; then
        echo "FAIL $1: the result differs from the uninterrupted run"; fail=$((fail + 1)); return
    fi
    [ -f out/checkpoint.h5 ] && { echo "FAIL $1: checkpoint left after success"; fail=$((fail + 1)); return; }
    echo "ok $1 ($(grep -c 'resuming from' resume.log) resume)"; pass=$((pass + 1))
}

for pair in $kills; do
    set -- ${pair/,/ }
    start "$1"
    sleep "0.$((RANDOM % 4))"
    victim=$(ranks "$job" | shuf -n 1 || true)
    [ -n "$victim" ] && kill -9 "$victim"
    status=0; wait "$job" || status=$?
    check "kill -9 of a rank of $1 (exit $status), resumed on $2" "$2"
done

for pair in $usr1s; do
    set -- ${pair/,/ }
    start "$1"
    kill -USR1 "$job"
    status=0; wait "$job" || status=$?
    if [ "$status" != 75 ] || ! grep -q "stopped by signal" log; then
        echo "FAIL SIGUSR1 on $1 ranks: exit $status, expected 75"; cat log; fail=$((fail + 1)); continue
    fi
    run "$2" > resume.log 2>&1 || true
    grep -q "resuming from" resume.log || { echo "FAIL SIGUSR1: the rerun did not resume"; cat resume.log; fail=$((fail + 1)); continue; }
    [ "$(bits out)" = "$(bits ref)" ] && { echo "ok SIGUSR1 on $1 ranks, resumed on $2"; pass=$((pass + 1)); } \
        || { echo "FAIL SIGUSR1 on $1: result differs"; fail=$((fail + 1)); }
done

# The other estimators' sums (jackknife groups, permutations, exact feature
# sums) survive a stop and a resume on another rank count, every matrix bitwise.
matrices() { for m in cka stderr pvalue; do "$exe" show "$1/cka.h5" --format csv --matrix "$m" 2> /dev/null || true; done; }
for opts in "--set kernel=rbf --set estimator=hsic0 --set permutations=3 --set jackknife=7" \
            "--set estimator=exact --set batch_size=1024 --set x.layers=[layer1]"; do
    # shellcheck disable=SC2086 # the options are words
    run 1 $opts --set output=ref2 --force > /dev/null # ref2 holds the other opts' result
    # shellcheck disable=SC2086
    start 3 $opts
    kill -USR1 "$job"
    status=0; wait "$job" || status=$?
    # shellcheck disable=SC2086
    run 2 $opts > resume.log 2>&1 || status=98
    if [ "$status" = 75 ] && grep -q "resuming from" resume.log && [ "$(matrices out)" = "$(matrices ref2)" ]; then
        echo "ok $opts: stopped on 3 ranks, resumed on 2, same bits"; pass=$((pass + 1))
    else
        echo "FAIL $opts (exit $status)"; cat log resume.log; fail=$((fail + 1))
    fi
done

# A checkpoint from another configuration is refused, and --restart discards it.
start 2
kill -USR1 "$job"; wait "$job" || true
if run 2 --set seed=9 > other.log 2>&1; then echo "FAIL: a foreign checkpoint was resumed"; fail=$((fail + 1));
elif grep -q "was made by another configuration" other.log; then echo "ok foreign checkpoint refused"; pass=$((pass + 1));
else echo "FAIL: wrong message"; cat other.log; fail=$((fail + 1)); fi
run 2 --set seed=9 --restart > /dev/null && [ ! -f out/checkpoint.h5 ] && { echo "ok --restart"; pass=$((pass + 1)); } \
    || { echo "FAIL --restart"; fail=$((fail + 1)); }

# The requeueing batch script, with Slurm simulated: srun is mpirun on 2 ranks,
# scontrol notes the requeue. SIGUSR1 to the script, as `--signal=B:USR1` sends it.
mkdir -p bin
printf '#!/bin/bash\nwhile [[ $1 == -* ]]; do shift; done\nexec %s 2 "$@"\n' \
    "$(printf '%q ' "${launcher[@]}" "${flags[@]}" "$np_flag")" > bin/srun
printf '#!/bin/bash\necho "$@" >> requeued\n' > bin/scontrol
chmod +x bin/srun bin/scontrol
job_script=$(dirname "$0")/../jobs/mpicka-requeue.sbatch
case "$job_script" in /*) ;; *) job_script=$OLDPWD/$job_script ;; esac
# Runs the script as Slurm job $1 (its output in $2), sends it signal $3 once
# it has written a checkpoint, and sets status to its exit status.
signal_job() {
    rm -rf out requeued
    PATH=$PWD/bin:$PATH MPICKA=$exe SLURM_JOB_ID=$1 bash "$job_script" c.yaml --quiet > "$2" 2>&1 &
    local script_pid=$!
    for _ in $(seq 600); do [ -f out/checkpoint.h5 ] && break; sleep 0.01; done
    kill -"$3" "$script_pid"
    status=0; wait "$script_pid" || status=$?
}
signal_job 42 job1.log USR1
PATH=$PWD/bin:$PATH MPICKA=$exe SLURM_JOB_ID=42 bash "$job_script" c.yaml --quiet > job2.log 2>&1 || status=99
if [ "$status" = 75 ] && grep -q "requeue 42" requeued && grep -q "resuming from" job2.log \
    && [ "$(bits out)" = "$(bits ref)" ] && "$exe" show out/cka.h5 --format json | grep -q '"segments": 2,' \
    && grep -Eq "\(.* s over 2 segments\)" job2.log; then
    echo "ok batch script: stopped on SIGUSR1, requeued, resumed to the same bits, time over 2 segments"
    pass=$((pass + 1))
else
    echo "FAIL batch script (exit $status)"; cat job1.log job2.log; fail=$((fail + 1))
fi

# SIGTERM (a scancel) to the script: a checkpoint, but no requeue.
signal_job 43 job3.log TERM
# (mpirun, standing in for srun, ends with 1 on SIGTERM, not 75, and may let the
# ranks finish first: the work is kept, as a checkpoint or the result, and the
# script must not requeue either way.)
if [ "$status" != 0 ] && [ ! -f requeued ] && { { [ -f out/checkpoint.h5 ] && grep -q "stopped by signal 15" job3.log; } \
    || { [ -f out/cka.h5 ] && [ "$(bits out)" = "$(bits ref)" ]; }; }; then
    echo "ok batch script: stopped on SIGTERM with a checkpoint, not requeued"; pass=$((pass + 1))
else
    echo "FAIL batch script on SIGTERM (exit $status)"; cat job3.log; fail=$((fail + 1))
fi

echo "$pass passed, $fail failed"
[ "$fail" = 0 ]
