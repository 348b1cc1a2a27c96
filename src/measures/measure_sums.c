#include "mpicka/measure_sums.h"

#include <stdio.h>
#include <stdlib.h>

int mk_measures_outputs(const mk_measure *ms, int nms)
{
    const char *names[2];
    int count = 0;
    for (int k = 0; k < nms; k++) count += mk_measure_outputs(ms[k].kind, names);
    return count;
}

/* Layer l's centred covariance with layer m's, in the units of the values
 * as scaled (mk_mlayer.unit says by how much). */
static double *cov_block(const mk_exact *e, const double *sums, int64_t n, int l, int m, mk_err *err)
{
    double *c = mk_malloc((size_t)(e->p[l] * e->p[m]) * sizeof *c, "a covariance block", err);
    if (c) mk_exact_cov(e, sums, n, l, m, c);
    return c;
}

/* The uncentred sum of squares of layer l's values, sum_f C_ff + n mean_f^2
 * (the means: the shifted sums' plus the shift), in the units of c. */
static double squares(const mk_exact *e, const double *sums, int64_t n, int l, const double *c)
{
    const double *s = sums + e->P * (e->P + 1) / 2;
    double dn = (double)n, total = 0.0;
    for (int64_t f = 0; f < e->p[l]; f++) {
        double mean = s[e->off[l] + f] / dn + e->mu0[e->off[l] + f];
        total += c[f * e->p[l] + f] + dn * mean * mean;
    }
    return total;
}

static mk_err prepare(const mk_exact *e, const double *sums, int64_t n, const double *scale, int l, mk_mlayer *out)
{
    mk_err err = MK_OK;
    double *c = cov_block(e, sums, n, l, l, &err);
    if (!err) err = mk_mlayer_init(out, e->p[l], c, squares(e, sums, n, l, c));
    if (!err && scale) out->unit = scale[l];
    free(c);
    return err;
}

/* Every measure of the pair (i, j) into its cell of every matrix; with
 * mirrored, only those that are not symmetric (the others come from (j, i)). */
static mk_err one_pair(const mk_exact *e, const double *sums, int64_t n, const mk_mlayer *lay, int i, int j,
                       const mk_measure *ms, int nms, int mirrored, double *values, int64_t cells, int64_t cell)
{
    mk_measure want[MK_MEASURE_KINDS];
    int at[MK_MEASURE_KINDS], nwant = 0, o = 0;
    const char *names[2];
    for (int k = 0; k < nms && nwant < MK_MEASURE_KINDS; o += mk_measure_outputs(ms[k].kind, names), k++)
        if (!mirrored || !mk_measure_symmetric(ms[k].kind)) at[nwant] = o, want[nwant++] = ms[k];
    if (!nwant) return MK_OK;
    mk_err err = MK_OK;
    double *cxy = cov_block(e, sums, n, i, j, &err), out[2 * MK_MEASURE_KINDS];
    if (!err) err = mk_measure_pair(want, nwant, &lay[i], &lay[j], cxy, out);
    for (int k = 0, q = 0; !err && k < nwant; k++)
        for (int r = 0; r < mk_measure_outputs(want[k].kind, names); r++, q++) values[(at[k] + r) * cells + cell] = out[q];
    free(cxy);
    return err;
}

/* What the threads share; each task writes its own slot of err and msg. */
typedef struct {
    const mk_exact *e;
    const double *sums, *scale;
    int64_t n;
    int nx, ny, y_first, nms;
    const mk_measure *ms;
    double *values;
    mk_mlayer *lay;
    mk_err *err;           /* per task */
    char (*msg)[256];      /* per task: its message (mk_errmsg is per thread) */
} job;

static void keep_error(const job *j, int64_t k, mk_err err)
{
    j->err[k] = err;
    if (err) snprintf(j->msg[k], sizeof j->msg[k], "%s", mk_errmsg());
}

static void layer_task(void *ctx, int64_t l)
{
    const job *j = ctx;
    int used = l < j->nx || (l >= j->y_first && l < j->y_first + j->ny);
    keep_error(j, l, used ? prepare(j->e, j->sums, j->n, j->scale, (int)l, &j->lay[l]) : MK_OK);
}

static void pair_task(void *ctx, int64_t k)
{
    const job *j = ctx;
    int i = (int)(k / j->ny), y = j->y_first + (int)(k % j->ny), mirrored = j->y_first == 0 && y < i;
    keep_error(j, k, one_pair(j->e, j->sums, j->n, j->lay, i, y, j->ms, j->nms, mirrored, j->values,
                              (int64_t)j->nx * j->ny, k));
}

/* A self comparison: the symmetric measures' lower triangles from their
 * upper ones, so that those matrices are symmetric to the bit. */
static void mirror(const job *j)
{
    const char *names[2];
    int64_t cells = (int64_t)j->nx * j->ny;
    for (int k = 0, o = 0; k < j->nms; o += mk_measure_outputs(j->ms[k].kind, names), k++)
        for (int r = 0; r < mk_measure_outputs(j->ms[k].kind, names) && mk_measure_symmetric(j->ms[k].kind); r++)
            for (int a = 0; a < j->nx; a++)
                for (int b = 0; b < a; b++)
                    j->values[(o + r) * cells + (int64_t)a * j->ny + b] = j->values[(o + r) * cells + (int64_t)b * j->ny + a];
}

/* The first failure in task order (whatever thread met it), with its message. */
static mk_err first_error(const job *j, int64_t tasks)
{
    for (int64_t k = 0; k < tasks; k++)
        if (j->err[k]) return mk_fail(j->err[k], "%s", j->msg[k]);
    return MK_OK;
}

mk_err mk_measures_from_exact(const mk_exact *e, const double *sums, int64_t n, const double *scale, int nx, int ny,
                              int y_first, const mk_measure *ms, int nms, mk_par *par, double *values,
                              int64_t *ranks)
{
    int L = e->nlayers;
    int64_t tasks = (int64_t)nx * ny > L ? (int64_t)nx * ny : L;
    mk_err err = MK_OK;
    job j = {e, sums, scale, n, nx, ny, y_first, nms, ms, values, NULL, NULL, NULL};
    j.lay = mk_calloc((size_t)L, sizeof *j.lay, "the layers' eigendecompositions", &err);
    if (!err) j.err = mk_calloc((size_t)tasks, sizeof *j.err, "the measures' verdicts", &err);
    if (!err) j.msg = mk_calloc((size_t)tasks, sizeof *j.msg, "the measures' verdicts", &err);
    if (!err) mk_par_for(par, L, layer_task, &j);
    if (!err) err = first_error(&j, L);
    for (int l = 0; !err && ranks && l < L; l++) ranks[l] = j.lay[l].rank;
    if (!err) mk_par_for(par, (int64_t)nx * ny, pair_task, &j);
    if (!err) err = first_error(&j, (int64_t)nx * ny);
    if (!err && y_first == 0) mirror(&j);
    for (int l = 0; j.lay && l < L; l++) mk_mlayer_free(&j.lay[l]);
    free(j.lay);
    free(j.err);
    free(j.msg);
    return err;
}
