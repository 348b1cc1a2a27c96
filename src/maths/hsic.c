#include "mpicka/hsic.h"

#include <float.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "mpicka/blas.h"

mk_err mk_hsic_ws_init(mk_hsic_ws *ws, int64_t m_max, int64_t p_max, mk_precision prec,
                       const mk_hsic_opts *opts)
{
    mk_err err = MK_OK;
    memset(ws, 0, sizeof *ws);
    ws->m_max = m_max;
    ws->p_max = p_max;
    ws->prec = prec;
    ws->opts = opts ? *opts : (mk_hsic_opts){MK_EST_HSIC1, MK_KERNEL_LINEAR, 1.0};
    if (ws->opts.kernel == MK_KERNEL_RBF)
        ws->select = mk_malloc((size_t)mk_tri_len(m_max) * sizeof(double), "squared distances", &err);
    if (p_max > 0) {
        ws->x = mk_malloc((size_t)(m_max * p_max) * mk_prec_size(prec), "a centred layer block", &err);
        if (!err) ws->colmean = mk_malloc((size_t)(3 * p_max) * sizeof(double), "column means", &err);
    }
    if (!err) ws->gram = mk_malloc((size_t)(m_max * m_max) * mk_prec_size(prec), "a Gram matrix", &err);
    if (!err) ws->gram_bg = mk_malloc((size_t)(m_max * m_max) * mk_prec_size(prec), "a Gram matrix", &err);
    if (!err) ws->rowsum = mk_malloc((size_t)m_max * sizeof(double), "Gram row sums", &err);
    if (err) mk_hsic_ws_free(ws);
    return err;
}

void mk_hsic_ws_free(mk_hsic_ws *ws)
{
    mk_kernel_wait(ws);
    free(ws->x);
    free(ws->gram);
    free(ws->gram_bg);
    free(ws->colmean);
    free(ws->rowsum);
    free(ws->select);
    memset(ws, 0, sizeof *ws);
}

/* The column sums double as the finiteness check: one NaN or Inf anywhere in
 * a column makes its sum non-finite, so the block is scanned row by row only
 * when something is wrong. */
static int64_t first_bad_row(const void *in, int in_f32, int64_t m, int64_t p)
{
    for (int64_t i = 0; i < m; i++)
        for (int64_t j = 0; j < p; j++) {
            double v = in_f32 ? ((const float *)in)[i * p + j] : ((const double *)in)[i * p + j];
            if (!isfinite(v)) return i;
        }
    return -1;
}

/* One loop per input/output type pair, so that each vectorises. out may be
 * in (in-place centring), hence no restrict on them. With scale 1 the
 * product is exact and the loop gives the bits it always gave. */
#define MK_SUBTRACT(IN_T, OUT_T)                                                  \
    static void subtract_##IN_T##_##OUT_T(const IN_T *in, double scale, const double *restrict mean, \
                                          int64_t m, int64_t p, OUT_T *out)      \
    {                                                                             \
        for (int64_t i = 0; i < m; i++)                                           \
            for (int64_t j = 0; j < p; j++) out[i * p + j] = (OUT_T)(in[i * p + j] * scale - mean[j]); \
    }
MK_SUBTRACT(float, float)
MK_SUBTRACT(float, double)
MK_SUBTRACT(double, float)
MK_SUBTRACT(double, double)

/* Column sums, minima and maxima of the scaled values in one pass: the
 * minima and maxima run down the rows, element by element, so the loop
 * vectorises across columns; they give the largest |centred value| and
 * whether the block is constant without another pass. */
#define MK_COLSTATS(IN_T)                                                         \
    static void colstats_##IN_T(const IN_T *restrict in, double scale, int64_t m, int64_t p,  \
                                double *restrict sum, double *restrict lo, double *restrict hi) \
    {                                                                             \
        for (int64_t j = 0; j < p; j++) sum[j] = 0.0, lo[j] = hi[j] = in[j] * scale; \
        for (int64_t i = 0; i < m; i++)                                           \
            for (int64_t j = 0; j < p; j++) {                                     \
                double v = in[i * p + j] * scale;                                 \
                sum[j] += v;                                                      \
                lo[j] = v < lo[j] ? v : lo[j];                                    \
                hi[j] = v > hi[j] ? v : hi[j];                                    \
            }                                                                     \
    }
MK_COLSTATS(float)
MK_COLSTATS(double)

