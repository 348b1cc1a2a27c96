#include "mpicka/gram_measures.h"

#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int mk_gram_measure(mk_measure_kind kind)
{
    return kind == MK_MEASURE_RSA || kind == MK_MEASURE_MUTUAL_KNN || kind == MK_MEASURE_CKNNA ||
           kind == MK_MEASURE_JACCARD;
}

static int is_knn(mk_measure_kind kind) { return mk_gram_measure(kind) && kind != MK_MEASURE_RSA; }

void mk_gram_spec_init(mk_gram_spec *s, const mk_measure *ms, int nms, int64_t m_max)
{
    *s = (mk_gram_spec){.ms = ms, .nms = nms, .m_max = m_max, .rsa = -1};
    for (int k = 0; k < nms; k++) {
        if (!mk_gram_measure(ms[k].kind)) continue;
        s->outs++;
        if (ms[k].kind == MK_MEASURE_RSA) s->rsa = k;
        else if (ms[k].k > s->kmax) s->kmax = ms[k].k;
    }
    if (s->kmax > m_max - 1) s->kmax = m_max - 1; /* the config refuses more; a tail batch has fewer */
}

static int64_t tri(int64_t m) { return m * (m - 1) / 2; }

/* (value, index) for Spearman's ranks: sorted by value, ties by index. */
typedef struct {
    double v;
    int64_t i;
} ranked;

double mk_gram_bytes(const mk_gram_spec *s, int L, int64_t cells, int threads)
{
    if (!s->outs) return 0.0;
    double m = (double)s->m_max, t = (double)tri(s->m_max), lists = 12.0 * m * (double)s->kmax, knn = 0.0;
    for (int k = 0; k < s->nms; k++) knn += is_knn(s->ms[k].kind);
    double layers = (double)L * (lists + (s->rsa >= 0 ? 8.0 * t : 0.0));
    double work = 48.0 * m + (s->rsa >= 0 ? 8.0 * t + (s->ms[s->rsa].spearman ? 2.0 * (double)sizeof(ranked) * t : 0.0)
                                          : 0.0);
    double pairs = knn * (double)L * (lists + 8.0) + (double)threads * 16.0 * m + 8.0 * (double)s->outs * (double)cells;
    return layers + work + pairs;
}

void mk_gram_layer_free(mk_gram_layer *l)
{
    free(l->rdm);
    free(l->nn);
    free(l->cos);
    memset(l, 0, sizeof *l);
}

mk_err mk_gram_layer_init(mk_gram_layer *l, const mk_gram_spec *s)
{
    mk_err err = MK_OK;
    memset(l, 0, sizeof *l);
    if (s->rsa >= 0) l->rdm = mk_malloc((size_t)tri(s->m_max) * sizeof *l->rdm, "a layer's RDM", &err);
    if (!err && s->kmax) l->nn = mk_malloc((size_t)(s->m_max * s->kmax) * sizeof *l->nn, "neighbours", &err);
    if (!err && s->kmax) l->cos = mk_malloc((size_t)(s->m_max * s->kmax) * sizeof *l->cos, "neighbours", &err);
    if (err) mk_gram_layer_free(l);
    return err;
}

void mk_gram_work_free(mk_gram_work *w)
{
    free(w->d);
    free(w->order);
    free(w->e);
    memset(w, 0, sizeof *w);
}

mk_err mk_gram_work_init(mk_gram_work *w, const mk_gram_spec *s)
{
    mk_err err = MK_OK;
    int64_t t = tri(s->m_max);
    memset(w, 0, sizeof *w);
    w->e = mk_malloc((size_t)(6 * s->m_max) * sizeof *w->e, "per-example sums", &err);
    if (!err && s->rsa >= 0) w->d = mk_malloc((size_t)t * sizeof *w->d, "an RDM", &err);
    if (!err && s->rsa >= 0 && s->ms[s->rsa].spearman)
        w->order = mk_malloc((size_t)(2 * t) * sizeof(ranked), "an RDM's ranks", &err);
    if (err) mk_gram_work_free(w);
    return err;
}

/* ---- one layer ---- */

static double at(const void *buf, mk_precision prec, int64_t k)
{
    return prec == MK_PREC_FLOAT32 ? ((const float *)buf)[k] : ((const double *)buf)[k];
}

