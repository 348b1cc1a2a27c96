#include "mpicka/exact.h"

#include <stdlib.h>
#include <string.h>

#include "mpicka/blas.h"
#include "mpicka/hsic.h"

/* Z^T Z in strips of MK_EXACT_STRIP features (rows): strip t holds rows
 * r0 = t*MK_EXACT_STRIP .. r0+h-1 and columns r0..P-1 (x against y: only
 * those up to the end of the last layer the rows reach, then y's), row-major,
 * in the working precision. Each strip is one syrk (its diagonal block) and one
 * gemm (the rest of its rows), whatever the thread that takes it: wide
 * products that OpenBLAS runs near its peak, where tiles of 256 by 256
 * repacked both operands for every tile (docs/performance.md). The parts
 * of each strip's rows that S stores (exact.h) are then copied into it. */
#define MK_EXACT_STRIP 512

static int64_t strips_of(int64_t P) { return (P + MK_EXACT_STRIP - 1) / MK_EXACT_STRIP; }

/* Strip t of the L layers of p features (P in all), y_col as in mk_exact:
 * its rows r0..r0+h-1, its columns r0..own-1 then from..P-1 (own = from = P
 * but with x against y). */
typedef struct {
    int64_t r0, h, own, from;
} strip_geom;

static strip_geom geom(int L, const int64_t *p, int64_t P, int64_t y_col, int64_t t)
{
    strip_geom g = {t * MK_EXACT_STRIP, 0, P, P};
    g.h = P - g.r0 < MK_EXACT_STRIP ? P - g.r0 : MK_EXACT_STRIP;
    if (!y_col) return g;
    g.own = 0;
    for (int l = 0; l < L && g.own < g.r0 + g.h; l++) g.own += p[l];
    g.from = g.r0 < y_col && g.own < y_col ? y_col : g.own;
    return g;
}

static int64_t strip_width(strip_geom g, int64_t P) { return g.own - g.r0 + P - g.from; }

/* Where column c of a strip lies in its rows. */
static int64_t strip_col(strip_geom g, int64_t c) { return c < g.own ? c - g.r0 : g.own - g.r0 + c - g.from; }

/* Values of the strips of Z^T Z (P(P+1)/2 + about 256 P for every pair). */
static int64_t strips_len(int L, const int64_t *p, int64_t P, int64_t y_col)
{
    int64_t len = 0;
    for (int64_t t = 0; t < strips_of(P); t++) {
        strip_geom g = geom(L, p, P, y_col, t);
        len += g.h * strip_width(g, P);
    }
    return len;
}

/* The first column of the other layers a layer's rows hold, ending at end:
 * every later layer's, y's for an x layer of x against y, else none. */
static int64_t partners_from(int64_t end, int64_t P, int64_t y_col)
{
    if (!y_col) return end;
    return end <= y_col ? y_col : P;
}

int64_t mk_exact_rows_len(int64_t p, int64_t end, int64_t P, int64_t y_col)
{
    return p * (p + 1) / 2 + p * (P - partners_from(end, P, y_col));
}

int64_t mk_exact_len(const mk_exact *e)
{
    int64_t L = e->nlayers;
    return e->row[e->P] + e->P + L * e->P + L * L;
}

static int64_t layer_end(const mk_exact *e, int a) { return e->off[a] + e->p[a]; }

static int64_t layer_from(const mk_exact *e, int a) { return partners_from(layer_end(e, a), e->P, e->y_col); }

/* S_fg, f in layer a, g >= f stored (exact.h): rows run on contiguously in
 * g within the layer, and from the partners' first column to P. */
static int64_t S_index(const mk_exact *e, int a, int64_t f, int64_t g)
{
    int64_t end = layer_end(e, a);
    return e->row[f] + (g < end ? g - f : end - f + g - layer_from(e, a));
}

