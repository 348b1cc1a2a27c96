#!/usr/bin/env bash
# The shipped job scripts, unedited, across the nodes of an emulated 3-node
# Slurm cluster (tests/slurm/cluster.sh start DIR 3; resources overridden on
# the sbatch command line), each result's datasets bitwise those of a one-node
# run (tests/slurm/same_bits.py):
#   - jobs/mpicka.sbatch on 2 nodes x 2 ranks;
#   - jobs/mpicka-requeue.sbatch on 2 nodes x 1 rank, stopped by
#     `scancel --signal=USR1 --batch` (checkpoint, requeued), then moved to 3
#     nodes: cancelled while it waits and submitted again with -N3, it resumes;
#   - the same stopped by a plain `scancel` and resumed on 1 node x 2 ranks;
#   - jobs/mpicka-sweep.sbatch as a 3-task array of whole nodes (--exclusive),
#     one task on each node;
#   - `mpicka check` inside 2-node allocations: ranks per node from
#     SLURM_TASKS_PER_NODE (2(x2); an uneven split's fullest node) or
#     SLURM_NTASKS_PER_NODE, the node's memory from SLURM_MEM_PER_NODE, which
#     only --mem sets.
# Skipped (status 77) where unshare cannot make the nodes' namespaces; fails,
# saying why, when Slurm cannot start. Run as root (CI is).
#   tests/slurm/test_nodes.sh MPICKA PYTHON3
set -uo pipefail
exe=$(cd "$(dirname "$1")" && pwd)/$(basename "$1")
python=${2:-/usr/bin/python3}
here=$(cd "$(dirname "$0")" && pwd)
jobs=$here/../../jobs
cluster=$here/cluster.sh
test_limit=300
. "$here/lib.sh"

"$cluster" start "$work/cluster" 3
case $? in
    0) ;;
    3) echo "SKIP: the emulated nodes need mount, UTS and IPC namespaces (unshare), not available here"; exit 77 ;;
    *) echo "FAIL: the Slurm mini-cluster did not start (see above)"; exit 1 ;;
esac
. "$work/cluster/env"
export MPICKA=$exe OPENBLAS_NUM_THREADS=1
res=(-c1 --mem-per-cpu=256M)

# Small and quick: 32 batches an epoch; what costs is each step's lockstep on a
# busy machine, so the plain run has 2 epochs and the stopped ones 16.
"$exe" synth a.h5 --n 2048 --layers 4 --features 256 --seed 5 > /dev/null
cat > c.yaml <<'YAML'
x:
  file: a.h5
  layers: ["layer*"]
batch_size: 64
precision: float64
shuffle: true
epochs: 2
checkpoint:
  every: 2
plot: false
output: out
YAML
long=(--set epochs=16)

# Whether folder $1's cka.h5 holds the bits of folder $2's; what differs goes to $1.bits.
same() { "$python" "$here/same_bits.py" "$2/cka.h5" "$1/cka.h5" > "$1.bits" 2>&1; }
# The nodes job $1 ran on, one a line (n[1-3] written out).
nodes_of() { scontrol show hostnames "$(field "$1" NodeList)" 2> /dev/null; }

# The references: one rank on this machine, outside Slurm.
printf '%s\n' 'batch_size=32' 'seed=2' '"x.layers=[layer1, layer3]"' > sweep.txt
"$exe" run c.yaml --quiet --set output=ref > /dev/null
"$exe" run c.yaml --quiet "${long[@]}" --set output=ref_long > /dev/null
k=0
while IFS= read -r line; do
    k=$((k + 1))
    eval "words=($line)"
    sets=()
    for w in "${words[@]}"; do sets+=(--set "$w"); done
    "$exe" run c.yaml --quiet "${sets[@]}" --set output=ref_sweep$k > /dev/null
done < sweep.txt

# The sweep first, on the idle cluster: each task takes a whole node, so the
# three start together, one on each node (without --exclusive Slurm packs
# them onto n1). Little memory per CPU: a whole node is all its 16 CPUs.
sweep=$(submit -c1 --mem-per-cpu=128M -N1 --ntasks-per-node=1 --exclusive --array=1-3 -o sweep-%a.log \
    "$jobs/mpicka-sweep.sbatch" c.yaml sweep.txt --quiet)