/* The mean of a column whose scaled sum overflowed though every value is
 * finite: summed once more with its values shrunk by 2^-64, exactly. */
static double wide_mean(const void *in, int in_f32, double scale, int64_t m, int64_t p, int64_t j)
{
    double sum = 0.0, shrink = 0x1p-64;
    for (int64_t i = 0; i < m; i++)
        sum += (in_f32 ? ((const float *)in)[i * p + j] : ((const double *)in)[i * p + j]) * scale * shrink;
    return sum / (double)m / shrink;
}

int64_t mk_centre(const void *in, int in_f32, int64_t m, int64_t p, mk_precision prec, double *mean,
                  void *out, mk_centring *c)
{
    double scale = c ? c->scale : 1.0, *lo = mean + p, *hi = mean + 2 * p, amax = 0.0;
    if (in_f32)
        colstats_float(in, scale, m, p, mean, lo, hi);
    else
        colstats_double(in, scale, m, p, mean, lo, hi);
    int constant = 1;
    for (int64_t j = 0; j < p; j++) {
        if (!isfinite(mean[j])) {
            int64_t bad = first_bad_row(in, in_f32, m, p);
            if (bad >= 0) return bad;
            mean[j] = wide_mean(in, in_f32, scale, m, p, j);
        } else {
            mean[j] /= (double)m;
        }
        double below = mean[j] - lo[j], above = hi[j] - mean[j];
        amax = below > amax ? below : amax;
        amax = above > amax ? above : amax;
        constant &= lo[j] == hi[j];
    }
    int out_f32 = prec == MK_PREC_FLOAT32;
    if (constant) { /* the mean is the row itself; what is left is exactly zero */
        memcpy(mean, lo, (size_t)p * sizeof *mean);
        memset(out, 0, (size_t)(m * p) * mk_prec_size(prec));
        amax = 0.0;
    } else if (in_f32 && out_f32) {
        subtract_float_float(in, scale, mean, m, p, out);
    } else if (in_f32) {
        subtract_float_double(in, scale, mean, m, p, out);
    } else if (out_f32) {
        subtract_double_float(in, scale, mean, m, p, out);
    } else {
        subtract_double_double(in, scale, mean, m, p, out);
    }
    if (c) {
        c->constant = constant;
        c->amax = amax;
    }
    return -1;
}

/* Bounds on p*amax^2, which bounds every Gram entry: float32 Grams stay far
 * from FLT_MAX and FLT_MIN; float64 kernels K keep K^2 * m^2 within double's
 * range, for the pair products. Scaled data sits near 1. */
static void gram_bounds(mk_precision prec, double *lo, double *hi, double *hard)
{
    int f32 = prec == MK_PREC_FLOAT32;
    *lo = f32 ? 1e-30 : 1e-140;
    *hi = f32 ? 1e30 : 1e140;
    *hard = f32 ? 1e37 : 1e145;
}

double mk_safe_scale(double amax, int64_t p, mk_precision prec)
{
    double lo, hi, hard;
    gram_bounds(prec, &lo, &hi, &hard);
    if (!(amax > 0.0) || !isfinite(amax)) return 1.0;
    double e = 0.5 * log2((double)p) + log2(amax); /* log2 of sqrt(p * amax^2), which neither overflows nor underflows */
    if (e >= 0.5 * log2(lo) && e <= 0.5 * log2(hi)) return 1.0;
    /* Subnormal float64 values (below 2^-1022) would want a power of two past
     * the largest double (2^1023): infinite. 2^1023 already brings them to
     * about 2^-7 at least, well inside the window; below the cap, unchanged. */
    long up = -lround(e);
    return ldexp(1.0, up > DBL_MAX_EXP - 1 ? DBL_MAX_EXP - 1 : (int)up);
}

int mk_block_overflows(double amax, int64_t p, mk_precision prec)
{
    double lo, hi, hard;
    gram_bounds(prec, &lo, &hi, &hard);
    return !((double)p * amax * amax <= hard);
}

/* The Gram in square tiles of MK_GRAM_TILE rows: tile (ti, tj), ti <= tj, is
 * one syrk (ti = tj) or gemm, whatever the thread that takes it. */
#define MK_GRAM_TILE 256

typedef struct {
    const void *x;
    void *gram;
    int64_t m, p, tiles;
    int f32;
} gram_job;

