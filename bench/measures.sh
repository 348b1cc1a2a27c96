#!/usr/bin/env bash
# The measures beyond CKA against CKA alone, in one run, on the issue's case:
# 12 layers x 512 float32 features, n = 16384, x against itself, estimator
# exact, batch 512: the whole run with `measures: [cka]`, then with every
# measure (cca, svcca, pwcca, procrustes, shape, regression) on 1 rank of 1
# and of THREADS threads, and on RANKS ranks of 1 thread (the pairs dealt
# out to the ranks, src/driver/spread.c), rounds interleaved, medians of
# REPEAT, and the measures phase (where the measures are computed).
#
#   bench/measures.sh
#
# Environment: BUILD_DIR (build), DATA_DIR (bench/data), REPEAT (3),
# THREADS (2), RANKS (2), N (16384), LAYERS (12), FEATURES (512).
set -euo pipefail
cd "$(dirname "$0")/.."
build=${BUILD_DIR:-build}
data=${DATA_DIR:-bench/data}
repeat=${REPEAT:-3}
threads=${THREADS:-2}
ranks=${RANKS:-2}
n=${N:-16384} layers=${LAYERS:-12} features=${FEATURES:-512}
exe=$build/mpicka
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMPI_MCA_rmaps_base_oversubscribe=1
export OPENBLAS_NUM_THREADS=1 OMPI_MCA_pml=ob1
[ -x "$exe" ] || { echo "build first: cmake --build $build" >&2; exit 1; }
mkdir -p "$data"
file=$data/measures-$n-$layers-$features.h5
[ -f "$file" ] || "$exe" synth "$file" --n "$n" --layers "$layers" --features "$features" --seed 1 >/dev/null
every="[cka, cca, {svcca: {keep: 0.99}}, pwcca, procrustes, {shape: {alpha: 0.5}}, regression]"
labels=("CKA alone, 1 thread" "CKA alone, $threads threads" "every measure, 1 thread" "every measure, $threads threads"
        "every measure, $ranks ranks x 1 thread")
lists=("[cka]" "[cka]" "$every" "$every" "$every")
counts=(1 "$threads" 1 "$threads" 1)
nps=(1 1 1 1 "$ranks")
declare -A wall phase
for ((r = 0; r < repeat; r++)); do
    for k in "${!labels[@]}"; do
        printf '%s\n' "batch_size: 512" "estimator: exact" "precision: float64" "x:" "  file: $file" \
            '  layers: ["layer*"]' "measures: ${lists[$k]}" "threads: ${counts[$k]}" "output: $data/measures-out" \
            "plot: false" "checkpoint: false" > "$data/measures.yaml"
        start=$(date +%s.%N)
        log=$(mpirun -np "${nps[$k]}" --bind-to none "$exe" run "$data/measures.yaml" --force 2>&1)
        end=$(date +%s.%N)
        wall[$k]+="$(echo "$end - $start" | bc) "
        phase[$k]+="$(echo "$log" | sed -n 's/.* measures \([0-9.]*\) s.*/\1/p') "
    done
done
median() { tr ' ' '\n' | grep . | sort -g | awk '{a[NR] = $1} END {print a[int((NR + 1) / 2)]}'; }
base=$(echo "${wall[0]}" | median)
printf '%d layers x %d features, n = %d, exact, float64; medians of %d runs (s)\n' "$layers" "$features" "$n" "$repeat"
printf '%-36s %10s %15s %10s\n' "configuration" "whole run" "measures phase" "vs CKA"
for k in "${!labels[@]}"; do
    w=$(echo "${wall[$k]}" | median)
    printf '%-36s %10.2f %15.2f %9.2fx\n' "${labels[$k]}" "$w" "$(echo "${phase[$k]}" | median)" "$(echo "$w / $base" | bc -l)"
done