# The plain run: 2 nodes x 2 ranks.
plain=$(submit "${res[@]}" -N2 --ntasks-per-node=2 -o plain.log "$jobs/mpicka.sbatch" c.yaml --quiet \
    --set output=plain)
# Two stops on 2 nodes x 1 rank: USR1 (requeued) and a plain cancel.
usr1=$(submit "${res[@]}" -N2 --ntasks-per-node=1 -o usr1.log "$jobs/mpicka-requeue.sbatch" c.yaml "${long[@]}" \
    --set output=usr1)
cancel=$(submit "${res[@]}" -N2 --ntasks-per-node=1 -o cancel.log "$jobs/mpicka-requeue.sbatch" c.yaml \
    "${long[@]}" --set output=cancel)
# check in 2-node allocations: 2(x2) with --mem; 2 tasks on one node and 1 on
# the other without; --ntasks-per-node.
show='echo "tasks per node: ${SLURM_TASKS_PER_NODE:-unset}, memory per node: ${SLURM_MEM_PER_NODE:-unset}";'
show+=' "$MPICKA" check c.yaml -n "$SLURM_NTASKS"'
check1=$(submit -N2 -n4 -c8 --mem=1G -o check1.log --wrap "$show")
check2=$(submit -N2 -n3 -c1 --mem-per-cpu=256M -o check2.log --wrap "$show")
check3=$(submit -N2 --ntasks-per-node=3 -c1 --mem-per-cpu=256M -o check3.log --wrap "$show")

# The stops first, while those runs last (several seconds each): USR1 to one,
# a plain cancel to the other, as soon as each has written a checkpoint.
usr1_nodes=0 cancel_nodes=0 usr1_stop=1 cancel_stop=1
if wait_checkpoint usr1 "$usr1"; then
    usr1_nodes=$(nodes_of "$usr1" | wc -l)
    scancel --signal=USR1 --batch "$usr1" && usr1_stop=0
fi
if wait_checkpoint cancel "$cancel"; then
    cancel_nodes=$(nodes_of "$cancel" | wc -l)
    scancel "$cancel" && cancel_stop=0
fi

# -- USR1: requeued on 2 nodes; cancelled while it waits for its restart, then submitted on 3 --
if [ "$usr1_stop" = 0 ] && requeued "$usr1" && grep -q "requeueing job $usr1" usr1.log; then
    # Waiting for its BeginTime (5 s) or already started again: either way a
    # cancel leaves the checkpoint and ends it.
    scancel "$usr1"
    wait_state "$usr1" CANCELLED 60
    usr3=$(submit "${res[@]}" -N3 --ntasks-per-node=1 -o usr3.log "$jobs/mpicka-requeue.sbatch" c.yaml \
        "${long[@]}" --set output=usr1)
else
    bad "requeue: no checkpoint, or not requeued on USR1" usr1.log
fi

# -- a plain cancel on 2 nodes, then 1 node x 2 ranks --
if [ "$cancel_stop" = 0 ] && wait_state "$cancel" CANCELLED 60 && [ -f cancel/checkpoint.h5 ] \
    && grep -q "stopped by signal 15" cancel.log; then
    again=$(submit "${res[@]}" -N1 --ntasks-per-node=2 -o cancel1.log "$jobs/mpicka-requeue.sbatch" c.yaml \
        "${long[@]}" --set output=cancel)
else
    bad "cancel: no checkpoint left on 2 nodes" cancel.log
fi

# -- the sweep --
[ -n "$sweep" ] && for k in 1 2 3; do wait_state "${sweep}_$k" COMPLETED 90 || true; done
spread=$(for k in 1 2 3; do nodes_of "${sweep}_$k"; done | sort -u | tr '\n' ' ')
MPICKA=$exe "$jobs/mpicka-sweep-gather.sh" sweep.txt > sweep.csv 2> gather.err
sweep_bits=0
k=0
for d in sweep/01-batch_size=32 sweep/02-seed=2 sweep/03-x.layers=_layer1,_layer3; do
    k=$((k + 1))
    same "$d" "ref_sweep$k" || { sweep_bits=1; cat "$d.bits" >> gather.err; }
done
if [ "$spread" = "n1 n2 n3 " ] && [ "$(grep -c ',done,' sweep.csv)" = 3 ] && [ "$sweep_bits" = 0 ]; then
    ok "sweep: 3 array tasks of whole nodes ran on n1, n2 and n3, each the bits of its one-node run"