static void gram_tile(void *arg, int64_t k)
{
    const gram_job *j = arg;
    int64_t ti = 0, tj;
    while (k >= j->tiles - ti) k -= j->tiles - ti++; /* the k-th pair ti <= tj, row by row */
    tj = ti + k;
    size_t es = j->f32 ? sizeof(float) : sizeof(double);
    int64_t r0 = ti * MK_GRAM_TILE, c0 = tj * MK_GRAM_TILE;
    int rows = (int)(j->m - r0 < MK_GRAM_TILE ? j->m - r0 : MK_GRAM_TILE);
    int cols = (int)(j->m - c0 < MK_GRAM_TILE ? j->m - c0 : MK_GRAM_TILE);
    const char *a = (const char *)j->x + (size_t)(r0 * j->p) * es, *b = (const char *)j->x + (size_t)(c0 * j->p) * es;
    char *c = (char *)j->gram + (size_t)(r0 * j->m + c0) * es;
    if (ti == tj)
        mk_syrk_ld(j->f32, 0, rows, (int)j->p, a, (int)j->p, c, (int)j->m);
    else
        mk_gemm_ld(j->f32, 0, rows, cols, (int)j->p, a, (int)j->p, b, (int)j->p, c, (int)j->m);
}

int mk_gram(mk_hsic_ws *ws, const void *x, int64_t m, int64_t p)
{
    gram_job job = {x, ws->gram, m, p, (m + MK_GRAM_TILE - 1) / MK_GRAM_TILE, ws->prec == MK_PREC_FLOAT32};
    mk_par_for(ws->par, job.tiles * (job.tiles + 1) / 2, gram_tile, &job);
    for (int64_t i = 0; i < m; i++)
        if (!isfinite(mk_prec_at(ws->gram, ws->prec, i * m + i))) return 1;
    return 0;
}

/* The Gram's entry (i, j), whatever the working precision. */
static double gram_at(const mk_hsic_ws *ws, const void *gram, int64_t m, int64_t i, int64_t j)
{
    return mk_prec_at(gram, ws->prec, i * m + j);
}

/* Copy the strict upper triangle of the Gram, row by row, into v as double. */
static void pack_upper(const mk_hsic_ws *ws, const void *gram, int64_t m, double *restrict v)
{
    for (int64_t i = 0, t = 0; i < m; t += m - 1 - i, i++) {
        if (ws->prec == MK_PREC_FLOAT32) {
            const float *restrict row = (const float *)gram + i * m;
            for (int64_t j = i + 1; j < m; j++) v[t + j - i - 1] = row[j];
        } else {
            const double *restrict row = (const double *)gram + i * m;
            for (int64_t j = i + 1; j < m; j++) v[t + j - i - 1] = row[j];
        }
    }
}

/* The k-th smallest of a[0..n) (0-based), by quickselect; a is reordered. */
static double select_kth(double *a, int64_t n, int64_t k)
{
    int64_t lo = 0, hi = n - 1;
    while (lo < hi) {
        double x = a[lo], y = a[lo + (hi - lo) / 2], z = a[hi];
        double pivot = x < y ? (y < z ? y : x < z ? z : x) : (x < z ? x : y < z ? z : y);
        int64_t i = lo, j = hi;
        while (i <= j) {
            while (a[i] < pivot) i++;
            while (a[j] > pivot) j--;
            if (i <= j) {
                double tmp = a[i];
                a[i++] = a[j];
                a[j--] = tmp;
            }
        }
        if (k <= j) hi = j;
        else if (k >= i) lo = i;
        else return a[k];
    }
    return a[k];
}

/* The k-th smallest of the m*m matrix: each of the t upper values twice and
 * m zeros. With z upper values below zero (rounding), the sorted matrix is
 * 2z negatives, the zeros, then the rest in pairs. */
static double full_kth(double *d, int64_t m, int64_t z, int64_t k)
{
    int64_t t = mk_tri_len(m);
    if (k < 2 * z) return select_kth(d, t, k / 2);
    if (k < 2 * z + m) return 0.0;
    return select_kth(d, t, (k - m) / 2);
}

double mk_median_sq_dist(double *d, int64_t m)
{
    int64_t count = m * m, z = 0;
    for (int64_t i = 0; i < mk_tri_len(m); i++) z += d[i] < 0.0; /* reordering keeps the count */
    if (count % 2) return full_kth(d, m, z, count / 2);
    return 0.5 * (full_kth(d, m, z, count / 2 - 1) + full_kth(d, m, z, count / 2));
}

