#!/usr/bin/env bash
# The standard case against its floor, in one run: the whole process
# (mpirun's wall time, MPI start-up and shut-down included) and the run's own
# time, each next to bare ssyrk on the same Gram shapes (mk_blas_bench: 384
# Grams of 512 x 1024 float32, one core), the ranks x threads table with the
# speed-ups over 1 rank, and what MPI_Init and MPI_Finalize cost with Open
# MPI's default transports and with the one-node settings.
#
#   bench/floor.sh
#
# Warnings go to DATA_DIR/floor.log (2 x 2 oversubscribes 2 cores and says so).
# Environment: BUILD_DIR (build), DATA_DIR (bench/data), REPEAT (5: every
# configuration once per round, rounds interleaved, medians reported).
set -euo pipefail
cd "$(dirname "$0")/.."
build=${BUILD_DIR:-build}
data=${DATA_DIR:-bench/data}
repeat=${REPEAT:-5}
exe=$build/mpicka
blas=$build/bench/mk_blas_bench
init=$build/bench/mk_mpi_init_bench
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMPI_MCA_rmaps_base_oversubscribe=1
export OPENBLAS_NUM_THREADS=1
[ -x "$exe" ] && [ -x "$blas" ] && [ -x "$init" ] || { echo "build first: cmake --build $build" >&2; exit 1; }
mkdir -p "$data"
file=$data/standard.h5
[ -f "$file" ] || "$exe" synth "$file" --n 16384 --layers 12 --features 1024 --seed 1 >/dev/null
printf '%s\n' "batch_size: 512" "precision: float32" "x:" "  file: $file" '  layers: ["layer*"]' \
    "output: unused" "plot: false" "checkpoint: false" > "$data/floor.yaml"
onenode="OMPI_MCA_pml=ob1"
inits=("" "$onenode" "$onenode OMPI_MCA_btl=self,vader")

# label | environment | mpirun flags | ranks | threads
configs=(
    "1 x 1, Open MPI's default transports||--bind-to core|1|1"
    "1 x 1|$onenode|--bind-to core|1|1"
    "1 x 1, --bind-to none (a free core)|$onenode|--bind-to none|1|1"
    "1 x 2, --bind-to none|$onenode|--bind-to none|1|2"
    "2 x 1|$onenode|--bind-to core|2|1"
    "2 x 2, --bind-to none (4 threads, 2 cores)|$onenode|--bind-to none|2|2"
)
runs=$(mktemp)
trap 'rm -f "$runs"' EXIT

now() { date +%s.%N; }

# Appends "CONFIG WALL RUN_SECONDS PHASES" for one run of configuration k.
one_run() {
    local label envs flags np threads t0 t1 out
    IFS='|' read -r label envs flags np threads <<<"${configs[$1]}"
    t0=$(now)
    out=$(env $envs mpirun $flags -np "$np" "$exe" run "$data/floor.yaml" --quiet --set threads="$threads" \
        --set output="$data/floor-out-$1" 2>>"$data/floor.log")
    t1=$(now)
    local secs phases
    secs=$(sed -n 's/.*rank(s) x [0-9]* thread(s), float32, \([0-9.]*\) s$/\1/p' <<<"$out")
    phases=$(sed -n 's/.*time per phase (slowest rank): \(.*\); peak.*/\1/p' <<<"$out" | tr -d ' ')
    echo "$1 $(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.4f", b - a }') $secs $phases" >>"$runs"
}

one_run 1 >/dev/null # warm the page cache and the output folders
for k in "${!configs[@]}"; do one_run "$k"; done
: >"$runs"
read -r _ syrk _ _ <<<"$("$blas" 512 1024 384 float32)"
for _ in $(seq "$repeat"); do
    for k in "${!configs[@]}"; do one_run "$k"; done
    for i in "${!inits[@]}"; do echo "init$i $(env ${inits[$i]} mpirun -np 1 "$init")" >>"$runs"; done
done

median() { sort -n | awk '{ v[NR] = $1 } END { print NR % 2 ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }
col() { awk -v k="$1" -v c="$2" '$1 == k { print $c }' "$runs" | median; }
phase() { awk -v k="$1" '$1 == k { print $4 }' "$runs" | tr ',' '\n' | sed -n "s/^$2\([0-9.]*\)s$/\1/p" | median; }

echo "bare ssyrk (384 Grams of 512 x 1024, float32, 1 core): $syrk s"
echo
echo "| ranks x threads | whole process s | whole / bare ssyrk | run s | run / bare ssyrk | speed-up over 1 x 1 (whole, run) | gram | ucentre | pairs | wait | setup |"
echo "|---|---|---|---|---|---|---|---|---|---|---|"
w1=$(col 1 2)
r1=$(col 1 3)
for k in "${!configs[@]}"; do
    IFS='|' read -r label _ _ np _ <<<"${configs[$k]}"
    w=$(col "$k" 2)
    r=$(col "$k" 3)
    awk -v l="$label" -v w="$w" -v r="$r" -v s="$syrk" -v w1="$w1" -v r1="$r1" -v np="$np" \
        -v g="$(phase "$k" gram)" -v u="$(phase "$k" ucentre)" -v p="$(phase "$k" pairs)" \
        -v wa="$(phase "$k" wait)" -v se="$(phase "$k" setup)" \
        'BEGIN { printf "| %s | %.3f | %.2f | %.3f | %.2f | %.2f, %.2f | %s | %s | %s | %s | %s |\n",
                 l, w, w / s, r, r / s, w1 / w, r1 / r, g, u, p, wa, se }'
done
echo
echo "| Open MPI settings (1 rank) | MPI_Init s | MPI_Finalize s |"
echo "|---|---|---|"
for i in "${!inits[@]}"; do
    echo "| ${inits[$i]:-default} | $(col "init$i" 3) | $(col "init$i" 5) |"
done
rm -rf "$data"/floor-out-* "$data/floor.log"
