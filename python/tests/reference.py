"""The float64 reference: minibatch CKA from unbiased HSIC_1, computed the
naive way from the formula (README, "The maths in brief"), with none of
mpicka's shortcuts (no U-centring, no stacked products)."""

import numpy as np


def hsic1(K, L):
    """Song et al.'s unbiased HSIC of two m x m Grams, term by term."""
    m = K.shape[0]
    K, L = K.copy(), L.copy()
    np.fill_diagonal(K, 0.0)
    np.fill_diagonal(L, 0.0)
    one = np.ones(m)
    trace = np.trace(K @ L)
    cross = (one @ K @ one) * (one @ L @ one) / ((m - 1) * (m - 2))
    mixed = 2.0 / (m - 2) * (one @ K @ L @ one)
    return (trace + cross - mixed) / (m * (m - 3))


def batches(n, m):
    """mpicka's unshuffled batches: [b*m, (b+1)*m), a last partial one kept
    when it has at least 4 examples."""
    return [(lo, min(n, lo + m)) for lo in range(0, n, m) if min(n, lo + m) - lo >= 4]


def minibatch_cka(xs, ys, m):
    """CKA matrix (len(xs) x len(ys)) of lists of (n, ...) arrays, in float64."""
    n = xs[0].shape[0]
    xy = np.zeros((len(xs), len(ys)))
    xx, yy = np.zeros(len(xs)), np.zeros(len(ys))
    for lo, hi in batches(n, m):
        gx = [_gram(a[lo:hi]) for a in xs]
        gy = [_gram(b[lo:hi]) for b in ys]
        xx += [hsic1(K, K) for K in gx]
        yy += [hsic1(L, L) for L in gy]
        xy += np.array([[hsic1(K, L) for L in gy] for K in gx])
    return xy / np.sqrt(np.outer(xx, yy))


def _gram(a):
    z = np.asarray(a, dtype=np.float64).reshape(a.shape[0], -1)
    return z @ z.T
