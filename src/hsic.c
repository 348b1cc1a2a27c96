#include "mpicka/hsic.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "mpicka/blas.h"

mk_err mk_hsic_ws_init(mk_hsic_ws *ws, int64_t m_max, int64_t p_max, mk_precision prec)
{
    mk_err err = MK_OK;
    memset(ws, 0, sizeof *ws);
    ws->m_max = m_max;
    ws->p_max = p_max;
    ws->prec = prec;
    if (p_max > 0) {
        ws->x = mk_malloc((size_t)(m_max * p_max) * mk_prec_size(prec), "a centred layer block", &err);
        if (!err) ws->colmean = mk_malloc((size_t)p_max * sizeof(double), "column means", &err);
    }
    if (!err) ws->gram = mk_malloc((size_t)(m_max * m_max) * mk_prec_size(prec), "a Gram matrix", &err);
    if (!err) ws->rowsum = mk_malloc((size_t)m_max * sizeof(double), "Gram row sums", &err);
    if (err) mk_hsic_ws_free(ws);
    return err;
}

void mk_hsic_ws_free(mk_hsic_ws *ws)
{
    free(ws->x);
    free(ws->gram);
    free(ws->colmean);
    free(ws->rowsum);
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
 * in (in-place centring), hence no restrict on them. */
#define MK_SUBTRACT(IN_T, OUT_T)                                                  \
    static void subtract_##IN_T##_##OUT_T(const IN_T *in, const double *restrict mean, int64_t m,   \
                                          int64_t p, OUT_T *out)                  \
    {                                                                             \
        for (int64_t i = 0; i < m; i++)                                           \
            for (int64_t j = 0; j < p; j++) out[i * p + j] = (OUT_T)(in[i * p + j] - mean[j]); \
    }
MK_SUBTRACT(float, float)
MK_SUBTRACT(float, double)
MK_SUBTRACT(double, float)
MK_SUBTRACT(double, double)

#define MK_COLSUM(IN_T)                                                           \
    static void colsum_##IN_T(const IN_T *restrict in, int64_t m, int64_t p, double *restrict sum) \
    {                                                                             \
        for (int64_t j = 0; j < p; j++) sum[j] = 0.0;                            \
        for (int64_t i = 0; i < m; i++)                                           \
            for (int64_t j = 0; j < p; j++) sum[j] += in[i * p + j];              \
    }
MK_COLSUM(float)
MK_COLSUM(double)

int64_t mk_centre(const void *in, int in_f32, int64_t m, int64_t p, mk_precision prec, double *mean,
                  void *out)
{
    if (in_f32)
        colsum_float(in, m, p, mean);
    else
        colsum_double(in, m, p, mean);
    for (int64_t j = 0; j < p; j++) {
        if (!isfinite(mean[j])) return first_bad_row(in, in_f32, m, p);
        mean[j] /= (double)m;
    }
    int out_f32 = prec == MK_PREC_FLOAT32;
    if (in_f32 && out_f32) subtract_float_float(in, mean, m, p, out);
    if (in_f32 && !out_f32) subtract_float_double(in, mean, m, p, out);
    if (!in_f32 && out_f32) subtract_double_float(in, mean, m, p, out);
    if (!in_f32 && !out_f32) subtract_double_double(in, mean, m, p, out);
    return -1;
}

void mk_gram(mk_hsic_ws *ws, const void *x, int64_t m, int64_t p)
{
    if (ws->prec == MK_PREC_FLOAT32)
        mk_ssyrk((int)m, (int)p, x, ws->gram);
    else
        mk_dsyrk((int)m, (int)p, x, ws->gram);
}

/* Copy the strict upper triangle of the Gram, row by row, into v as double. */
static void pack_upper(const mk_hsic_ws *ws, int64_t m, double *restrict v)
{
    for (int64_t i = 0, t = 0; i < m; t += m - 1 - i, i++) {
        if (ws->prec == MK_PREC_FLOAT32) {
            const float *restrict row = (const float *)ws->gram + i * m;
            for (int64_t j = i + 1; j < m; j++) v[t + j - i - 1] = row[j];
        } else {
            const double *restrict row = (const double *)ws->gram + i * m;
            for (int64_t j = i + 1; j < m; j++) v[t + j - i - 1] = row[j];
        }
    }
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

/* Unbiased centring: with the diagonal zeroed and r_i the row sums,
 * mu_i = r_i/(m-2) - sum(r)/(2(m-1)(m-2)) and K~u_ij = K_ij - mu_i - mu_j. */
void mk_ucentre(mk_hsic_ws *ws, int64_t m, double *v)
{
    double *mu = ws->rowsum;
    pack_upper(ws, m, v);
    row_sums(v, m, mu);
    double total = 0.0;
    for (int64_t i = 0; i < m; i++) total += mu[i];
    double shift = total / (2.0 * (double)(m - 1) * (double)(m - 2));
    for (int64_t i = 0; i < m; i++) mu[i] = mu[i] / (double)(m - 2) - shift;
    for (int64_t i = 0, t = 0; i < m; t += m - 1 - i, i++) {
        double *restrict row = v + t;
        const double *restrict muj = mu + i + 1;
        double mui = mu[i];
        for (int64_t k = 0; k < m - 1 - i; k++) row[k] = row[k] - mui - muj[k];
    }
}

int64_t mk_layer_row(mk_hsic_ws *ws, const void *in, int in_f32, int64_t m, int64_t p, double *v)
{
    int64_t bad = mk_centre(in, in_f32, m, p, ws->prec, ws->colmean, ws->x);
    if (bad >= 0) return bad;
    mk_gram(ws, ws->x, m, p);
    mk_ucentre(ws, m, v);
    return -1;
}

void mk_pairs(const double *vx, int nx, const double *vy, int ny, int64_t m,
              double *hxy, double *hxx, double *hyy)
{
    int64_t t = mk_tri_len(m);
    /* Each off-diagonal entry appears twice in the Frobenius product. */
    double scale = 2.0 / ((double)m * (double)(m - 3));
    if (vy == NULL) {
        mk_dsyrk(nx, (int)t, vx, hxy);
        for (int i = 0; i < nx; i++)
            for (int j = i; j < nx; j++) {
                double h = hxy[i * nx + j] * scale;
                hxy[i * nx + j] = h;
                hxy[j * nx + i] = h;
            }
        for (int i = 0; i < nx; i++) hxx[i] = hyy[i] = hxy[i * nx + i];
        return;
    }
    mk_dgemm_nt(nx, ny, (int)t, vx, vy, hxy);
    for (int64_t k = 0; k < (int64_t)nx * ny; k++) hxy[k] *= scale;
    for (int i = 0; i < nx; i++) hxx[i] = mk_ddot((int)t, vx + i * t, vx + i * t) * scale;
    for (int j = 0; j < ny; j++) hyy[j] = mk_ddot((int)t, vy + j * t, vy + j * t) * scale;
}

void mk_cka_from_sums(int nx, int ny, const double *hxy, const double *hxx, const double *hyy,
                      double *cka)
{
    for (int i = 0; i < nx; i++)
        for (int j = 0; j < ny; j++)
            cka[i * ny + j] = hxx[i] > 0.0 && hyy[j] > 0.0 ? hxy[i * ny + j] / sqrt(hxx[i] * hyy[j]) : NAN;
}