/* The RBF kernel's strict upper triangle into v (its diagonal is 1). */
static void rbf_upper(mk_hsic_ws *ws, const void *gram, int64_t m, double *restrict v)
{
    double *norm = ws->rowsum;
    int64_t t = mk_tri_len(m);
    for (int64_t i = 0; i < m; i++) norm[i] = gram_at(ws, gram, m, i, i);
    for (int64_t i = 0, k = 0; i < m; i++)
        for (int64_t j = i + 1; j < m; j++, k++) v[k] = norm[i] + norm[j] - 2.0 * gram_at(ws, gram, m, i, j);
    memcpy(ws->select, v, (size_t)t * sizeof *v);
    double gamma = 1.0 / (2.0 * ws->opts.threshold * ws->opts.threshold * mk_median_sq_dist(ws->select, m));
    if (!isfinite(gamma)) { /* a zero median (mostly equal examples): the kernel's limit, 1 for equal ones */
        for (int64_t k = 0; k < t; k++) v[k] = v[k] <= 0.0 ? 1.0 : 0.0;
        return;
    }
    for (int64_t k = 0; k < t; k++) v[k] = exp(-v[k] * gamma);
}

/* Row sums of the symmetric matrix whose strict upper triangle is v. Four
 * partial sums per row break the dependency chain; the order is fixed. */
static void row_sums(const double *restrict v, int64_t m, double *restrict r)
{
    for (int64_t i = 0; i < m; i++) r[i] = 0.0;
    for (int64_t i = 0, t = 0; i < m; t += m - 1 - i, i++) {
        const double *restrict row = v + t;
        int64_t len = m - 1 - i, k = 0;
        double s0 = 0.0, s1 = 0.0, s2 = 0.0, s3 = 0.0;
        for (; k + 4 <= len; k += 4) {
            s0 += row[k];
            s1 += row[k + 1];
            s2 += row[k + 2];
            s3 += row[k + 3];
        }
        for (; k < len; k++) s0 += row[k];
        r[i] += (s0 + s1) + (s2 + s3);
        double *restrict rj = r + i + 1;
        for (k = 0; k < len; k++) rj[k] += row[k];
    }
}

/* K_ij - mu_i - mu_j over the strict upper triangle. */
static void subtract_mu(double *v, int64_t m, const double *mu)
{
    for (int64_t i = 0, t = 0; i < m; t += m - 1 - i, i++) {
        double *restrict row = v + t;
        const double *restrict muj = mu + i + 1;
        double mui = mu[i];
        for (int64_t k = 0; k < m - 1 - i; k++) row[k] = row[k] - mui - muj[k];
    }
}

/* Both centrings are K_ij - mu_i - mu_j with r_i the row sums:
 * U-centring (diagonal zeroed): mu_i = r_i/(m-2) - sum(r)/(2(m-1)(m-2));
 * H K H (diagonal d kept in r): mu_i = r_i/m - sum(r)/(2m^2), and the
 * diagonal becomes d_i - 2 mu_i. */
static void centre_kernel(mk_hsic_ws *ws, int64_t m, double *v)
{
    double *mu = ws->rowsum, *diag = v + mk_tri_len(m), total = 0.0, md = (double)m;
    int hsic0 = ws->opts.est == MK_EST_HSIC0;
    row_sums(v, m, mu);
    for (int64_t i = 0; i < m; i++) total += hsic0 ? (mu[i] += diag[i]) : mu[i];
    double scale = hsic0 ? 1.0 / md : 1.0 / (md - 2.0);
    double shift = hsic0 ? total / (2.0 * md * md) : total / (2.0 * (md - 1.0) * (md - 2.0));
    for (int64_t i = 0; i < m; i++) mu[i] = mu[i] * scale - shift;
    subtract_mu(v, m, mu);
    /* sqrt(1/2): 2 V_a.V_b then counts each off-diagonal pair twice and the diagonal once. */
    for (int64_t i = 0; hsic0 && i < m; i++) diag[i] = (diag[i] - 2.0 * mu[i]) * sqrt(0.5);
}

