#!/usr/bin/env bash
# mpicka's exact estimator against Kornblith's numpy feature_space_linear_cka
# (bench/kornblith_cka.py), both on one core (OPENBLAS_NUM_THREADS=1, mpicka
# on 1 rank), float64, as whole processes: mpicka's is `mpirun -np 1 mpicka
# run` from start to exit, numpy's is python's start, the reads and every
# pair. The two run in turn, A then B, REPEAT times per case, and the table
# gives the medians of the wall time and of the CPU time (user + system of
# the process and its children: less moved by other jobs on a shared
# machine) and the ratios of the medians. With BASELINE set to another build
# folder, that build's mpicka runs too, in the same turns (A, A', B), so that
# a change is measured against the code before it under the same load. Each
# numpy run also checks its CKA matrix against mpicka's (estimator: exact,
# debiased: false, the same biased HSIC_0): the last column is the largest
# difference.
#
#   bench/exact.sh
#
# Environment: BUILD_DIR (build), DATA_DIR (bench/data), REPEAT (5), NS (the
# example counts, "4096 8192"), LAYERS (8), FEATURES (1024), BATCH (512),
# CASES ("self cross": x against itself, x against another model), BASELINE,
# PRECISION (mpicka's working precision, float64; the inputs stay float64).
set -euo pipefail
cd "$(dirname "$0")/.."
build=${BUILD_DIR:-build}
data=${DATA_DIR:-bench/data}
repeat=${REPEAT:-5}
layers=${LAYERS:-8}
features=${FEATURES:-1024}
batch=${BATCH:-512}
exe=$build/mpicka
py=/usr/bin/python3
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMPI_MCA_rmaps_base_oversubscribe=1
export OPENBLAS_NUM_THREADS=1 OMP_NUM_THREADS=1
[ -x "$exe" ] || { echo "build first: cmake --build $build" >&2; exit 1; }
mkdir -p "$data"

base=${BASELINE:+$BASELINE/mpicka}
[ -z "$base" ] || [ -x "$base" ] || { echo "no mpicka in BASELINE=$BASELINE" >&2; exit 1; }

# Runs a command, appends "WALL CPU" (seconds) to the file $1.
timed() {
    local file=$1; shift
    /usr/bin/time -o "$file.t" -f "%e %U %S" "$@"
    awk '{ printf "%s %.2f\n", $1, $2 + $3 }' "$file.t" >> "$file"
}
median() { # column
    awk -v k="$1" '{ print $k }' | sort -n |
        awk '{ v[NR] = $1 } END { print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'
}

echo "| case | n | layers x features | batch | mpicka wall s | numpy wall s | numpy / mpicka, wall | mpicka CPU s | numpy CPU s | numpy / mpicka, CPU |${base:+ before: wall s | CPU s | before / mpicka, wall | CPU |} max abs difference |"
echo "|---|---|---|---|---|---|---|---|---|---|${base:+---|---|---|---|}---|"
for n in ${NS:-4096 8192}; do
    x="$data/exact_x_$n.h5" y="$data/exact_y_$n.h5"
    for f in "$x:1" "$y:2"; do
        [ -f "${f%:*}" ] || "$exe" synth "${f%:*}" --n "$n" --layers "$layers" --features "$features" \
            --dtype f64 --seed "${f##*:}" >/dev/null
    done
    for case in ${CASES:-self cross}; do
        cfg="$data/exact_$case.yaml" out="$data/exact_out_$case"
        { printf '%s\n' "x:" "  file: $x" '  layers: ["layer*"]'
          [ "$case" = cross ] && printf '%s\n' "y:" "  file: $y" '  layers: ["layer*"]'
          printf '%s\n' "estimator: exact" "debiased: false" "precision: ${PRECISION:-float64}" "batch_size: $batch" \
              "output: $out" "plot: false" "checkpoint: false"; } > "$cfg"
        args=("$x"); [ "$case" = cross ] && args+=("$y")
        cat "$x" "$y" >/dev/null # the page cache
        a="$data/exact_a" b="$data/exact_b" o="$data/exact_o"
        : > "$a"; : > "$b"; : > "$o"
        for _ in $(seq "$repeat"); do
            timed "$a" mpirun -np 1 "$exe" run "$cfg" -q --force >/dev/null
            [ -z "$base" ] || timed "$o" mpirun -np 1 "$base" run "$cfg" -q --force --set output="$out.base" >/dev/null
            timed "$b" "$py" bench/kornblith_cka.py "${args[@]}" --check "$out/cka.h5" > "$data/exact_line"
        done
        diff=$(sed -n 's/.*max |numpy - mpicka| \(.*\)/\1/p' "$data/exact_line")
        before=""
        [ -z "$base" ] || before=$(awk -v ow="$(median 1 < "$o")" -v oc="$(median 2 < "$o")" \
            -v aw="$(median 1 < "$a")" -v ac="$(median 2 < "$a")" \
            'BEGIN { printf " %.2f | %.2f | %.2f | %.2f |", ow, oc, ow / aw, oc / ac }')
        awk -v c="$case" -v n="$n" -v l="$layers" -v p="$features" -v m="$batch" -v d="$diff" -v before="$before" \
            -v aw="$(median 1 < "$a")" -v ac="$(median 2 < "$a")" -v bw="$(median 1 < "$b")" -v bc="$(median 2 < "$b")" \
            'BEGIN { printf "| %s | %d | %d x %d | %d | %.2f | %.2f | %.2f | %.2f | %.2f | %.2f |%s %s |\n",
                     c, n, l, p, m, aw, bw, bw / aw, ac, bc, bc / ac, before, d }'
        echo "    $case n=$n runs (wall CPU), mpicka: $(tr '\n' ' ' < "$a")numpy: $(tr '\n' ' ' < "$b")${base:+before: $(tr '\n' ' ' < "$o")}$(uptime)" >&2
        rm -rf "$out" "$out.base"
    done
done
rm -f "$data"/exact_[abo] "$data"/exact_[abo].t "$data/exact_line"
