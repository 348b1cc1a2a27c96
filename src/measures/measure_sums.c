#include "mpicka/measure_sums.h"

#include <stdlib.h>

int mk_measures_outputs(const mk_measure *ms, int nms)
{
    const char *names[2];
    int count = 0;
    for (int k = 0; k < nms; k++) count += mk_measure_outputs(ms[k].kind, names);
    return count;
}

/* Layer l's centred covariance with layer m's, in the units of the data. */
static double *cov_block(const mk_exact *e, const double *sums, int64_t n, const double *scale, int l, int m,
                         mk_err *err)
{
    double *c = mk_malloc((size_t)(e->p[l] * e->p[m]) * sizeof *c, "a covariance block", err);
    if (!c) return NULL;
    mk_exact_cov(e, sums, n, l, m, c);
    double un = scale ? 1.0 / (scale[l] * scale[m]) : 1.0; /* powers of two: exact */
    for (int64_t k = 0; un != 1.0 && k < e->p[l] * e->p[m]; k++) c[k] *= un;
    return c;
}

/* The uncentred sum of squares of layer l's values, sum_f C_ff + n mean_f^2
 * (the means: the shifted sums' plus the shift), in the units of the data. */
static double squares(const mk_exact *e, const double *sums, int64_t n, const double *scale, int l, const double *c)
{
    const double *s = sums + e->P * (e->P + 1) / 2;
    double dn = (double)n, total = 0.0, un = scale ? 1.0 / scale[l] : 1.0;
    for (int64_t f = 0; f < e->p[l]; f++) {
        double mean = (s[e->off[l] + f] / dn + e->mu0[e->off[l] + f]) * un;
        total += c[f * e->p[l] + f] + dn * mean * mean;
    }
    return total;
}

static mk_err prepare(const mk_exact *e, const double *sums, int64_t n, const double *scale, int l, mk_mlayer *out)
{
    mk_err err = MK_OK;
    double *c = cov_block(e, sums, n, scale, l, l, &err);
    if (!err) err = mk_mlayer_init(out, e->p[l], c, squares(e, sums, n, scale, l, c));
    free(c);
    return err;
}

/* Every measure of the pair (i, j) into its cell of every matrix. */
static mk_err one_pair(const mk_exact *e, const double *sums, int64_t n, const double *scale, const mk_mlayer *lay,
                       int i, int j, const mk_measure *ms, int nms, double *values, int64_t cells, int64_t cell)
{
    mk_err err = MK_OK;
    double *cxy = cov_block(e, sums, n, scale, i, j, &err), out[2];
    for (int k = 0, o = 0; !err && k < nms; k++) {
        const char *names[2];
        int nout = mk_measure_outputs(ms[k].kind, names);
        err = mk_measure_pair(&ms[k], &lay[i], &lay[j], cxy, out);
        for (int q = 0; !err && q < nout; q++, o++) values[o * cells + cell] = out[q];
    }
    free(cxy);
    return err;
}

mk_err mk_measures_from_exact(const mk_exact *e, const double *sums, int64_t n, const double *scale, int nx, int ny,
                              int y_first, const mk_measure *ms, int nms, double *values, int64_t *ranks)
{
    int L = e->nlayers;
    mk_err err = MK_OK;
    mk_mlayer *lay = mk_calloc((size_t)L, sizeof *lay, "the layers' eigendecompositions", &err);
    for (int l = 0; !err && l < L; l++) {
        int used = l < nx || (l >= y_first && l < y_first + ny);
        if (used) err = prepare(e, sums, n, scale, l, &lay[l]);
        if (ranks) ranks[l] = lay ? lay[l].rank : 0;
    }
    int64_t cells = (int64_t)nx * ny;
    for (int i = 0; !err && i < nx; i++)
        for (int j = 0; !err && j < ny; j++)
            err = one_pair(e, sums, n, scale, lay, i, y_first + j, ms, nms, values, cells, (int64_t)i * ny + j);
    for (int l = 0; lay && l < L; l++) mk_mlayer_free(&lay[l]);
    free(lay);
    return err;
}
