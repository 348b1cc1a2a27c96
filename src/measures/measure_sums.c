#include "mpicka/measure_sums.h"

#include <stdio.h>
#include <stdlib.h>

#include "mpicka/gram_measures.h"

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
    const double *s = sums + e->row[e->P];
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
        if (!mk_gram_measure(ms[k].kind) && (!mirrored || !mk_measure_symmetric(ms[k].kind)))
            at[nwant] = o, want[nwant++] = ms[k]; /* the Gram measures' cells are the batches' (gram_measures.h) */
    if (!nwant) return MK_OK;
    mk_err err = MK_OK;
    double *cxy = cov_block(e, sums, n, i, j, &err), out[2 * MK_MEASURE_KINDS];
    if (!err) err = mk_measure_pair(want, nwant, &lay[i], &lay[j], cxy, out);
    for (int k = 0, q = 0; !err && k < nwant; k++)
        for (int r = 0; r < mk_measure_outputs(want[k].kind, names); r++, q++) values[(at[k] + r) * cells + cell] = out[q];
    free(cxy);
    return err;
}

/* Whether pair k of the share gives anything: in a self comparison, a
 * mirrored pair (y < x) only when some measure is not symmetric. */
static int has_work(const mk_measure_share *sh, const mk_measure *ms, int nms, int64_t k)
{
    int x = (int)(k / sh->ny), y = sh->y_first + (int)(k % sh->ny);
    if (sh->y_first != 0 || y >= x) return 1;
    for (int q = 0; q < nms; q++)
        if (!mk_gram_measure(ms[q].kind) && !mk_measure_symmetric(ms[q].kind)) return 1;
    return 0;
}

/* What the threads share; each task writes its own slot of err and msg. */
typedef struct {
    const mk_exact *e;
    const double *sums, *scale;
    int64_t n;
    const mk_measure_share *sh;
    int nms;
    const mk_measure *ms;
    double *values;
    mk_mlayer *lay;
    const char *need;      /* per layer: used by a pair of the share */
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
    keep_error(j, l, j->need[l] ? prepare(j->e, j->sums, j->n, j->scale, (int)l, &j->lay[l]) : MK_OK);
}

/* Task t is the share's t-th pair. */
static void pair_task(void *ctx, int64_t t)
{
    const job *j = ctx;
    int64_t k = j->sh->first + t * j->sh->stride;
    int i = (int)(k / j->sh->ny), y = j->sh->y_first + (int)(k % j->sh->ny), mirrored = j->sh->y_first == 0 && y < i;
    keep_error(j, t, one_pair(j->e, j->sums, j->n, j->lay, i, y, j->ms, j->nms, mirrored, j->values,
                              (int64_t)j->sh->nx * j->sh->ny, k));
}

void mk_measures_mirror(const mk_measure *ms, int nms, int nx, int ny, double *values)
{
    const char *names[2];
    int64_t cells = (int64_t)nx * ny;
    for (int k = 0, o = 0; k < nms; o += mk_measure_outputs(ms[k].kind, names), k++)
        for (int r = 0; r < mk_measure_outputs(ms[k].kind, names) && mk_measure_symmetric(ms[k].kind) &&
                        !mk_gram_measure(ms[k].kind); r++)
            for (int a = 0; a < nx; a++)
                for (int b = 0; b < a; b++)
                    values[(o + r) * cells + (int64_t)a * ny + b] = values[(o + r) * cells + (int64_t)b * ny + a];
}

int64_t mk_measure_share_pairs(const mk_measure_share *sh)
{
    int64_t cells = (int64_t)sh->nx * sh->ny;
    return sh->first < cells ? (cells - sh->first + sh->stride - 1) / sh->stride : 0;
}

/* The first failure in task order (whatever thread met it), with its
 * message; *failed gets base + first + its index times stride. */
static mk_err first_error(const job *j, int64_t tasks, int64_t base, int64_t first, int64_t stride, int64_t *failed)
{
    for (int64_t k = 0; k < tasks; k++)
        if (j->err[k]) {
            *failed = base + first + k * stride;
            return mk_fail(j->err[k], "%s", j->msg[k]);
        }
    return MK_OK;
}

/* The layers the share's pairs use, and those pairs that give anything. */
static void plan_share(job *j, char *need, mk_measure_tally *tally)
{
    const mk_measure_share *sh = j->sh;
    for (int64_t t = 0, pairs = mk_measure_share_pairs(sh); t < pairs; t++) {
        int64_t k = sh->first + t * sh->stride;
        if (!has_work(sh, j->ms, j->nms, k)) continue;
        need[k / sh->ny] = need[sh->y_first + k % sh->ny] = 1;
        tally->pairs++;
    }
    for (int l = 0; l < j->e->nlayers; l++) tally->layers += need[l];
}

mk_err mk_measures_from_exact(const mk_exact *e, const double *sums, int64_t n, const double *scale,
                              const mk_measure_share *share, const mk_measure *ms, int nms, mk_par *par,
                              double *values, int64_t *ranks, mk_measure_tally *tally)
{
    int L = e->nlayers;
    int64_t pairs = mk_measure_share_pairs(share), tasks = pairs > L ? pairs : L;
    mk_err err = MK_OK;
    char *need = NULL;
    job j = {e, sums, scale, n, share, nms, ms, values, NULL, NULL, NULL, NULL};
    *tally = (mk_measure_tally){0, 0, -1};
    j.lay = mk_calloc((size_t)L, sizeof *j.lay, "the layers' eigendecompositions", &err);
    if (!err) j.need = need = mk_calloc((size_t)L, 1, "the layers' eigendecompositions", &err);
    if (!err) j.err = mk_calloc((size_t)tasks, sizeof *j.err, "the measures' verdicts", &err);
    if (!err) j.msg = mk_calloc((size_t)tasks, sizeof *j.msg, "the measures' verdicts", &err);
    if (!err) plan_share(&j, need, tally);
    if (!err) mk_par_for(par, L, layer_task, &j);
    if (!err) err = first_error(&j, L, 0, 0, 1, &tally->failed);
    for (int l = 0; !err && ranks && l < L; l++) ranks[l] = need[l] ? j.lay[l].rank : -1;
    if (!err) mk_par_for(par, pairs, pair_task, &j);
    if (!err) err = first_error(&j, pairs, L, share->first, share->stride, &tally->failed);
    for (int l = 0; j.lay && l < L; l++) mk_mlayer_free(&j.lay[l]);
    free(j.lay);
    free(need);
    free(j.err);
    free(j.msg);
    return err;
}