/* G[i][j] from the upper triangle. */
static double gram_at(const void *g, mk_precision prec, int64_t m, int64_t i, int64_t j)
{
    return i <= j ? at(g, prec, i * m + j) : at(g, prec, j * m + i);
}

/* What turns the centred Gram C into the Grams the measures use: with the
 * values x_i + mu (x_i centred), the raw Gram is C_ij + s_i + s_j + |mu|^2
 * (s_i = x_i.mu), and the Gram of the row-centred values is
 * C_ij - r_i r_j / p + t_i + t_j + |w|^2 (r_i: x_i's sum, w = mu - mean(mu),
 * t_i = x_i.w). Per example into e: s, r, t, C_ii, and a scale for "zero". */
typedef struct {
    double *s, *r, *t, *c, *big;
    double mm, ww;
    int64_t p;
} extras;

static extras example_sums(double *e, const void *gram, const void *x, const double *mean, mk_precision prec,
                           int64_t m, int64_t p)
{
    extras ex = {e, e + m, e + 2 * m, e + 3 * m, e + 4 * m, 0.0, 0.0, p};
    double msum = 0.0;
    for (int64_t f = 0; f < p; f++) ex.mm += mean[f] * mean[f], msum += mean[f];
    double mbar = msum / (double)p;
    for (int64_t f = 0; f < p; f++) ex.ww += (mean[f] - mbar) * (mean[f] - mbar);
    for (int64_t i = 0; i < m; i++) {
        double s = 0.0, r = 0.0, t = 0.0;
        for (int64_t f = 0; f < p; f++) {
            double v = at(x, prec, i * p + f);
            s += v * mean[f], r += v, t += v * (mean[f] - mbar);
        }
        ex.s[i] = s, ex.r[i] = r, ex.t[i] = t;
        ex.c[i] = at(gram, prec, i * m + i);
        ex.big[i] = MK_GRAM_ZERO * (ex.c[i] + ex.mm);
    }
    return ex;
}

static double raw_at(const extras *ex, const void *g, mk_precision prec, int64_t m, int64_t i, int64_t j)
{
    return gram_at(g, prec, m, i, j) + ex->s[i] + ex->s[j] + ex->mm;
}

static double rowc_at(const extras *ex, const void *g, mk_precision prec, int64_t m, int64_t i, int64_t j)
{
    return gram_at(g, prec, m, i, j) - ex->r[i] * ex->r[j] / (double)ex->p + ex->t[i] + ex->t[j] + ex->ww;
}

/* The RDM's upper triangle into d (row by row, as numpy's triu_indices):
 * rsatoolbox's squared Euclidean distance over the features, or its
 * correlation distance. 0 when an example has no correlation. */
static int rdm(const mk_measure *ms, const extras *ex, const void *g, mk_precision prec, int64_t m, double *d)
{
    double *inv = ex->big + m; /* e[5m..6m) */
    for (int64_t i = 0; i < m && ms->correlation; i++) {
        double z = rowc_at(ex, g, prec, m, i, i);
        if (!(z > ex->big[i])) return 0;
        inv[i] = 1.0 / sqrt(z);
    }
    for (int64_t i = 0, q = 0; i < m; i++)
        for (int64_t j = i + 1; j < m; j++, q++)
            d[q] = ms->correlation ? 1.0 - rowc_at(ex, g, prec, m, i, j) * inv[i] * inv[j]
                                   : (ex->c[i] + ex->c[j] - 2.0 * gram_at(g, prec, m, i, j)) / (double)ex->p;
    return 1;
}

static int by_value(const void *a, const void *b)
{
    const ranked *x = a, *y = b;
    if (x->v != y->v) return x->v < y->v ? -1 : 1;
    return x->i < y->i ? -1 : x->i > y->i;
}

/* A double's bits as an unsigned key in the same order (negatives flipped
 * whole, positives with the sign bit set). */
static uint64_t key_of(double v)
{
    uint64_t u;
    memcpy(&u, &v, sizeof u);
    return u >> 63 ? ~u : u | (UINT64_C(1) << 63);
}

/* o (t pairs, in index order) sorted by value, ties in index order: a
 * stable LSD radix sort on 16-bit digits through tmp (t pairs), which is
 * several times faster than qsort on an RDM. */