static mk_err rows_init(mk_exact *e)
{
    mk_err err = MK_OK;
    e->row = mk_malloc((size_t)(e->P + 1) * sizeof *e->row, "the rows of the exact sums", &err);
    int64_t at = 0;
    for (int a = 0; !err && a < e->nlayers; a++)
        for (int64_t f = e->off[a]; f < layer_end(e, a); f++) {
            e->row[f] = at;
            at += layer_end(e, a) - f + e->P - layer_from(e, a);
        }
    if (!err) e->row[e->P] = at;
    return err;
}

double mk_exact_bytes(int nlayers, const int64_t *p, int64_t y_col, int64_t m_max, mk_precision prec)
{
    double size = (double)mk_prec_size(prec), P = 0.0;
    for (int l = 0; l < nlayers; l++) P += (double)p[l];
    double strips = (double)strips_len(nlayers, p, (int64_t)P, y_col);
    return (double)m_max * P * size + strips * size + 8.0 * (3.0 * P + 2.0 * nlayers + strips_of((int64_t)P) + 2.0);
}

mk_err mk_exact_init(mk_exact *e, int nlayers, const int64_t *p, int64_t y_col, int64_t m_max, mk_precision prec)
{
    mk_err err = MK_OK;
    memset(e, 0, sizeof *e);
    e->nlayers = nlayers;
    e->y_col = y_col;
    e->m_max = m_max;
    e->prec = prec;
    e->p = mk_malloc((size_t)nlayers * sizeof *e->p, "layer widths", &err);
    if (!err) e->off = mk_malloc((size_t)nlayers * sizeof *e->off, "layer offsets", &err);
    for (int l = 0; !err && l < nlayers; l++) {
        e->p[l] = p[l];
        e->off[l] = e->P;
        e->P += p[l];
    }
    size_t size = mk_prec_size(prec);
    if (!err) e->mu0 = mk_calloc((size_t)e->P, sizeof(double), "the shift of the exact sums", &err);
    if (!err) e->z = mk_malloc((size_t)(m_max * e->P) * size, "a batch of stacked features", &err);
    if (!err) e->cross = mk_malloc((size_t)strips_len(nlayers, p, e->P, y_col) * size, "a batch's cross-products", &err);
    if (!err) e->r = mk_malloc((size_t)nlayers * sizeof(double), "squared row norms", &err);
    if (!err) e->d = mk_malloc((size_t)e->P * sizeof(double), "the feature means", &err);
    if (!err) err = rows_init(e);
    if (!err) e->strip = mk_malloc((size_t)strips_of(e->P) * sizeof *e->strip, "the strips' places", &err);
    for (int64_t t = 0, at = 0; !err && t < strips_of(e->P); t++) {
        strip_geom g = geom(nlayers, p, e->P, y_col, t);
        e->strip[t] = at;
        at += g.h * strip_width(g, e->P);
    }
    if (err) mk_exact_free(e);
    return err;
}

void mk_exact_free(mk_exact *e)
{
    free(e->p);
    free(e->off);
    free(e->mu0);
    free(e->z);
    free(e->cross);
    free(e->r);
    free(e->d);
    free(e->row);
    free(e->strip);
    memset(e, 0, sizeof *e);
}

void mk_exact_put(mk_exact *e, int l, const void *centred, const double *mean, int64_t m)
{
    int64_t p = e->p[l], P = e->P;
    const double *mu0 = e->mu0 + e->off[l];
    for (int64_t i = 0; i < m; i++)
        for (int64_t j = 0; j < p; j++) {
            if (e->prec == MK_PREC_FLOAT32)
                ((float *)e->z)[i * P + e->off[l] + j] =
                    (float)(((const float *)centred)[i * p + j] + (mean[j] - mu0[j]));
            else
                ((double *)e->z)[i * P + e->off[l] + j] = ((const double *)centred)[i * p + j] + (mean[j] - mu0[j]);
        }
}

typedef struct {
    const mk_exact *e;
    int64_t m;
    double *S; /* the sums' S (exact.h) */
} cross_job;

