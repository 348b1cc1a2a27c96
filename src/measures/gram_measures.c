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

double mk_gram_bytes(const mk_gram_spec *s, int L, int64_t cells)
{
    if (!s->outs) return 0.0;
    double m = (double)s->m_max, t = (double)tri(s->m_max), per = 12.0 * m * (double)s->kmax;
    if (s->rsa >= 0) per += 8.0 * t;
    double work = s->rsa >= 0 ? 8.0 * t + (s->ms[s->rsa].spearman ? 2.0 * (double)sizeof(ranked) * t : 0.0) : 0.0;
    double pairs = s->kmax ? 2.0 * 12.0 * m * (double)s->kmax + 16.0 * m : 0.0;
    return (double)L * per + work + 7.0 * 8.0 * m + pairs + 8.0 * (double)s->outs * (double)cells;
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
    free(w->row);
    memset(w, 0, sizeof *w);
}

mk_err mk_gram_work_init(mk_gram_work *w, const mk_gram_spec *s)
{
    mk_err err = MK_OK;
    int64_t t = tri(s->m_max);
    memset(w, 0, sizeof *w);
    w->e = mk_malloc((size_t)(6 * s->m_max) * sizeof *w->e, "per-example sums", &err);
    if (!err) w->row = mk_malloc((size_t)s->m_max * sizeof *w->row, "a row of cosines", &err);
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

/* Each example's kmax nearest (highest cosine, the lower index on a tie),
 * nearest first; an example of no norm has cosine 0 with every other. */
static void neighbours(mk_gram_layer *l, int64_t kmax, const extras *ex, const void *g, mk_precision prec,
                       double *row)
{
    int64_t m = l->m, k = kmax < m - 1 ? kmax : m - 1;
    double *inv = ex->big + m;
    for (int64_t i = 0; i < m; i++) {
        double r = raw_at(ex, g, prec, m, i, i);
        inv[i] = r > ex->big[i] ? 1.0 / sqrt(r) : 0.0;
    }
    for (int64_t i = 0; i < m; i++) {
        int32_t *nn = l->nn + i * kmax;
        double *cs = l->cos + i * kmax;
        int64_t have = 0;
        for (int64_t j = 0; j < m; j++) row[j] = j == i ? 0.0 : raw_at(ex, g, prec, m, i, j) * inv[i] * inv[j];
        for (int64_t j = 0; j < m; j++) {
            if (j == i || (have == k && !(row[j] > cs[k - 1]))) continue;
            int64_t q = have < k ? have++ : k - 1; /* the last place, then moved up past the lower cosines */
            for (; q > 0 && row[j] > cs[q - 1]; q--) nn[q] = nn[q - 1], cs[q] = cs[q - 1];
            nn[q] = (int32_t)j, cs[q] = row[j];
        }
    }
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
        neighbours(l, s->kmax, &ex, gram, prec, w->row);
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

typedef struct {
    by_index *rows;   /* per layer of a, then of b, sorted by index for the measure's k */
    double *self;     /* cknna: each layer's own masked HSIC */
    double *colA, *rowB;
} knn_work;

static double knn_value(mk_measure_kind kind, const by_index *a, const by_index *b, double self_a, double self_b,
                        int64_t m, int64_t k, knn_work *w)
{
    if (kind == MK_MEASURE_CKNNA) return masked_hsic(a, b, m, k, w->colA, w->rowB) / sqrt(self_a * self_b);
    double sum = 0.0;
    for (int64_t i = 0; i < m; i++) {
        double c = (double)common(a, b, i, k);
        sum += kind == MK_MEASURE_JACCARD ? c / (2.0 * (double)k - c) : c / (double)k;
    }
    return sum / (double)m;
}

/* The layers' lists for one k-NN measure (its k), and for cknna each
 * layer's own masked HSIC. */
static void knn_layers(const mk_gram_spec *s, mk_measure_kind kind, int64_t k, const mk_gram_layer *ls, int n,
                       by_index *rows, double *self, knn_work *w)
{
    for (int l = 0; l < n; l++) {
        if (!ls[l].valid_knn) continue;
        sort_rows(&ls[l], s->kmax, k, &rows[l]);
        if (kind == MK_MEASURE_CKNNA) self[l] = masked_hsic(&rows[l], &rows[l], ls[l].m, k, w->colA, w->rowB);
    }
}

static double rsa_value(const mk_gram_layer *a, const mk_gram_layer *b)
{
    double dot = 0.0;
    for (int64_t q = 0, t = tri(a->m); q < t; q++) dot += a->rdm[q] * b->rdm[q];
    return dot;
}

/* One measure's matrix. */
static void one_measure(const mk_gram_spec *s, const mk_measure *ms, const mk_gram_layer *a, int nx,
                        const mk_gram_layer *b, int ny, int self, knn_work *w, double *out)
{
    int64_t m = a[0].m, k = ms->k;
    int knn = is_knn(ms->kind), short_ = knn && k > m - 1;
    by_index *ra = w->rows, *rb = self ? w->rows : w->rows + nx;
    double *sa = w->self, *sb = self ? w->self : w->self + nx;
    if (knn && !short_) {
        knn_layers(s, ms->kind, k, a, nx, ra, sa, w);
        if (!self) knn_layers(s, ms->kind, k, b, ny, rb, sb, w);
    }
    int mirror = self && mk_measure_symmetric(ms->kind);
    for (int i = 0; i < nx; i++)
        for (int j = mirror ? i : 0; j < ny; j++) {
            double v = NAN;
            if (!knn && a[i].valid_rdm && b[j].valid_rdm) v = rsa_value(&a[i], &b[j]);
            if (knn && !short_ && a[i].valid_knn && b[j].valid_knn)
                v = knn_value(ms->kind, &ra[i], &rb[j], sa[i], sb[j], m, k, w);
            out[i * ny + j] = v;
            if (mirror) out[j * ny + i] = v;
        }
}

static void free_knn(knn_work *w, int n)
{
    for (int l = 0; w->rows && l < n; l++) free(w->rows[l].idx), free(w->rows[l].cos);
    free(w->rows), free(w->self), free(w->colA), free(w->rowB);
}

static mk_err alloc_knn(knn_work *w, int n, int64_t m, int64_t k)
{
    mk_err err = MK_OK;
    w->rows = mk_calloc((size_t)n, sizeof *w->rows, "neighbour lists", &err);
    if (!err) w->self = mk_calloc((size_t)n, sizeof *w->self, "neighbour lists", &err);
    if (!err) w->colA = mk_malloc((size_t)m * sizeof *w->colA, "neighbour sums", &err);
    if (!err) w->rowB = mk_malloc((size_t)m * sizeof *w->rowB, "neighbour sums", &err);
    for (int l = 0; !err && l < n; l++) {
        w->rows[l].idx = mk_malloc((size_t)(m * k) * sizeof *w->rows[l].idx, "neighbour lists", &err);
        if (!err) w->rows[l].cos = mk_malloc((size_t)(m * k) * sizeof *w->rows[l].cos, "neighbour lists", &err);
    }
    return err;
}

mk_err mk_gram_pairs(const mk_gram_spec *s, const mk_gram_layer *a, int nx, const mk_gram_layer *b, int ny, int self,
                     double *out)
{
    int n = self ? nx : nx + ny;
    int64_t m = a[0].m, k = s->kmax < m - 1 ? s->kmax : m - 1;
    knn_work w = {0};
    mk_err err = s->kmax ? alloc_knn(&w, n, m, k > 0 ? k : 1) : MK_OK;
    for (int q = 0, o = 0; !err && q < s->nms; q++) {
        if (!mk_gram_measure(s->ms[q].kind)) continue;
        one_measure(s, &s->ms[q], a, nx, b, ny, self, &w, out + (int64_t)o * nx * ny);
        o++;
    }
    free_knn(&w, n);
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