static void sort_ranked(ranked *o, ranked *tmp, int64_t t)
{
    static const int bits = 16;
    int64_t *count = malloc(((size_t)1 << bits) * sizeof *count);
    if (!count) { /* no scratch: the same order, slower */
        qsort(o, (size_t)t, sizeof *o, by_value);
        return;
    }
    for (int pass = 0; pass < 64 / bits; pass++) {
        memset(count, 0, ((size_t)1 << bits) * sizeof *count);
        for (int64_t q = 0; q < t; q++) count[(key_of(o[q].v) >> (pass * bits)) & 0xffff]++;
        for (int64_t d = 0, at = 0; d < ((int64_t)1 << bits); d++) {
            int64_t c = count[d];
            count[d] = at, at += c;
        }
        for (int64_t q = 0; q < t; q++) tmp[count[(key_of(o[q].v) >> (pass * bits)) & 0xffff]++] = o[q];
        memcpy(o, tmp, (size_t)t * sizeof *o);
    }
    free(count);
}

/* d becomes its ranks from 1, ties given their average rank (scipy's
 * rankdata 'average'). o: 2t pairs of scratch. */
static void ranks(double *d, int64_t t, ranked *o)
{
    for (int64_t q = 0; q < t; q++) o[q] = (ranked){d[q], q};
    sort_ranked(o, o + t, t);
    for (int64_t lo = 0, hi; lo < t; lo = hi) {
        for (hi = lo + 1; hi < t && o[hi].v == o[lo].v; hi++) continue;
        double r = 0.5 * (double)(lo + 1 + hi); /* the mean of ranks lo+1 .. hi */
        for (int64_t q = lo; q < hi; q++) d[o[q].i] = r;
    }
}

/* v centred and scaled to unit norm, so that a Pearson correlation is a dot
 * product; 0 when its entries are all equal (or not finite). */
static int unit(const double *d, int64_t t, double *v)
{
    double mean = 0.0, ss = 0.0;
    for (int64_t q = 0; q < t; q++) mean += d[q];
    mean /= (double)t;
    for (int64_t q = 0; q < t; q++) v[q] = d[q] - mean, ss += v[q] * v[q];
    if (!(ss > 0.0) || !isfinite(ss)) return 0;
    double inv = 1.0 / sqrt(ss);
    for (int64_t q = 0; q < t; q++) v[q] *= inv;
    return 1;
}

/* Rows of the neighbour search, for the threads. */
typedef struct {
    mk_gram_layer *l;
    int64_t kmax, k;
    const extras *ex;
    const void *g;
    mk_precision prec;
    const double *inv;
} nn_ctx;

#define NN_ROWS 32 /* examples per task */

/* Examples [b * NN_ROWS, ...): each one's k nearest (the highest cosine,
 * the lower index on a tie), nearest first, in a list of kmax. */
static void nn_rows(void *ctx, int64_t b)
{
    const nn_ctx *c = ctx;
    int64_t m = c->l->m, k = c->k, end = (b + 1) * NN_ROWS < m ? (b + 1) * NN_ROWS : m;
    for (int64_t i = b * NN_ROWS; i < end; i++) {
        int32_t *nn = c->l->nn + i * c->kmax;
        double *cs = c->l->cos + i * c->kmax;
        int64_t have = 0;
        for (int64_t j = 0; j < m; j++) {
            if (j == i) continue;
            double v = raw_at(c->ex, c->g, c->prec, m, i, j) * c->inv[i] * c->inv[j];
            if (have == k && !(v > cs[k - 1])) continue;
            int64_t q = have < k ? have++ : k - 1; /* the last place, then moved up past the lower cosines */
            for (; q > 0 && v > cs[q - 1]; q--) nn[q] = nn[q - 1], cs[q] = cs[q - 1];
            nn[q] = (int32_t)j, cs[q] = v;
        }
    }
}

/* Each example's kmax nearest; an example of no norm has cosine 0 with
 * every other (as F.normalize makes it a zero vector). */
static void neighbours(mk_gram_layer *l, int64_t kmax, const extras *ex, const void *g, mk_precision prec, mk_par *par)
{
    int64_t m = l->m;
    double *inv = ex->big + m;
    for (int64_t i = 0; i < m; i++) {
        double r = raw_at(ex, g, prec, m, i, i);
        inv[i] = r > ex->big[i] ? 1.0 / sqrt(r) : 0.0;
    }
    nn_ctx c = {l, kmax, kmax < m - 1 ? kmax : m - 1, ex, g, prec, inv};
    mk_par_for(par, (m + NN_ROWS - 1) / NN_ROWS, nn_rows, &c);
}

