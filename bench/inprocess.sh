#!/usr/bin/env bash
# In-process CKA (mpicka.compare) against export then `mpicka run`, on the
# same models and data, in one run on one machine (issue 20): two ResNet-18s
# (random weights) on N images of PX px, nine layers each, batch_size 256.
# For each route: wall time, peak memory (max RSS of the largest process,
# /usr/bin/time -v), and the bytes left on disk (activations and result).
# Target: compare takes no longer than the export alone and writes only the
# result.
#
#   bench/inprocess.sh            # N=2048 PX=64 NP=2 (ranks of mpicka run)
#
# Environment: BUILD_DIR (build; libmpicka.so is looked for there), N, PX,
# NP, WORK (a temporary folder, removed at the end).
set -euo pipefail
cd "$(dirname "$0")/.."
build=$(realpath "${BUILD_DIR:-build}")
n=${N:-2048}
px=${PX:-64}
np=${NP:-2}
work=${WORK:-$(mktemp -d)}
trap 'rm -rf "$work"' EXIT
export PYTHONPATH=$PWD/python MPICKA_BUILD=$build PYTHONDONTWRITEBYTECODE=1
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMPI_MCA_rmaps_base_oversubscribe=1
export OPENBLAS_NUM_THREADS=1 OMPI_MCA_pml=ob1 OMPI_MCA_btl=self,vader
py=/usr/bin/python3

measure() {   # label, command...: one line of the table
    local label=$1
    local log=$work/$label.time
    shift
    /usr/bin/time -v "$@" >"$work/$label.out" 2>"$log" || { cat "$work/$label.out" "$log" >&2; exit 1; }
    local wall rss
    wall=$(awk -F': ' '/Elapsed \(wall clock\)/ {n = split($2, t, ":"); s = 0; for (i = 1; i <= n; i++) s = s * 60 + t[i]; print s}' "$log")
    rss=$(awk -F': ' '/Maximum resident set size/ {printf "%.0f", $2 / 1024}' "$log")
    printf '%-28s %9.1f s %9s MiB\n' "$label" "$wall" "$rss"
}

bytes() { du -sb "$1" 2>/dev/null | cut -f1; }

echo "two ResNet-18s, n=$n, ${px}x${px}, 9 layers, batch_size 256; torch threads: $($py -c 'import torch; print(torch.get_num_threads())'); mpicka run on $np ranks"
printf '%-28s %11s %13s\n' route wall "peak RSS"
measure "compare (in-process)" $py bench/inprocess.py compare "$work/inproc" "$n" "$px"
measure "export" $py bench/inprocess.py export "$work/files" "$n" "$px"
measure "mpicka run ($np ranks)" mpirun -np "$np" "$build/mpicka" run "$work/files/run.yaml" --quiet
echo "bytes on disk: compare $(bytes "$work/inproc") (result only: $(ls "$work/inproc/out" | tr '\n' ' '))"
echo "               export + run $(bytes "$work/files") (activations $(bytes "$work/files/acts"), result $(bytes "$work/files/out"))"
$py - "$work" <<'PY'
import sys, h5py, numpy as np
w = sys.argv[1]
a, b = (h5py.File(f"{w}/{d}/out/cka.h5", "r")["cka"][()] for d in ("inproc", "files"))
print("same /cka bits on both routes:", a.tobytes() == b.tobytes(), "; max |diff|", float(np.nanmax(np.abs(a - b))))
PY
