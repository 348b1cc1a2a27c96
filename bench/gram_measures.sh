#!/usr/bin/env bash
# The measures from the minibatch Grams against minibatch CKA alone, in one
# run, on the issue's case: 12 layers x 512 float32 features, n = 16384, x
# against itself, estimator hsic1, batch BATCH: the whole run with
# `measures: [cka]`, with each Gram measure alone, and with all four, on 1
# rank of 1 thread (and CKA alone and all four with THREADS threads), rounds
# interleaved, medians of REPEAT, and the pairs
# phase (where the Gram measures' pairs are computed; each layer's RDM and
# neighbours are prepared in the gram phase).
#
#   bench/gram_measures.sh
#
# Environment: BUILD_DIR (build), DATA_DIR (bench/data), REPEAT (3),
# BATCH (512), THREADS (2), N (16384), LAYERS (12), FEATURES (512).
set -euo pipefail
cd "$(dirname "$0")/.."
build=${BUILD_DIR:-build}
data=${DATA_DIR:-bench/data}
repeat=${REPEAT:-3}
batch=${BATCH:-512}
threads=${THREADS:-2}
n=${N:-16384} layers=${LAYERS:-12} features=${FEATURES:-512}
exe=$build/mpicka
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMPI_MCA_rmaps_base_oversubscribe=1
export OPENBLAS_NUM_THREADS=1 OMPI_MCA_pml=ob1
[ -x "$exe" ] || { echo "build first: cmake --build $build" >&2; exit 1; }
mkdir -p "$data"
file=$data/measures-$n-$layers-$features.h5
[ -f "$file" ] || "$exe" synth "$file" --n "$n" --layers "$layers" --features "$features" --seed 1 >/dev/null
all="[{rsa: {method: spearman, distance: correlation}}, mutual_knn, cknna, jaccard]"
labels=("CKA alone" "rsa (pearson, euclidean)" "rsa (spearman, correlation)" "mutual_knn (k 10)" "cknna (k 10)"
        "jaccard (k 10)" "all four" "CKA alone, $threads threads" "all four, $threads threads")
lists=("[cka]" "[rsa]" "[{rsa: {method: spearman, distance: correlation}}]" "[mutual_knn]" "[cknna]" "[jaccard]"
       "$all" "[cka]" "$all")
counts=(1 1 1 1 1 1 1 "$threads" "$threads")
declare -A wall phase
for ((r = 0; r < repeat; r++)); do
    for k in "${!labels[@]}"; do
        printf '%s\n' "batch_size: $batch" "estimator: hsic1" "precision: float64" "x:" "  file: $file" \
            '  layers: ["layer*"]' "measures: ${lists[$k]}" "threads: ${counts[$k]}" "output: $data/gram-measures-out" \
            "plot: false" "checkpoint: false" > "$data/gram-measures.yaml"
        start=$(date +%s.%N)
        log=$(mpirun -np 1 --bind-to none "$exe" run "$data/gram-measures.yaml" --force 2>&1)
        end=$(date +%s.%N)
        wall[$k]+="$(echo "$end - $start" | bc) "
        phase[$k]+="$(echo "$log" | sed -n 's/.* pairs \([0-9.]*\) s.*/\1/p') "
    done
done
median() { tr ' ' '\n' | grep . | sort -g | awk '{a[NR] = $1} END {print a[int((NR + 1) / 2)]}'; }
base=$(echo "${wall[0]}" | median)
printf '%d layers x %d features, n = %d, hsic1, batch %d, float64, 1 rank; medians of %d runs (s)\n' \
    "$layers" "$features" "$n" "$batch" "$repeat"
printf '%-36s %10s %12s %10s\n' "configuration" "whole run" "pairs phase" "vs CKA"
for k in "${!labels[@]}"; do
    [ "$k" -eq 7 ] && base=$(echo "${wall[7]}" | median) # the threaded rows against CKA on as many threads
    w=$(echo "${wall[$k]}" | median)
    printf '%-36s %10.2f %12.2f %9.2fx\n' "${labels[$k]}" "$w" "$(echo "${phase[$k]}" | median)" "$(echo "$w / $base" | bc -l)"
done