void mk_gram_layer_put(mk_gram_layer *l, const mk_gram_spec *s, mk_gram_work *w, const void *gram, const void *x,
                       const double *mean, mk_precision prec, int64_t m, int64_t p, int constant)
{
    l->m = m;
    l->valid_rdm = l->valid_knn = 0;
    if (constant) return;
    extras ex = example_sums(w->e, gram, x, mean, prec, m, p);
    if (s->rsa >= 0) {
        const mk_measure *ms = &s->ms[s->rsa];
        l->valid_rdm = rdm(ms, &ex, gram, prec, m, w->d);
        if (l->valid_rdm && ms->spearman) ranks(w->d, tri(m), w->order);
        if (l->valid_rdm) l->valid_rdm = unit(w->d, tri(m), l->rdm);
    }
    if (s->kmax) {
        neighbours(l, s->kmax, &ex, gram, prec, w->par);
        l->valid_knn = 1;
    }
}

int mk_gram_short_batch(const mk_gram_spec *s, int64_t m)
{
    int worst = -1;
    for (int k = 0; k < s->nms; k++)
        if (is_knn(s->ms[k].kind) && s->ms[k].k > m - 1 && (worst < 0 || s->ms[k].k > s->ms[worst].k)) worst = k;
    return worst;
}

/* ---- pairs ---- */

/* One example's k nearest of one layer, sorted by index, with their cosines. */
typedef struct {
    int32_t *idx; /* m by k */
    double *cos;
} by_index;

/* The first k of each row of l's lists, sorted by index (insertion: k is small). */
static void sort_rows(const mk_gram_layer *l, int64_t kmax, int64_t k, by_index *o)
{
    for (int64_t i = 0; i < l->m; i++) {
        int32_t *idx = o->idx + i * k;
        double *cs = o->cos + i * k;
        for (int64_t q = 0; q < k; q++) {
            int32_t j = l->nn[i * kmax + q];
            double c = l->cos[i * kmax + q];
            int64_t at_ = q;
            for (; at_ > 0 && idx[at_ - 1] > j; at_--) idx[at_] = idx[at_ - 1], cs[at_] = cs[at_ - 1];
            idx[at_] = j, cs[at_] = c;
        }
    }
}

static int has(const int32_t *idx, int64_t k, int32_t j)
{
    int64_t lo = 0, hi = k;
    while (lo < hi) {
        int64_t mid = (lo + hi) / 2;
        if (idx[mid] == j) return 1;
        if (idx[mid] < j) lo = mid + 1;
        else hi = mid;
    }
    return 0;
}

/* The unbiased HSIC (Song et al. 2012, as platonic-rep's hsic_unbiased) of
 * A = M o Ka and B = M o Kb, M the mutual neighbours (j in both lists of
 * i): the sum of A_ij B_ji, the sums of A and B, and sum_k colsum(A)_k
 * rowsum(B)_k. colA, rowB: m scratch each. */
static double masked_hsic(const by_index *a, const by_index *b, int64_t m, int64_t k, double *colA, double *rowB)
{
    double trace = 0.0, sa = 0.0, sb = 0.0, cross = 0.0;
    memset(colA, 0, (size_t)m * sizeof *colA);
    memset(rowB, 0, (size_t)m * sizeof *rowB);
    for (int64_t i = 0; i < m; i++) {
        const int32_t *ia = a->idx + i * k, *ib = b->idx + i * k;
        for (int64_t p = 0, q = 0; p < k && q < k;) {
            if (ia[p] != ib[q]) {
                ia[p] < ib[q] ? p++ : q++;
                continue;
            }
            int32_t j = ia[p];
            double ka = a->cos[i * k + p], kb = b->cos[i * k + q];
            sa += ka, sb += kb, colA[j] += ka, rowB[i] += kb;
            if (has(a->idx + j * k, k, (int32_t)i) && has(b->idx + j * k, k, (int32_t)i)) trace += ka * kb;
            p++, q++;
        }
    }
    for (int64_t j = 0; j < m; j++) cross += colA[j] * rowB[j];
    double mm = (double)m;
    return (trace + sa * sb / ((mm - 1.0) * (mm - 2.0)) - 2.0 * cross / (mm - 2.0)) / (mm * (mm - 3.0));
}

