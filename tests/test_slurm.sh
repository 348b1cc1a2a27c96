#!/usr/bin/env bash
# The shipped job scripts, unedited, on a real single-node Slurm cluster
# (tests/slurm/cluster.sh; resources overridden on the sbatch command line):
#   - jobs/mpicka.sbatch on 2 ranks;
#   - jobs/mpicka-requeue.sbatch stopped by a real time-limit warning
#     (--time=1 --signal=B:USR1@30), requeued and resumed to the bits of the
#     uninterrupted run;
#   - the same stopped on purpose with `scancel --signal=USR1 --batch`: requeued;
#   - a plain `scancel`: CANCELLED for good, checkpoint kept, a new submission resumes;
#   - jobs/mpicka-sweep.sbatch as a 3-task array, gathered to a CSV of 3 rows.
# Fails, saying why, when Slurm cannot start. Run as root (CI is).
#   tests/test_slurm.sh MPICKA
set -uo pipefail
exe=$(cd "$(dirname "$1")" && pwd)/$(basename "$1")
here=$(cd "$(dirname "$0")" && pwd)
jobs=$here/../jobs
cluster=$here/slurm/cluster.sh
test_limit=360
. "$here/slurm/lib.sh"

"$cluster" start "$work/cluster" || { echo "FAIL: the Slurm mini-cluster did not start (see above)"; exit 1; }
. "$work/cluster/env"
export MPICKA=$exe OPENBLAS_NUM_THREADS=1
started=$(cat "$work/cluster/started")
# One node, ranks as tasks, a little memory: what a user overrides too.
res=(-N1 -c1 --mem-per-cpu=256M)

"$exe" synth a.h5 --n 4096 --layers 4 --features 1024 --seed 5 > /dev/null
cat > c.yaml <<'YAML'
x:
  file: a.h5
  layers: ["layer*"]
batch_size: 256
precision: float64
shuffle: true
checkpoint:
  every: 4
plot: false
progress_seconds: 5
output: out
YAML
# long: a run that outlasts the first time-limit warning (about 9 s after its
# start) on an idle machine too: 60 epochs took 7 s there; short: one to stop by hand.
long=(--set epochs=200)
short=(--set epochs=10)

bits() { "$exe" show "$1/cka.h5" --format csv 2> /dev/null; }

# The references: uninterrupted runs, outside Slurm.
"$exe" run c.yaml --quiet "${short[@]}" --set output=ref_short > /dev/null

# Plain: 2 ranks; also the reference of the long run.
plain=$(submit "${res[@]}" --ntasks-per-node=2 -o plain.log "$jobs/mpicka.sbatch" c.yaml --quiet "${long[@]}" \
    --set output=ref_long)

# Sweep: a 3-task array, one rank each.
printf '%s\n' '# batch sizes and a layer subset' 'batch_size=128' '' 'batch_size=256 seed=2' \
    '"x.layers=[layer1, layer2]"' > sweep.txt
sweep=$(submit "${res[@]}" --ntasks-per-node=1 --array=1-3 -o sweep-%a.log "$jobs/mpicka-sweep.sbatch" c.yaml \
    sweep.txt --quiet)

# USR1 on purpose: requeued, resumed on 2 ranks; the script's own log name
# (--output=%x-%j.out, appended to on the restart).
usr1=$(submit "${res[@]}" --ntasks-per-node=2 "$jobs/mpicka-requeue.sbatch" c.yaml "${short[@]}" \
    --set output=usr1)
usr1_log=mpicka-$usr1.out
wait_checkpoint usr1 "$usr1" && scancel --signal=USR1 --batch "$usr1"

# A plain cancel: the job ends for good.
cancel=$(submit "${res[@]}" --ntasks-per-node=2 -o cancel.log "$jobs/mpicka-requeue.sbatch" c.yaml "${short[@]}" \
    --set output=cancel)
wait_checkpoint cancel "$cancel" && scancel "$cancel"
cancelled_at=$(date +%s)

# A real time-limit warning: slurmctld checks limits every 30 s from its start,
# and with --time=1 --signal=B:USR1@30 the first check the job lives through
# signals it. Submitted 9 s before a check, the run stops a few seconds in.
now=$(date +%s.%N)
target=$(awk -v s="$started" -v n="$now" 'BEGIN { t = s + 30.5; while (t - n < 9) t += 30; printf "%.2f", t - 9 - n }')
sleep "$target"
limit=$(submit "${res[@]}" --ntasks-per-node=1 --time=1 --signal=B:USR1@30 -o limit.log \
    "$jobs/mpicka-requeue.sbatch" c.yaml "${long[@]}" --set output=limit)

