#!/usr/bin/env bash
# Across nodes against one node, in one run, on an emulated 2-node Slurm
# cluster (tests/slurm/cluster.sh start DIR 2: one slurmd per node, each in
# namespaces of its own; as root). Inside one allocation of 2 nodes x 2 tasks,
# each layout is run once per round as an srun step, rounds interleaved, and
# medians reported:
#   - start-up: MPI_Init, the first barrier (connections) and the whole step of mk_mpi_init_bench, with the job
#     scripts' settings (one node: OMPI_MCA_pml=ob1; several: Open MPI's
#     default, UCX) and with ob1 (TCP) across nodes;
#   - the reduction's traffic: rank 0 receiving 6 messages of 2.75 MiB from
#     the other rank (mk_mpi_init_bench 2883584 6), and the reduce phase of a
#     run built to send that much (128 layers of 8 features, jackknife 20: one
#     tree node is (128^2 + 256) x 21 doubles; 127 batches on 2 ranks: rank 1
#     holds 63 = 32+16+8+4+2+1 batches, 6 nodes);
#   - whole runs: the standard case (n 16384, 12 x 1024 float32, batch 512)
#     and a small one whose steps cost more than their work (n 2048, 4 x 256
#     float64, batch 64, 16 epochs: 256 lockstep steps on 2 ranks).
# The emulated nodes share this machine's cores and talk over loopback TCP:
# what differs between the layouts is the transport, not the hardware.
#
#   bench/nodes.sh
#
# Environment: BUILD_DIR (build), DATA_DIR (bench/data), REPEAT (3). Warnings and
# errors of the runs go to DATA_DIR/nodes.log.
set -euo pipefail
cd "$(dirname "$0")/.."
build=${BUILD_DIR:-build}
data=${DATA_DIR:-bench/data}
repeat=${REPEAT:-3}
exe=$(pwd)/$build/mpicka
init=$(pwd)/$build/bench/mk_mpi_init_bench
export OPENBLAS_NUM_THREADS=1

# label | nodes | ranks per node | environment
layouts=(
    "1 node x 2 ranks (pml ob1, as the scripts set it)|1|2|OMPI_MCA_pml=ob1"
    "2 nodes x 1 rank (Open MPI's default, UCX, as the scripts leave it)|2|1|"
    "2 nodes x 1 rank, pml ob1 (TCP)|2|1|OMPI_MCA_pml=ob1"
)
now() { date +%s.%N; }

# Inside the allocation: appends "KIND LAYOUT WALL FIELDS..." lines to $1.
steps() {
    local runs=$1 k label n per envs t0 out secs phases case
    for _ in $(seq "$repeat"); do
        for k in "${!layouts[@]}"; do
            IFS='|' read -r label n per envs <<<"${layouts[$k]}"
            step=(env $envs srun -N"$n" -n$((n * per)) --ntasks-per-node="$per" -c1)
            t0=$(now)
            out=$("${step[@]}" "$init" 2883584 6)
            echo "init $k $(awk -v a="$t0" -v b="$(now)" 'BEGIN { printf "%.4f", b - a }') $out" >>"$runs"
            for case in standard reduce small; do
                t0=$(now)
                out=$("${step[@]}" "$exe" run "$data/nodes-$case.yaml" --quiet --set output="$data/nodes-out-$case-$k" \
                    2>>"$data/nodes.log")
                secs=$(sed -n 's/.*rank(s) x [0-9]* thread(s), float[0-9]*, \([0-9.]*\) s$/\1/p' <<<"$out")
                phases=$(sed -n 's/.*time per phase (slowest rank): \(.*\); peak.*/\1/p' <<<"$out" | tr -d ' ')
                echo "$case $k $(awk -v a="$t0" -v b="$(now)" 'BEGIN { printf "%.4f", b - a }') $secs $phases" \
                    >>"$runs"
            done
        done
    done
}

if [ "${1:-}" = steps ]; then
    steps "$2"
    exit 0
fi