/* Mutual neighbours of example i: |N_a(i) n N_b(i)|. */
static int64_t common(const by_index *a, const by_index *b, int64_t i, int64_t k)
{
    const int32_t *ia = a->idx + i * k, *ib = b->idx + i * k;
    int64_t n = 0;
    for (int64_t p = 0, q = 0; p < k && q < k;) {
        if (ia[p] == ib[q]) n++, p++, q++;
        else if (ia[p] < ib[q]) p++;
        else q++;
    }
    return n;
}

static double knn_value(mk_measure_kind kind, const by_index *a, const by_index *b, double self_a, double self_b,
                        int64_t m, int64_t k, double *scratch)
{
    if (kind == MK_MEASURE_CKNNA) return masked_hsic(a, b, m, k, scratch, scratch + m) / sqrt(self_a * self_b);
    double sum = 0.0;
    for (int64_t i = 0; i < m; i++) {
        double c = (double)common(a, b, i, k);
        sum += kind == MK_MEASURE_JACCARD ? c / (2.0 * (double)k - c) : c / (double)k;
    }
    return sum / (double)m;
}

static double rsa_value(const mk_gram_layer *a, const mk_gram_layer *b)
{
    double dot = 0.0;
    for (int64_t q = 0, t = tri(a->m); q < t; q++) dot += a->rdm[q] * b->rdm[q];
    return dot;
}

/* One batch's pairs: per Gram measure, the layers' lists for its k (those
 * of a, then of b unless self), and for cknna each layer's own masked HSIC. */
typedef struct {
    const mk_gram_spec *s;
    const mk_gram_layer *a, *b;
    int nx, ny, self, n;     /* n: the layers listed (nx, or nx + ny) */
    int64_t m, k;            /* k: the largest that fits the batch */
    by_index *rows;          /* [measure o][layer], o among the Gram measures */
    double *selfh;           /* [o][layer] */
    const mk_measure **ms;   /* [o] */
    double *out;
    int failed;
} pairs_ctx;

static int short_of(const pairs_ctx *c, const mk_measure *ms) { return is_knn(ms->kind) && ms->k > c->m - 1; }

static const mk_gram_layer *layer_of(const pairs_ctx *c, int l) { return l < c->nx ? &c->a[l] : &c->b[l - c->nx]; }

/* Task (o, l): layer l's lists for measure o. */
static void list_task(void *ctx, int64_t t)
{
    pairs_ctx *c = ctx;
    int o = (int)(t / c->n), l = (int)(t % c->n);
    const mk_measure *ms = c->ms[o];
    const mk_gram_layer *gl = layer_of(c, l);
    if (!is_knn(ms->kind) || short_of(c, ms) || !gl->valid_knn) return;
    by_index *r = &c->rows[t];
    sort_rows(gl, c->s->kmax, ms->k, r);
    if (ms->kind != MK_MEASURE_CKNNA) return;
    double *scratch = malloc((size_t)(2 * c->m) * sizeof *scratch);
    if (!scratch) {
        c->failed = 1;
        return;
    }
    c->selfh[t] = masked_hsic(r, r, c->m, ms->k, scratch, scratch + c->m);
    free(scratch);
}

/* Task (i, j): every measure of the pair; a self comparison's symmetric
 * measure only from the upper triangle, written to both cells. */
static void pair_task(void *ctx, int64_t t)
{
    pairs_ctx *c = ctx;
    int i = (int)(t / c->ny), j = (int)(t % c->ny), yb = c->self ? j : c->nx + j;
    double *scratch = malloc((size_t)(2 * c->m) * sizeof *scratch);
    if (!scratch) c->failed = 1;
    for (int o = 0; scratch && c->ms[o]; o++) {
        const mk_measure *ms = c->ms[o];
        int mirror = c->self && mk_measure_symmetric(ms->kind);
        if (mirror && j < i) continue;
        const mk_gram_layer *la = layer_of(c, i), *lb = layer_of(c, yb);
        double v = NAN;
        if (!is_knn(ms->kind) && la->valid_rdm && lb->valid_rdm) v = rsa_value(la, lb);
        if (is_knn(ms->kind) && !short_of(c, ms) && la->valid_knn && lb->valid_knn)
            v = knn_value(ms->kind, &c->rows[o * c->n + i], &c->rows[o * c->n + yb], c->selfh[o * c->n + i],
                          c->selfh[o * c->n + yb], c->m, ms->k, scratch);
        double *mat = c->out + (int64_t)o * c->nx * c->ny;
        mat[i * c->ny + j] = v;
        if (mirror) mat[j * c->ny + i] = v;
    }
    free(scratch);
}