else
    echo "  the tasks ran on: ${spread:-?}"
    bad "sweep" sweep.csv gather.err sweep-1.log sweep-2.log sweep-3.log
fi

# -- the plain run --
# Once in about ten runs on the emulated nodes, a rank of this job (the only
# one with 2 ranks per node across nodes) crashed in MPI_Init, Open MPI
# saying "A system call failed during shared memory initialization" (open(2),
# ENOENT), before mpicka's code ran. Not understood; not seen with real
# nodes. That signature alone is submitted once more, and said.
if ! wait_state "$plain" COMPLETED 120 > /dev/null && grep -q "failed during shared memory initialization" plain.log; then
    echo "note: the plain run's MPI_Init failed in Open MPI's shared memory set-up; submitted once more"
    mv plain.log plain-first.log
    plain=$(submit "${res[@]}" -N2 --ntasks-per-node=2 -o plain.log "$jobs/mpicka.sbatch" c.yaml --quiet \
        --set output=plain)
fi
if wait_state "$plain" COMPLETED 120 && [ "$(nodes_of "$plain" | wc -l)" = 2 ] \
    && grep -q "4 ranks x 1 threads" plain.log && grep -q "4 rank(s)" plain.log && same plain ref; then
    ok "jobs/mpicka.sbatch on 2 nodes x 2 ranks ($(nodes_of "$plain" | tr '\n' ' ')): the bits of one rank on one node"
else
    bad "plain run on 2 nodes" plain.log plain.bits
fi

# -- the resumed runs --
if [ -n "${usr3:-}" ]; then
    if [ "$usr1_nodes" = 2 ] && wait_state "$usr3" COMPLETED 120 && [ "$(nodes_of "$usr3" | wc -l)" = 3 ] \
        && grep -q "resuming from" usr3.log && grep -q "3 rank(s)" usr3.log && same usr1 ref_long \
        && [ ! -f usr1/checkpoint.h5 ]; then
        ok "requeue: stopped by USR1 on 2 nodes, requeued; resumed on 3 nodes to the bits of one node"
    else
        bad "requeue: not resumed on 3 nodes to the same bits" usr1.log usr3.log usr1.bits
    fi
fi
if [ -n "${again:-}" ]; then
    if [ "$cancel_nodes" = 2 ] && wait_state "$again" COMPLETED 120 && grep -q "resuming from" cancel1.log \
        && grep -q "2 rank(s)" cancel1.log && same cancel ref_long && [ ! -f cancel/checkpoint.h5 ]; then
        ok "cancel on 2 nodes x 1 rank, submitted again on 1 node x 2 ranks: resumed to the same bits"
    else
        bad "cancel: not resumed on 1 node to the same bits" cancel.log cancel1.log cancel.bits
    fi
fi

# -- check inside 2-node allocations --
check_says() { # job $1 completed, its log holding each of the fixed strings $2...
    wait_state "$1" COMPLETED 90 > /dev/null || return 1
    local s
    for s in "${@:3}"; do grep -qF -- "$s" "$2" || { echo "  $2: no '$s'"; return 1; }; done
}
if check_says "$check1" check1.log "tasks per node: 2(x2), memory per node: 1024" \
        "memory per node: 2 rank(s) (SLURM_TASKS_PER_NODE, its fullest node)" \
        "of 1.0 GiB (SLURM_MEM_PER_NODE, the job's memory on a node)" \
    && check_says "$check2" check2.log "tasks per node: 2,1, memory per node: unset" \
        "memory per node: 2 rank(s) (SLURM_TASKS_PER_NODE, its fullest node)" \
        "(this machine's memory; give --node-memory for another node)" \
    && check_says "$check3" check3.log "tasks per node: 3(x2), memory per node: unset" \
        "memory per node: 3 rank(s) (SLURM_NTASKS_PER_NODE)"; then
    ok "check in 2-node allocations: ranks per node from SLURM_TASKS_PER_NODE (2(x2), 2,1) and\
 SLURM_NTASKS_PER_NODE, node memory from SLURM_MEM_PER_NODE (with --mem only)"
else
    bad "check in 2-node allocations" check1.log check2.log check3.log
fi

echo "$pass passed, $fail failed in $(($(date +%s) - begin)) s"
[ "$fail" = 0 ] && [ "$pass" = 5 ]