/* Columns [c0, c1) of a strip's rows, none where c1 <= c0. */
static void strip_cols(const cross_job *j, strip_geom g, int64_t c0, int64_t c1, char *c, int64_t w)
{
    const mk_exact *e = j->e;
    int64_t P = e->P;
    int f32 = e->prec == MK_PREC_FLOAT32;
    size_t es = mk_prec_size(e->prec);
    if (c1 <= c0) return;
    const char *a = (const char *)e->z + (size_t)g.r0 * es, *b = (const char *)e->z + (size_t)c0 * es;
    mk_gemm_ld(f32, 1, (int)g.h, (int)(c1 - c0), (int)j->m, a, (int)P, b, (int)P, c + (size_t)strip_col(g, c0) * es,
               (int)w);
}

/* Row i of strip g (width w) into S: row f's own layer's columns from f
 * on, then its partners' (f in layer a). */
static void strip_row(const cross_job *j, strip_geom g, const char *c, int64_t w, int64_t i, int a)
{
    const mk_exact *e = j->e;
    int64_t f = g.r0 + i, end = layer_end(e, a), from = layer_from(e, a), n1 = end - f, n2 = e->P - from;
    int64_t at = strip_col(g, from);
    double *S = j->S + e->row[f];
    if (e->prec == MK_PREC_FLOAT32) {
        const float *own = (const float *)c + i * w + i, *part = (const float *)c + i * w + at;
        for (int64_t k = 0; k < n1; k++) S[k] = own[k];
        for (int64_t k = 0; k < n2; k++) S[n1 + k] = part[k];
    } else {
        memcpy(S, (const double *)c + i * w + i, (size_t)n1 * sizeof *S);
        memcpy(S + n1, (const double *)c + i * w + at, (size_t)n2 * sizeof *S);
    }
}

/* With x against y (e->y_col > 0) a row of x needs only its own layer's
 * columns and y's, a row of y its own layer's: the columns from the strip's
 * diagonal block to the end of the last layer its rows reach, then y's. What
 * lies between is neither computed nor stored. */
static void cross_strip(void *arg, int64_t t)
{
    const cross_job *j = arg;
    const mk_exact *e = j->e;
    strip_geom g = geom(e->nlayers, e->p, e->P, e->y_col, t);
    int64_t w = strip_width(g, e->P);
    int f32 = e->prec == MK_PREC_FLOAT32;
    size_t es = mk_prec_size(e->prec);
    char *c = (char *)e->cross + (size_t)e->strip[t] * es;
    mk_syrk_ld(f32, 1, (int)g.h, (int)j->m, (const char *)e->z + (size_t)g.r0 * es, (int)e->P, c, (int)w);
    strip_cols(j, g, g.r0 + g.h, g.own, c, w);
    strip_cols(j, g, g.from, e->P, c, w);
    int a = 0;
    for (int64_t i = 0; i < g.h; i++) {
        while (layer_end(e, a) <= g.r0 + i) a++;
        strip_row(j, g, c, w, i, a);
    }
}

/* Row i of z as float64 (in place for float64; else converted into buf). */
static const double *z_row(const mk_exact *e, int64_t i, double *buf)
{
    if (e->prec != MK_PREC_FLOAT32) return (const double *)e->z + i * e->P;
    const float *z = (const float *)e->z + i * e->P;
    for (int64_t f = 0; f < e->P; f++) buf[f] = z[f];
    return buf;
}

