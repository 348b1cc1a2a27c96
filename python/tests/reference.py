"""The float64 reference: minibatch CKA from unbiased HSIC_1, computed the
naive way from the formula (docs/maths.md, "The maths in brief"), with none of
mpicka's shortcuts (no U-centring, no stacked products)."""

import numpy as np

from mkt import hsic1  # Song et al.'s unbiased HSIC, term by term (shared with tests/)


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
