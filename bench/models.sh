#!/usr/bin/env bash
# Many models in one pass against the pairwise runs it replaces, from one run
# on one machine: 10 models x 12 layers (a seeds study) as one `models:` run,
# against the 45 two-model runs (x, y) of every pair, alternating (A B A B
# ...). The table gives both medians of the wall time of the whole commands
# (mpirun included: a user pays it per run), the median of the pairwise
# ratios, and the bytes each reads against the bytes of the input files.
#
#   bench/models.sh
#
# Data (written once into DATA_DIR by `mpicka synth`, seeds 0..9): n 4096,
# 12 layers x 256 float32 features each, batch_size 512, float32, 1 rank
# (NP ranks). Bytes: rchar of every mpicka process (bench/io_count.sh).
# Environment: BUILD_DIR (build), DATA_DIR (bench/data), REPEAT (3), NP (1).
set -euo pipefail
cd "$(dirname "$0")/.."
build=${BUILD_DIR:-build}
data=${DATA_DIR:-bench/data}
repeat=${REPEAT:-3}
np=${NP:-1}
exe=$(realpath "$build/mpicka")
count=$(realpath bench/io_count.sh)
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMPI_MCA_rmaps_base_oversubscribe=1
export OPENBLAS_NUM_THREADS=1 OMPI_MCA_pml=ob1 OMPI_MCA_btl=self,vader
[ -x "$exe" ] || { echo "build first: cmake --build $build" >&2; exit 1; }
mkdir -p "$data/models"
dir=$(realpath "$data/models")
models=10
common=$'batch_size: 512\nprecision: float32\nplot: false\ncheckpoint: false\n'

for k in $(seq 0 $((models - 1))); do
    [ -f "$dir/seed$k.h5" ] || "$exe" synth "$dir/seed$k.h5" --n 4096 --layers 12 --features 256 --seed "$k" >/dev/null
done
{
    echo "models:"
    for k in $(seq 0 $((models - 1))); do echo "  - {file: seed$k.h5, layers: [\"layer*\"]}"; done
    echo "output: one-pass"
    echo "$common"
} >"$dir/one.yaml"
pairs=()
for a in $(seq 0 $((models - 1))); do
    for b in $(seq $((a + 1)) $((models - 1))); do
        printf 'x: {file: seed%d.h5, layers: ["layer*"]}\ny: {file: seed%d.h5, layers: ["layer*"]}\noutput: pair-%d-%d\n%s\n' \
            "$a" "$b" "$a" "$b" "$common" >"$dir/pair-$a-$b.yaml"
        pairs+=("pair-$a-$b.yaml")
    done
done

# Runs the configs one after another: prints "SECONDS BYTES".
timed() {
    local io t0 t1
    io=$(mktemp)
    t0=$(date +%s.%N)
    for cfg in "$@"; do
        (cd "$dir" && IO_COUNT_OUT=$io mpirun -np "$np" "$count" "$exe" run "$cfg" --force --quiet >/dev/null)
    done
    t1=$(date +%s.%N)
    echo "$(awk -v a="$t0" -v b="$t1" 'BEGIN { print b - a }') $(awk '$1 == "rchar:" { s += $2 } END { print s }' "$io")"
    rm -f "$io"
}

timed one.yaml >/dev/null # warm the page cache
runs=""
for _ in $(seq "$repeat"); do runs+="$(timed one.yaml) $(timed "${pairs[@]}")"$'\n'; done
input=$(du -cb "$dir"/seed*.h5 | awk 'END { print $1 }')

# The one pass and the pairwise runs agree (one block, to 1e-12).
/usr/bin/python3 - "$dir" <<'PY'
import sys, h5py, numpy as np
d = sys.argv[1]
one, pair = h5py.File(f"{d}/one-pass/cka.h5", "r"), h5py.File(f"{d}/pair-3-7/cka.h5", "r")
off = one["model_offsets"][()]
block = one["cka"][off[3]:off[4], off[7]:off[8]]
err = np.abs(block - pair["cka"][()]).max()
assert err < 1e-12, err
print(f"one pass, block (seed3, seed7) against its pairwise run: largest difference {err:.1e}")
PY
echo "| $models models x 12 layers, $np rank(s) | one pass | $(( models * (models - 1) / 2 )) pairwise runs | ratio |"
echo "|---|---|---|---|"
awk -v input="$input" '
    function median(v, n,   i, j, t) {
        for (i = 1; i <= n; i++) for (j = i + 1; j <= n; j++) if (v[j] < v[i]) { t = v[i]; v[i] = v[j]; v[j] = t }
        return n % 2 ? v[(n + 1) / 2] : (v[n / 2] + v[n / 2 + 1]) / 2
    }
    NF == 4 { n++; ta[n] = $1; tb[n] = $3; r[n] = $1 / $3; ba = $2; bb = $4 }
    END {
        printf "| wall time, s (median of %d) | %.2f | %.2f | %.3f |\n", n, median(ta, n), median(tb, n), median(r, n)
        printf "| MiB read (input files: %.0f MiB) | %.0f | %.0f | %.3f |\n", input / 1048576, ba / 1048576,
               bb / 1048576, ba / bb
        printf "| reads of each file (MiB read / input) | %.2f | %.2f | |\n", ba / input, bb / input
    }' <<<"$runs"
