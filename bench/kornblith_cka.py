#!/usr/bin/python3
"""Exact linear CKA the way Kornblith et al.'s numpy code computes it.

Written here from the formula of feature_space_linear_cka (Kornblith et al.
2019): centre each layer's features, then
    CKA(X, Y) = |Y^T X|_F^2 / (|X^T X|_F |Y^T Y|_F),
one call per layer pair, every layer held in memory in float64. For x
against itself only the pairs i <= j are computed (the matrix is symmetric);
for x against y, every pair. Prints the time of the pairs and, given
mpicka's cka.h5 of the same data (estimator: exact, debiased: false), the
largest difference from it.

  /usr/bin/python3 bench/kornblith_cka.py X.h5 [Y.h5] [--check cka.h5]

Run it with OPENBLAS_NUM_THREADS=1 for one core. Every dataset of a file is
a layer, in natural order of names.
"""
import re
import sys
import time

import h5py
import numpy as np


def natural_key(s):
    return [int(t) if t.isdigit() else t for t in re.split(r"(\d+)", s)]


def load(path):
    """Every dataset of path as an (n, features) float64 array, in natural order."""
    with h5py.File(path, "r") as f:
        names = []
        f.visititems(lambda name, obj: names.append(name) if isinstance(obj, h5py.Dataset) else None)
        names.sort(key=natural_key)
        return [f[n][()].reshape(f[n].shape[0], -1).astype(np.float64) for n in names]


def feature_space_linear_cka(features_x, features_y):
    """Linear CKA of two (n, p) arrays, centred here (HSIC_0, biased)."""
    features_x = features_x - np.mean(features_x, 0, keepdims=True)
    features_y = features_y - np.mean(features_y, 0, keepdims=True)
    dot_product_similarity = np.linalg.norm(features_x.T.dot(features_y)) ** 2
    normalization_x = np.linalg.norm(features_x.T.dot(features_x))
    normalization_y = np.linalg.norm(features_y.T.dot(features_y))
    return dot_product_similarity / (normalization_x * normalization_y)


def all_pairs(xs, ys):
    """The CKA matrix; ys None: x against itself (pairs i <= j, mirrored)."""
    same = ys is None
    ys = xs if same else ys
    out = np.empty((len(xs), len(ys)))
    for i, x in enumerate(xs):
        for j, y in enumerate(ys):
            if same and j < i:
                out[i, j] = out[j, i]
            else:
                out[i, j] = feature_space_linear_cka(x, y)
    return out


def main(argv):
    check = None
    if "--check" in argv:
        k = argv.index("--check")
        check = argv[k + 1]
        argv = argv[:k] + argv[k + 2:]
    if not 1 <= len(argv) <= 2:
        sys.exit(__doc__)
    t0 = time.perf_counter()
    xs = load(argv[0])
    ys = load(argv[1]) if len(argv) == 2 else None
    t1 = time.perf_counter()
    cka = all_pairs(xs, ys)
    t2 = time.perf_counter()
    line = f"read {t1 - t0:.3f} s, pairs {t2 - t1:.3f} s"
    if check:
        with h5py.File(check, "r") as f:
            line += f", max |numpy - mpicka| {np.max(np.abs(cka - f['cka'][()])):.3g}"
    print(line)


if __name__ == "__main__":
    main(sys.argv[1:])