[ -x "$exe" ] && [ -x "$init" ] || { echo "build first: cmake --build $build" >&2; exit 1; }
mkdir -p "$data"
data=$(cd "$data" && pwd)
[ -f "$data/standard.h5" ] || "$exe" synth "$data/standard.h5" --n 16384 --layers 12 --features 1024 --seed 1 >/dev/null
[ -f "$data/nodes-reduce.h5" ] || "$exe" synth "$data/nodes-reduce.h5" --n 4064 --layers 128 --features 8 --seed 2 >/dev/null
[ -f "$data/nodes-small.h5" ] || "$exe" synth "$data/nodes-small.h5" --n 2048 --layers 4 --features 256 --seed 5 >/dev/null
conf() { # NAME FILE then config lines
    local name=$1 file=$2
    shift 2
    printf '%s\n' "x:" "  file: $data/$file" '  layers: ["layer*"]' "output: unused" "plot: false" "checkpoint: false" \
        "$@" > "$data/nodes-$name.yaml"
}
conf standard standard.h5 "batch_size: 512" "precision: float32"
conf reduce nodes-reduce.h5 "batch_size: 32" "precision: float64" "jackknife: 20"
conf small nodes-small.h5 "batch_size: 64" "precision: float64" "epochs: 16"

cl=$(mktemp -d)
runs=$(mktemp)
trap 'tests/slurm/cluster.sh stop "$cl/cluster" >/dev/null; rm -rf "$cl" "$runs"' EXIT
tests/slurm/cluster.sh start "$cl/cluster" 2 >/dev/null
. "$cl/cluster/env"
# One allocation for every step; a first round (not counted) warms the page
# cache and the output folders.
salloc -Q -N2 --ntasks-per-node=2 -c1 --mem-per-cpu=1G env REPEAT=1 "$0" steps "$runs" >/dev/null 2>&1
: >"$runs"
salloc -Q -N2 --ntasks-per-node=2 -c1 --mem-per-cpu=1G "$0" steps "$runs" 2>>"$data/nodes.log"

median() { sort -n | awk '{ v[NR] = $1 } END { print NR % 2 ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }
col() { awk -v c="$1" -v k="$2" -v n="$3" '$1 == c && $2 == k { print $n }' "$runs" | median; }
phase() { awk -v c="$1" -v k="$2" '$1 == c && $2 == k { print $5 }' "$runs" | tr ',' '\n' \
    | sed -n "s/^$3\([0-9.]*\)s$/\1/p" | median; }

echo "Start-up and the reduction's traffic (mk_mpi_init_bench 2883584 6 as an srun step; medians of $repeat):"
echo
echo "| layout | whole step s | MPI_Init s | first barrier s | MPI_Finalize s | 6 x 2.75 MiB to rank 0, first s | GB/s | again s | GB/s |"
echo "|---|---|---|---|---|---|---|---|---|"
for k in "${!layouts[@]}"; do
    IFS='|' read -r label _ <<<"${layouts[$k]}"
    echo "| $label | $(col init "$k" 3) | $(col init "$k" 5) | $(col init "$k" 15) | $(col init "$k" 7) |" \
        "$(col init "$k" 9) | $(col init "$k" 10) | $(col init "$k" 12) | $(col init "$k" 13) |"
done
for case in standard reduce small; do
    echo
    echo "mpicka run, case $case (medians of $repeat):"
    echo
    echo "| layout | whole step s | run s | run / 1 node | setup | gram | wait | reduce | write |"
    echo "|---|---|---|---|---|---|---|---|---|"
    r0=$(col "$case" 0 4)
    for k in "${!layouts[@]}"; do
        IFS='|' read -r label _ <<<"${layouts[$k]}"
        r=$(col "$case" "$k" 4)
        echo "| $label | $(col "$case" "$k" 3) | $r | $(awk -v a="$r" -v b="$r0" 'BEGIN { printf "%.2f", a / b }') |" \
            "$(phase "$case" "$k" setup) | $(phase "$case" "$k" gram) | $(phase "$case" "$k" wait) |" \
            "$(phase "$case" "$k" reduce) | $(phase "$case" "$k" write) |"
    done
done