static void kernel_row_of(mk_hsic_ws *ws, const void *gram, int64_t m, double *v)
{
    int64_t t = mk_tri_len(m);
    int rbf = ws->opts.kernel == MK_KERNEL_RBF;
    if (rbf)
        rbf_upper(ws, gram, m, v);
    else
        pack_upper(ws, gram, m, v);
    for (int64_t i = 0; ws->opts.est == MK_EST_HSIC0 && i < m; i++) v[t + i] = rbf ? 1.0 : gram_at(ws, gram, m, i, i);
    centre_kernel(ws, m, v);
}

void mk_kernel_row(mk_hsic_ws *ws, int64_t m, double *v)
{
    kernel_row_of(ws, ws->gram, m, v);
}

static void kernel_task(void *arg)
{
    mk_hsic_ws *ws = arg;
    kernel_row_of(ws, ws->gram_bg, ws->bg_m, ws->bg_v);
}

void mk_kernel_start(mk_hsic_ws *ws, int64_t m, double *v)
{
    mk_kernel_wait(ws); /* it reads gram_bg and uses rowsum and select */
    void *gram = ws->gram;
    ws->gram = ws->gram_bg;
    ws->gram_bg = gram;
    ws->bg_m = m;
    ws->bg_v = v;
    ws->bg_busy = 1;
    mk_par_async(ws->par, kernel_task, ws);
}

void mk_kernel_wait(mk_hsic_ws *ws)
{
    if (!ws->bg_busy) return;
    mk_par_wait(ws->par);
    ws->bg_busy = 0;
}

int64_t mk_layer_row(mk_hsic_ws *ws, const void *in, int in_f32, int64_t m, int64_t p, double *v)
{
    int64_t bad = mk_centre(in, in_f32, m, p, ws->prec, ws->colmean, ws->x, NULL);
    if (bad >= 0) return bad;
    (void)mk_gram(ws, ws->x, m, p);
    mk_kernel_row(ws, m, v);
    return -1;
}

typedef struct {
    const double *vx, *vy;
    int nx, ny;
    int64_t len;
    double *part;     /* one slot per chunk of nx*ny (+ nx + ny for x vs y) partial sums */
} pairs_job;

/* A fixed-order dot product: the same bits on any thread. */
static double dot(const double *restrict a, const double *restrict b, int64_t n)
{
    double s0 = 0.0, s1 = 0.0, s2 = 0.0, s3 = 0.0;
    int64_t k = 0;
    for (; k + 4 <= n; k += 4) {
        s0 += a[k] * b[k];
        s1 += a[k + 1] * b[k + 1];
        s2 += a[k + 2] * b[k + 2];
        s3 += a[k + 3] * b[k + 3];
    }
    for (; k < n; k++) s0 += a[k] * b[k];
    return (s0 + s1) + (s2 + s3);
}

static void pairs_chunk(void *arg, int64_t c)
{
    const pairs_job *j = arg;
    int64_t from = c * MK_PAIR_CHUNK, n = j->len - from < MK_PAIR_CHUNK ? j->len - from : MK_PAIR_CHUNK;
    int64_t slot = (int64_t)j->nx * j->ny + (j->vy ? j->nx + j->ny : 0);
    double *out = j->part + c * slot;
    if (!j->vy) {
        mk_syrk_ld(0, 0, j->nx, (int)n, j->vx + from, (int)j->len, out, j->nx);
        return;
    }
    mk_gemm_ld(0, 0, j->nx, j->ny, (int)n, j->vx + from, (int)j->len, j->vy + from, (int)j->len, out, j->ny);
    for (int i = 0; i < j->nx; i++) out[j->nx * j->ny + i] = dot(j->vx + i * j->len + from, j->vx + i * j->len + from, n);
    for (int i = 0; i < j->ny; i++)
        out[j->nx * j->ny + j->nx + i] = dot(j->vy + i * j->len + from, j->vy + i * j->len + from, n);
}