/* s, W and Q of the batch, row by row (each sum in row order). */
static void row_sums(mk_exact *e, int64_t m, double *s, double *W, double *Q)
{
    int64_t P = e->P, L = e->nlayers;
    double *r = e->r;
    memset(s, 0, (size_t)(P + L * P + L * L) * sizeof *s);
    for (int64_t i = 0; i < m; i++) {
        const double *z = z_row(e, i, e->d);
        for (int64_t l = 0; l < L; l++) {
            r[l] = 0.0;
            for (int64_t f = e->off[l]; f < e->off[l] + e->p[l]; f++) r[l] += z[f] * z[f];
        }
        for (int64_t f = 0; f < P; f++) s[f] += z[f];
        for (int64_t l = 0; l < L; l++) {
            double *w = W + l * P, rl = r[l];
            for (int64_t f = 0; f < P; f++) w[f] += rl * z[f];
        }
        for (int64_t l = 0; l < L; l++)
            for (int64_t k = 0; k < L; k++) Q[l * L + k] += r[l] * r[k];
    }
}

void mk_exact_batch(mk_exact *e, int64_t m, double *sums)
{
    int64_t P = e->P, L = e->nlayers;
    cross_job job = {e, m, sums};
    mk_par_for(e->par, strips_of(P), cross_strip, &job);
    double *s = sums + e->row[P];
    row_sums(e, m, s, s + P, s + P + L * P);
}

/* ---- from the sums to HSIC ---- */

typedef struct {
    const double *S, *s, *W, *Q;
    const double *d; /* s / n */
    int64_t P, L;
    double n;
} sums_view;

/* S_fg for f in layer a and g >= f stored; rows run on contiguously within
 * a layer of g. */
static const double *S_from(const mk_exact *e, const sums_view *v, int a, int64_t f, int64_t g)
{
    return v->S + S_index(e, a, f, g);
}

/* A sum that carries its rounding error along (Knuth's two-sum, branch-free):
 * |C_ab|_F^2 adds p_a p_b terms, and a plain sum's error, some sqrt(p_a p_b)
 * ulps (1e-14 at a few hundred features), was all the estimator's error
 * beyond centre-first float64 code. */
typedef struct {
    double hi, lo;
} csum;

static void cs_add(csum *s, double x)
{
    double t = s->hi + x, z = t - s->hi;
    s->lo += (s->hi - (t - z)) + (x - z);
    s->hi = t;
}

static double cs_get(const csum *s) { return s->hi + s->lo; }

/* Over f in layer a and g in layer b, g > f where a = b (the caller counts
 * those twice and adds the diagonal): sum C_fg^2 into c2 and d_f S_fg d_g
 * into dsd. Layers lie in column order, so a < b has every g above f. */
static void cross_sums(const mk_exact *e, const sums_view *v, int a, int b, csum *c2, double *dsd)
{
    int64_t fb = e->off[b], end = fb + e->p[b];
    for (int64_t f = e->off[a]; f < e->off[a] + e->p[a]; f++) {
        int64_t g0 = a == b ? f + 1 : fb;
        if (g0 >= end) continue; /* the layer's last row: nothing right of its diagonal */
        const double *row = S_from(e, v, a, f, g0), *d = v->d + g0;
        double nd = v->n * v->d[f], sd = 0.0;
        for (int64_t k = 0; k < end - g0; k++) {
            double c = row[k] - nd * d[k];
            cs_add(c2, c * c);
            sd += row[k] * d[k];
        }
        *dsd += v->d[f] * sd;
    }
}