static void free_ctx(pairs_ctx *c)
{
    for (int64_t t = 0; c->rows && t < (int64_t)c->s->outs * c->n; t++) free(c->rows[t].idx), free(c->rows[t].cos);
    free(c->rows), free(c->selfh), free(c->ms);
}

static mk_err alloc_ctx(pairs_ctx *c)
{
    mk_err err = MK_OK;
    int64_t lists = (int64_t)c->s->outs * c->n, k = c->k > 0 ? c->k : 1;
    c->ms = mk_calloc((size_t)c->s->outs + 1, sizeof *c->ms, "the measures", &err);
    for (int q = 0, o = 0; !err && q < c->s->nms; q++)
        if (mk_gram_measure(c->s->ms[q].kind)) c->ms[o++] = &c->s->ms[q];
    if (!err) c->rows = mk_calloc((size_t)lists, sizeof *c->rows, "neighbour lists", &err);
    if (!err) c->selfh = mk_calloc((size_t)lists, sizeof *c->selfh, "neighbour lists", &err);
    for (int64_t t = 0; !err && c->s->kmax && t < lists; t++) {
        if (!is_knn(c->ms[t / c->n]->kind)) continue;
        c->rows[t].idx = mk_malloc((size_t)(c->m * k) * sizeof *c->rows[t].idx, "neighbour lists", &err);
        if (!err) c->rows[t].cos = mk_malloc((size_t)(c->m * k) * sizeof *c->rows[t].cos, "neighbour lists", &err);
    }
    return err;
}

mk_err mk_gram_pairs(const mk_gram_spec *s, mk_par *par, const mk_gram_layer *a, int nx, const mk_gram_layer *b,
                     int ny, int self, double *out)
{
    int64_t m = a[0].m;
    pairs_ctx c = {.s = s, .a = a, .b = self ? a : b, .nx = nx, .ny = ny, .self = self, .n = self ? nx : nx + ny,
                   .m = m, .k = s->kmax < m - 1 ? s->kmax : m - 1, .out = out};
    mk_err err = alloc_ctx(&c);
    if (!err) mk_par_for(par, (int64_t)s->outs * c.n, list_task, &c);
    if (!err && !c.failed) mk_par_for(par, (int64_t)nx * ny, pair_task, &c);
    if (!err && c.failed) err = mk_fail(MK_ENOMEM, "out of memory for the Gram measures' pairs");
    free_ctx(&c);
    return err;
}

/* ---- over the batches ---- */

void mk_gram_add(const double *values, int64_t n, double *slot)
{
    for (int64_t q = 0; q < n; q++)
        if (isfinite(values[q])) slot[2 * q] += values[q], slot[2 * q + 1] += 1.0;
}

void mk_gram_counts(int64_t n, int64_t G, const double *slots, double *count)
{
    for (int64_t q = 0; q < n; q++) {
        count[q] = 0.0;
        for (int64_t g = 0; g < (G ? G : 1); g++) count[q] += slots[g * 2 * n + 2 * q + 1];
    }
}

void mk_gram_finish(int64_t n, int64_t G, const double *slots, double *mean, double *se)
{
    int64_t S = G ? G : 1;
    for (int64_t q = 0; q < n; q++) {
        double sum = 0.0, count = 0.0;
        for (int64_t g = 0; g < S; g++) sum += slots[g * 2 * n + 2 * q], count += slots[g * 2 * n + 2 * q + 1];
        mean[q] = count > 0.0 ? sum / count : NAN;
        if (G < 2) continue;
        double avg = 0.0, ss = 0.0;
        for (int64_t g = 0; g < G; g++) {
            double left = count - slots[g * 2 * n + 2 * q + 1];
            avg += left > 0.0 ? (sum - slots[g * 2 * n + 2 * q]) / left : NAN;
        }
        avg /= (double)G;
        for (int64_t g = 0; g < G; g++) {
            double left = count - slots[g * 2 * n + 2 * q + 1];
            double theta = left > 0.0 ? (sum - slots[g * 2 * n + 2 * q]) / left : NAN;
            ss += (theta - avg) * (theta - avg);
        }
        se[q] = sqrt((double)(G - 1) / (double)G * ss);
    }
}