# -- the time limit: stopped, requeued; then given time to finish --
if requeued "$limit"; then
    scontrol update JobId="$limit" TimeLimit=10
    if wait_state "$limit" COMPLETED 180 && wait_state "$plain" COMPLETED 120 \
        && grep -q "stopped by signal 10" limit.log && grep -q "requeueing job $limit" limit.log \
        && grep -q "resuming from" limit.log && [ -n "$(bits limit)" ] && [ "$(bits limit)" = "$(bits ref_long)" ] \
        && [ ! -f limit/checkpoint.h5 ]; then
        ok "time-limit warning: checkpoint, exit 75, requeued, resumed to the bits of the plain 2-rank run"
    else
        bad "time limit: not resumed to the same bits" limit.log plain.log
    fi
else
    bad "time limit: the job was not requeued (did the warning come after the run ended?)" limit.log
fi

# -- the plain run --
if wait_state "$plain" COMPLETED 120 && grep -q "2 ranks x 1 threads" plain.log \
    && grep -q "2 rank(s)" plain.log && [ "$(field "$plain" Restarts)" = 0 ]; then
    ok "jobs/mpicka.sbatch on 2 ranks"
else
    bad "plain run" plain.log
fi

# -- USR1 on purpose --
if wait_state "$usr1" COMPLETED 60 && [ "$(field "$usr1" Restarts)" = 1 ] \
    && grep -q "requeueing job $usr1" "$usr1_log" && grep -q "resuming from" "$usr1_log" \
    && [ "$(bits usr1)" = "$(bits ref_short)" ] \
    && grep -Eq "\(.* s over 2 segments\)" "$usr1_log" && [ "$(ls | grep -c '^mpicka-.*\.out$')" = 1 ]; then
    ok "scancel --signal=USR1 --batch: requeued, resumed to the same bits, time over 2 segments, one log $usr1_log"
else
    bad "USR1 on purpose (logs: $(ls | grep '^mpicka-' | tr '\n' ' '))" "$usr1_log"
fi

# -- the cancel: stays cancelled (past the requeue wait), checkpoint kept, resumes when submitted again --
sleep $((cancelled_at + 9 - $(date +%s) > 0 ? cancelled_at + 9 - $(date +%s) : 0))
if wait_state "$cancel" CANCELLED 30 && [ "$(field "$cancel" Restarts)" = 0 ] && [ -f cancel/checkpoint.h5 ] \
    && grep -q "stopped by signal 15" cancel.log && ! grep -q "requeueing" cancel.log; then
    again=$(submit "${res[@]}" --ntasks-per-node=2 -o cancel2.log "$jobs/mpicka-requeue.sbatch" c.yaml \
        "${short[@]}" --set output=cancel)
    if wait_state "$again" COMPLETED 60 && grep -q "resuming from" cancel2.log \
        && [ "$(bits cancel)" = "$(bits ref_short)" ]; then
        ok "scancel: CANCELLED, not requeued, checkpoint kept; submitted again, resumed to the same bits"
    else
        bad "cancel: the new submission did not resume to the same bits" cancel2.log
    fi
else
    bad "cancel: requeued, or no checkpoint" cancel.log
fi

# -- the sweep --
for k in 1 2 3; do wait_state "${sweep}_$k" COMPLETED 60 || true; done
"$jobs/mpicka-sweep-gather.sh" sweep.txt > sweep.csv 2> gather.err
rows=$(tail -n +2 sweep.csv | grep -c ',done,')
b1=$(sed -n 2p sweep.csv | cut -d, -f4)
b2=$(sed -n 3p sweep.csv | cut -d, -f4)
if [ "$(wc -l < sweep.csv)" = 4 ] && [ "$rows" = 3 ] && [ "$b1" = 32 ] && [ "$b2" = 16 ] \
    && [ "$("$exe" show sweep/03-x.layers=_layer1,_layer2/cka.h5 --format csv | wc -l)" = 3 ] \
    && grep -q '^2,"batch_size=256; seed=2",4096,16,1,' sweep.csv \
    && grep -q '^3,"x.layers=\[layer1, layer2\]",' sweep.csv; then
    ok "sweep: 3 array tasks, 3 folders, a CSV of 3 rows"
else
    bad "sweep" sweep.csv gather.err sweep-1.log sweep-2.log sweep-3.log
fi

echo "$pass passed, $fail failed in $(($(date +%s) - begin)) s"
[ "$fail" = 0 ] && [ "$pass" = 5 ]
