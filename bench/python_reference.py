#!/usr/bin/python3
"""Minibatch CKA the way the Python tools compute it, for comparison with mpicka.

Reads the same HDF5 files and config as `mpicka run` (only the keys needed
here), holds every layer in memory, and computes per minibatch and per layer
pair the unbiased HSIC_1 of Song et al. from the formula, with explicit
m-by-m products (O(m^3) per pair), as ckatorch-style code does. Then it prints
the largest difference from mpicka's cka.h5 and the time taken.

  /usr/bin/python3 bench/python_reference.py configs/demo.yaml results/demo/cka.h5

Needs Debian's python3-h5py and python3-numpy. Shuffled configs are compared
on mpicka's own batch order, read from nowhere: use shuffle: false here.
"""
import fnmatch
import re
import sys
import time

import h5py
import numpy as np


def natural_key(s):
    return [int(t) if t.isdigit() else t for t in re.split(r"(\d+)", s)]


def simple_yaml(path):
    """Just enough YAML for mpicka's flat configs (two levels, flow lists)."""
    cfg, section = {}, None
    for raw in open(path):
        line = raw.split("#", 1)[0].rstrip()
        if not line.strip():
            continue
        key, _, value = line.strip().partition(":")
        value = value.strip()
        if not line.startswith(" "):
            section = None
            if value == "":
                section = cfg.setdefault(key, {})
                continue
            cfg[key] = value
        else:
            section[key] = value
    return cfg


def layer_names(h5, patterns):
    items = []
    h5.visititems(lambda name, obj: items.append(name) if isinstance(obj, h5py.Dataset) else None)
    items.sort(key=natural_key)
    names = []
    for pat in patterns:
        pat = pat.strip().strip('"').strip("'")
        if any(c in pat for c in "*?["):
            names += [n for n in items if fnmatch.fnmatchcase(n, pat) and n.count("/") == pat.count("/")]
        else:
            names.append(pat)
    return names


def load(section):
    with h5py.File(section["file"].strip('"'), "r") as f:
        pats = section["layers"].strip("[]").split(",")
        names = layer_names(f, pats)
        return names, [f[n][()].reshape(f[n].shape[0], -1).astype(np.float64) for n in names]


def hsic1(k, l):
    m = k.shape[0]
    k = k.copy()
    l = l.copy()
    np.fill_diagonal(k, 0.0)
    np.fill_diagonal(l, 0.0)
    one = np.ones(m)
    kl = k @ l
    return (np.trace(kl) + (one @ k @ one) * (one @ l @ one) / ((m - 1) * (m - 2))
            - 2.0 / (m - 2) * (one @ kl @ one)) / (m * (m - 3))


def main():
    cfg = simple_yaml(sys.argv[1])
    m = int(cfg.get("batch_size", 256))
    t0 = time.perf_counter()
    xn, xs = load(cfg["x"])
    yn, ys = load(cfg["y"]) if "y" in cfg else (xn, xs)
    n = xs[0].shape[0]
    hxy = np.zeros((len(xs), len(ys)))
    hxx = np.zeros(len(xs))
    hyy = np.zeros(len(ys))
    starts = [s for s in range(0, n, m) if min(s + m, n) - s >= 4]
    for s in starts:
        grams_x = [(a[s:s + m] - a[s:s + m].mean(0)) @ (a[s:s + m] - a[s:s + m].mean(0)).T for a in xs]
        grams_y = [(a[s:s + m] - a[s:s + m].mean(0)) @ (a[s:s + m] - a[s:s + m].mean(0)).T for a in ys]
        for i, k in enumerate(grams_x):
            hxx[i] += hsic1(k, k)
            for j, l in enumerate(grams_y):
                hxy[i, j] += hsic1(k, l)
        for j, l in enumerate(grams_y):
            hyy[j] += hsic1(l, l)
    cka = hxy / np.sqrt(np.outer(hxx, hyy))
    seconds = time.perf_counter() - t0
    with h5py.File(sys.argv[2], "r") as f:
        theirs = f["cka"][()]
    print(f"python reference: {len(xs)}x{len(ys)} layers, n={n}, m={m}: {seconds:.2f} s")
    print(f"max |mpicka - python| = {np.nanmax(np.abs(theirs - cka)):.3g}")


if __name__ == "__main__":
    main()