/* |C_ab|_F^2 and q_ab (the header comment of exact.h) for layers a <= b. */
static void pair_stats(const mk_exact *e, const sums_view *v, int a, int b, double *cab2, double *q)
{
    int64_t fa = e->off[a], pa = e->p[a], fb = e->off[b], pb = e->p[b];
    double n = v->n, dsd = 0.0;
    csum da2 = {0}, db2 = {0}, Ra = {0}, Rb = {0}, wa = {0}, wb = {0}, c2 = {0}, diag = {0};
    cross_sums(e, v, a, b, &c2, &dsd);
    if (a == b) { /* the off-diagonal twice (exactly), then the diagonal */
        c2.hi *= 2.0, c2.lo *= 2.0, dsd *= 2.0;
        for (int64_t f = fa; f < fa + pa; f++) {
            double sff = *S_from(e, v, a, f, f), c = sff - n * v->d[f] * v->d[f];
            cs_add(&diag, c * c);
            dsd += v->d[f] * sff * v->d[f];
        }
        cs_add(&c2, diag.hi);
        c2.lo += diag.lo;
    }
    for (int64_t f = fa; f < fa + pa; f++) {
        cs_add(&da2, v->d[f] * v->d[f]);
        cs_add(&Ra, *S_from(e, v, a, f, f));
        cs_add(&wb, v->W[b * v->P + f] * v->d[f]);
    }
    for (int64_t g = fb; g < fb + pb; g++) {
        cs_add(&db2, v->d[g] * v->d[g]);
        cs_add(&Rb, *S_from(e, v, b, g, g));
        cs_add(&wa, v->W[a * v->P + g] * v->d[g]);
    }
    *cab2 = cs_get(&c2);
    *q = v->Q[a * v->L + b] - 2.0 * cs_get(&wa) - 2.0 * cs_get(&wb) + cs_get(&db2) * cs_get(&Ra) +
         cs_get(&da2) * cs_get(&Rb) + 4.0 * dsd - 3.0 * n * cs_get(&da2) * cs_get(&db2);
}

static double trace_c(const mk_exact *e, const sums_view *v, int a)
{
    csum t = {0};
    for (int64_t f = e->off[a]; f < e->off[a] + e->p[a]; f++) cs_add(&t, *S_from(e, v, a, f, f) - v->s[f] * v->d[f]);
    return cs_get(&t);
}

/* Symmetric in a and b: taken with a <= b, so a self comparison's matrix is
 * symmetric to the bit. */
static double pair_hsic(const mk_exact *e, const sums_view *v, int a, int b, int debiased)
{
    double c2, q, n = v->n;
    pair_stats(e, v, a < b ? a : b, a < b ? b : a, &c2, &q);
    if (!debiased) return c2 / ((n - 1.0) * (n - 1.0));
    double ta = trace_c(e, v, a), tb = trace_c(e, v, b);
    return ((c2 - q) + ta * tb / ((n - 1.0) * (n - 2.0)) - 2.0 * q / (n - 2.0)) / (n * (n - 3.0));
}

void mk_exact_hsic(const mk_exact *e, const double *sums, int64_t n, int debiased, int nx, int ny, int y_first,
                   double *hxy, double *hxx, double *hyy)
{
    sums_view v = {sums, NULL, NULL, NULL, e->d, e->P, e->nlayers, (double)n};
    v.s = v.S + e->row[e->P];
    v.W = v.s + e->P;
    v.Q = v.W + v.L * e->P;
    for (int64_t f = 0; f < e->P; f++) e->d[f] = v.s[f] / v.n;
    for (int i = 0; i < nx; i++) hxx[i] = pair_hsic(e, &v, i, i, debiased);
    for (int j = 0; j < ny; j++) hyy[j] = pair_hsic(e, &v, y_first + j, y_first + j, debiased);
    for (int i = 0; i < nx; i++)
        for (int j = 0; j < ny; j++) hxy[i * ny + j] = pair_hsic(e, &v, i, y_first + j, debiased);
}

void mk_exact_cov(const mk_exact *e, const double *sums, int64_t n, int a, int b, double *out)
{
    int64_t P = e->P, pb = e->p[b];
    const double *S = sums, *s = S + e->row[P];
    double dn = (double)n;
    for (int64_t f = e->off[a]; f < e->off[a] + e->p[a]; f++)
        for (int64_t g = e->off[b]; g < e->off[b] + pb; g++) {
            int64_t lo = f < g ? f : g, hi = f < g ? g : f;
            double sfg = S[S_index(e, f < g ? a : b, lo, hi)];
            out[(f - e->off[a]) * pb + (g - e->off[b])] = sfg - dn * ((s[f] / dn) * (s[g] / dn));
        }
}
