#include "mpicka/hsic.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "mpicka/blas.h"

static size_t prec_size(mk_precision prec)
{
    return prec == MK_PREC_FLOAT32 ? sizeof(float) : sizeof(double);
}

mk_err mk_hsic_ws_init(mk_hsic_ws *ws, int64_t m_max, int64_t p_max, mk_precision prec)
{
    mk_err err = MK_OK;
    memset(ws, 0, sizeof *ws);
    ws->m_max = m_max;
    ws->p_max = p_max;
    ws->prec = prec;
    ws->x = mk_malloc((size_t)(m_max * p_max) * prec_size(prec), "a centred layer block", &err);
    if (!err)
        ws->gram = mk_malloc((size_t)(m_max * m_max) * prec_size(prec), "a Gram matrix", &err);
    if (!err) ws->colmean = mk_malloc((size_t)p_max * sizeof(double), "column means", &err);
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

int64_t mk_centre(mk_hsic_ws *ws, const void *in, int in_f32, int64_t m, int64_t p)
{
    const float *inf = in;
    const double *ind = in;
    double *mean = ws->colmean;
    for (int64_t j = 0; j < p; j++) mean[j] = 0.0;
    for (int64_t i = 0; i < m; i++) {
        if (in_f32)
            for (int64_t j = 0; j < p; j++) mean[j] += inf[i * p + j];
        else
            for (int64_t j = 0; j < p; j++) mean[j] += ind[i * p + j];
    }
    for (int64_t j = 0; j < p; j++) {
        if (!isfinite(mean[j])) return first_bad_row(in, in_f32, m, p);
        mean[j] /= (double)m;
    }
    for (int64_t i = 0; i < m; i++)
        for (int64_t j = 0; j < p; j++) {
            double v = (in_f32 ? inf[i * p + j] : ind[i * p + j]) - mean[j];
            if (ws->prec == MK_PREC_FLOAT32)
                ((float *)ws->x)[i * p + j] = (float)v;
            else
                ((double *)ws->x)[i * p + j] = v;
        }
    return -1;
}

void mk_gram(mk_hsic_ws *ws, int64_t m, int64_t p)
{
    if (ws->prec == MK_PREC_FLOAT32)
        mk_ssyrk((int)m, (int)p, ws->x, ws->gram);
    else
        mk_dsyrk((int)m, (int)p, ws->x, ws->gram);
}

static inline double gram_at(const mk_hsic_ws *ws, int64_t m, int64_t i, int64_t j)
{
    return ws->prec == MK_PREC_FLOAT32 ? ((const float *)ws->gram)[i * m + j]
                                       : ((const double *)ws->gram)[i * m + j];
}

/* Unbiased centring: with the diagonal zeroed and r_i the row sums,
 * mu_i = r_i/(m-2) - sum(r)/(2(m-1)(m-2)) and K~u_ij = K_ij - mu_i - mu_j. */
void mk_ucentre(mk_hsic_ws *ws, int64_t m, double *v)
{
    double *mu = ws->rowsum;
    for (int64_t i = 0; i < m; i++) mu[i] = 0.0;
    for (int64_t i = 0; i < m; i++)
        for (int64_t j = i + 1; j < m; j++) {
            double k = gram_at(ws, m, i, j);
            mu[i] += k;
            mu[j] += k;
        }
    double total = 0.0;
    for (int64_t i = 0; i < m; i++) total += mu[i];
    double shift = total / (2.0 * (double)(m - 1) * (double)(m - 2));
    for (int64_t i = 0; i < m; i++) mu[i] = mu[i] / (double)(m - 2) - shift;
    int64_t t = 0;
    for (int64_t i = 0; i < m; i++)
        for (int64_t j = i + 1; j < m; j++) v[t++] = gram_at(ws, m, i, j) - mu[i] - mu[j];
}

int64_t mk_layer_row(mk_hsic_ws *ws, const void *in, int in_f32, int64_t m, int64_t p, double *v)
{
    int64_t bad = mk_centre(ws, in, in_f32, m, p);
    if (bad >= 0) return bad;
    mk_gram(ws, m, p);
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