mk_err mk_pairs(mk_par *par, mk_estimator est, const double *vx, int nx, const double *vy, int ny, int64_t m,
                double *hxy, double *hxx, double *hyy)
{
    int64_t len = mk_row_len(est, m), chunks = (len + MK_PAIR_CHUNK - 1) / MK_PAIR_CHUNK;
    int64_t slot = (int64_t)nx * ny + (vy ? nx + ny : 0), cells = (int64_t)nx * ny;
    mk_err err = MK_OK;
    double *part = mk_malloc((size_t)(chunks * slot) * sizeof *part, "partial pair products", &err);
    if (err) return err;
    pairs_job job = {vx, vy, nx, ny, len, part};
    mk_par_for(par, chunks, pairs_chunk, &job);
    double md = (double)m;
    /* Each off-diagonal entry appears twice in the Frobenius product. */
    double scale = est == MK_EST_HSIC0 ? 2.0 / ((md - 1.0) * (md - 1.0)) : 2.0 / (md * (md - 3.0));
    for (int64_t k = 0; k < slot; k++) {
        double sum = part[k];
        for (int64_t c = 1; c < chunks; c++) sum += part[c * slot + k];
        part[k] = sum * scale;
    }
    if (!vy) { /* syrk filled the upper triangle */
        for (int i = 0; i < nx; i++)
            for (int j = i; j < nx; j++) hxy[i * nx + j] = hxy[j * nx + i] = part[i * nx + j];
        for (int i = 0; hxx && i < nx; i++) hxx[i] = hyy[i] = hxy[i * nx + i];
    } else {
        memcpy(hxy, part, (size_t)cells * sizeof *hxy);
        if (hxx) memcpy(hxx, part + cells, (size_t)nx * sizeof *hxx);
        if (hxx) memcpy(hyy, part + cells + nx, (size_t)ny * sizeof *hyy);
    }
    free(part);
    return MK_OK;
}

/* Where entry (a, b), a < b, of the strict upper triangle is stored. */
static inline int64_t tri_index(int64_t m, int64_t a, int64_t b)
{
    return a * (2 * m - a - 1) / 2 + (b - a - 1);
}

void mk_permute_row(mk_estimator est, const double *v, int64_t m, const int64_t *perm, double *out)
{
    for (int64_t i = 0, k = 0; i < m; i++) {
        int64_t a = perm[i];
        for (int64_t j = i + 1; j < m; j++, k++) {
            int64_t b = perm[j];
            out[k] = a < b ? v[tri_index(m, a, b)] : v[tri_index(m, b, a)];
        }
    }
    if (est != MK_EST_HSIC0) return;
    const double *diag = v + mk_tri_len(m);
    for (int64_t i = 0; i < m; i++) out[mk_tri_len(m) + i] = diag[perm[i]];
}

void mk_cka_from_sums(int nx, int ny, const double *hxy, const double *hxx, const double *hyy,
                      double *cka)
{
    for (int i = 0; i < nx; i++)
        for (int j = 0; j < ny; j++)
            cka[i * ny + j] = hxx[i] > 0.0 && hyy[j] > 0.0 ? hxy[i * ny + j] / sqrt(hxx[i] * hyy[j]) : NAN;
}

mk_err mk_jackknife_stderr(int nx, int ny, const double *sums, int64_t G, const double *groups, double *se)
{
    int64_t len = (int64_t)nx * ny + nx + ny, cells = (int64_t)nx * ny;
    mk_err err = MK_OK;
    double *left = mk_malloc((size_t)len * sizeof *left, "jackknife sums", &err);
    double *theta = err ? NULL : mk_malloc((size_t)(G * cells) * sizeof *theta, "jackknife estimates", &err);
    if (err) {
        free(left);
        return err;
    }
    for (int64_t g = 0; g < G; g++) {
        for (int64_t k = 0; k < len; k++) left[k] = sums[k] - groups[g * len + k];
        mk_cka_from_sums(nx, ny, left, left + cells, left + cells + nx, theta + g * cells);
    }
    for (int64_t k = 0; k < cells; k++) {
        double mean = 0.0, ss = 0.0;
        for (int64_t g = 0; g < G; g++) mean += theta[g * cells + k];
        mean /= (double)G;
        for (int64_t g = 0; g < G; g++) ss += (theta[g * cells + k] - mean) * (theta[g * cells + k] - mean);
        se[k] = sqrt((double)(G - 1) / (double)G * ss);
    }
    free(left);
    free(theta);
    return MK_OK;
}

void mk_perm_pvalue(int nx, int ny, const double *hxy, int64_t R, const double *perm, double *p)
{
    int64_t cells = (int64_t)nx * ny;
    for (int64_t k = 0; k < cells; k++) {
        int64_t above = 0;
        for (int64_t r = 0; r < R; r++) above += perm[r * cells + k] >= hxy[k];
        p[k] = isnan(hxy[k]) ? NAN : (double)(1 + above) / (double)(R + 1);
    }
}
