#include "oracle.h"

#include <hdf5.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

static double *gram_zero_diag(const double *x, int64_t p, int64_t m)
{
    double *k = calloc((size_t)(m * m), sizeof *k);
    for (int64_t i = 0; i < m; i++)
        for (int64_t j = 0; j < m; j++) {
            if (i == j) continue;
            double s = 0.0;
            for (int64_t f = 0; f < p; f++) s += x[i * p + f] * x[j * p + f];
            k[i * m + j] = s;
        }
    return k;
}

double oracle_hsic1(const double *x, int64_t p, const double *y, int64_t q, int64_t m)
{
    double *k = gram_zero_diag(x, p, m), *l = gram_zero_diag(y, q, m);
    double *kl = calloc((size_t)(m * m), sizeof *kl);
    for (int64_t i = 0; i < m; i++)
        for (int64_t j = 0; j < m; j++)
            for (int64_t t = 0; t < m; t++) kl[i * m + j] += k[i * m + t] * l[t * m + j];
    double trace = 0.0, sum_k = 0.0, sum_l = 0.0, sum_kl = 0.0;
    for (int64_t i = 0; i < m; i++) {
        trace += kl[i * m + i];
        for (int64_t j = 0; j < m; j++) {
            sum_k += k[i * m + j];
            sum_l += l[i * m + j];
            sum_kl += kl[i * m + j];
        }
    }
    double md = (double)m;
    double h = (trace + sum_k * sum_l / ((md - 1) * (md - 2)) - 2.0 / (md - 2) * sum_kl) / (md * (md - 3));
    free(k);
    free(l);
    free(kl);
    return h;
}

void oracle_centre(const double *x, int64_t m, int64_t p, double *out)
{
    for (int64_t f = 0; f < p; f++) {
        double mean = 0.0;
        for (int64_t i = 0; i < m; i++) mean += x[i * p + f];
        mean /= (double)m;
        for (int64_t i = 0; i < m; i++) out[i * p + f] = x[i * p + f] - mean;
    }
}

int64_t oracle_read_layer(const char *file, const char *dataset, oracle_layer *layer)
{
    hid_t fid = H5Fopen(file, H5F_ACC_RDONLY, H5P_DEFAULT);
    if (fid < 0) return -1;
    hid_t dset = H5Dopen2(fid, dataset, H5P_DEFAULT);
    hid_t space = H5Dget_space(dset);
    hsize_t dims[8];
    int rank = H5Sget_simple_extent_dims(space, dims, NULL);
    int64_t n = (int64_t)dims[0];
    layer->p = 1;
    for (int d = 1; d < rank; d++) layer->p *= (int64_t)dims[d];
    layer->data = malloc((size_t)(n * layer->p) * sizeof(double));
    herr_t st = H5Dread(dset, H5T_NATIVE_DOUBLE, H5S_ALL, H5S_ALL, H5P_DEFAULT, layer->data);
    H5Sclose(space);
    H5Dclose(dset);
    H5Fclose(fid);
    return st < 0 ? -1 : n;
}

static double *gather(const oracle_layer *layer, const int64_t *rows, int64_t m)
{
    double *raw = malloc((size_t)(m * layer->p) * sizeof *raw), *c = malloc((size_t)(m * layer->p) * sizeof *c);
    for (int64_t i = 0; i < m; i++)
        memcpy(raw + i * layer->p, layer->data + rows[i] * layer->p, (size_t)layer->p * sizeof(double));
    oracle_centre(raw, m, layer->p, c);
    free(raw);
    return c;
}

void oracle_minibatch_cka(const oracle_layer *x, int nx, const oracle_layer *y, int ny,
                          int64_t nbatches, const int64_t *const *batch_rows, const int64_t *batch_sizes,
                          double *cka)
{
    double *hxy = calloc((size_t)(nx * ny), sizeof *hxy), *hxx = calloc((size_t)nx, sizeof *hxx);
    double *hyy = calloc((size_t)ny, sizeof *hyy);
    for (int64_t b = 0; b < nbatches; b++) {
        int64_t m = batch_sizes[b];
        double **bx = malloc((size_t)nx * sizeof *bx), **by = malloc((size_t)ny * sizeof *by);
        for (int i = 0; i < nx; i++) bx[i] = gather(&x[i], batch_rows[b], m);
        for (int j = 0; j < ny; j++) by[j] = gather(&y[j], batch_rows[b], m);
        for (int i = 0; i < nx; i++) {
            hxx[i] += oracle_hsic1(bx[i], x[i].p, bx[i], x[i].p, m);
            for (int j = 0; j < ny; j++) hxy[i * ny + j] += oracle_hsic1(bx[i], x[i].p, by[j], y[j].p, m);
        }
        for (int j = 0; j < ny; j++) hyy[j] += oracle_hsic1(by[j], y[j].p, by[j], y[j].p, m);
        for (int i = 0; i < nx; i++) free(bx[i]);
        for (int j = 0; j < ny; j++) free(by[j]);
        free(bx);
        free(by);
    }
    for (int i = 0; i < nx; i++)
        for (int j = 0; j < ny; j++) cka[i * ny + j] = hxy[i * ny + j] / sqrt(hxx[i] * hyy[j]);
    free(hxy);
    free(hxx);
    free(hyy);
}

static double sq_dist(const double *x, int64_t p, int64_t i, int64_t j)
{
    double s = 0.0;
    for (int64_t f = 0; f < p; f++) {
        double d = x[i * p + f] - x[j * p + f];
        s += d * d;
    }
    return s;
}

static int cmp_double(const void *a, const void *b)
{
    double u = *(const double *)a, v = *(const double *)b;
    return (u > v) - (u < v);
}

double oracle_rbf_median(const double *x, int64_t p, int64_t m)
{
    int64_t count = m * m;
    double *d = malloc((size_t)count * sizeof *d);
    for (int64_t i = 0; i < m; i++)
        for (int64_t j = 0; j < m; j++) d[i * m + j] = sq_dist(x, p, i, j);
    qsort(d, (size_t)count, sizeof *d, cmp_double);
    double med = count % 2 ? d[count / 2] : 0.5 * (d[count / 2 - 1] + d[count / 2]);
    free(d);
    return med;
}

void oracle_rbf_gram(const double *x, int64_t p, int64_t m, double threshold, double *k)
{
    double med = oracle_rbf_median(x, p, m);
    double denom = 2.0 * threshold * threshold * med;
    for (int64_t i = 0; i < m; i++)
        for (int64_t j = 0; j < m; j++) k[i * m + j] = exp(-sq_dist(x, p, i, j) / denom);
}

void oracle_linear_gram(const double *x, int64_t p, int64_t m, double *k)
{
    for (int64_t i = 0; i < m; i++)
        for (int64_t j = 0; j < m; j++) {
            double s = 0.0;
            for (int64_t f = 0; f < p; f++) s += x[i * p + f] * x[j * p + f];
            k[i * m + j] = s;
        }
}

/* c = a b, all m by m. */
static void matmul_sq(const double *a, const double *b, int64_t m, double *c)
{
    for (int64_t i = 0; i < m; i++)
        for (int64_t j = 0; j < m; j++) {
            double s = 0.0;
            for (int64_t t = 0; t < m; t++) s += a[i * m + t] * b[t * m + j];
            c[i * m + j] = s;
        }
}

double oracle_hsic1_gram(const double *k, const double *l, int64_t m)
{
    size_t mm = (size_t)(m * m);
    double *kt = malloc(mm * sizeof *kt), *lt = malloc(mm * sizeof *lt), *kl = malloc(mm * sizeof *kl);
    memcpy(kt, k, mm * sizeof *kt);
    memcpy(lt, l, mm * sizeof *lt);
    for (int64_t i = 0; i < m; i++) kt[i * m + i] = lt[i * m + i] = 0.0;
    matmul_sq(kt, lt, m, kl);
    double trace = 0.0, sum_k = 0.0, sum_l = 0.0, sum_kl = 0.0;
    for (int64_t i = 0; i < m; i++) {
        trace += kl[i * m + i];
        for (int64_t j = 0; j < m; j++) {
            sum_k += kt[i * m + j];
            sum_l += lt[i * m + j];
            sum_kl += kl[i * m + j];
        }
    }
    double md = (double)m;
    double h = (trace + sum_k * sum_l / ((md - 1) * (md - 2)) - 2.0 / (md - 2) * sum_kl) / (md * (md - 3));
    free(kt);
    free(lt);
    free(kl);
    return h;
}

double oracle_hsic0_gram(const double *k, const double *l, int64_t m)
{
    size_t mm = (size_t)(m * m);
    double *h = malloc(mm * sizeof *h), *kh = malloc(mm * sizeof *kh), *lh = malloc(mm * sizeof *lh);
    double *prod = malloc(mm * sizeof *prod);
    for (int64_t i = 0; i < m; i++)
        for (int64_t j = 0; j < m; j++) h[i * m + j] = (i == j ? 1.0 : 0.0) - 1.0 / (double)m;
    matmul_sq(k, h, m, kh);
    matmul_sq(l, h, m, lh);
    matmul_sq(kh, lh, m, prod);
    double trace = 0.0;
    for (int64_t i = 0; i < m; i++) trace += prod[i * m + i];
    free(h);
    free(kh);
    free(lh);
    free(prod);
    return trace / (((double)m - 1) * ((double)m - 1));
}

double oracle_cka_gram(double (*hsic)(const double *, const double *, int64_t), const double *k,
                       const double *l, int64_t m)
{
    return hsic(k, l, m) / sqrt(hsic(k, k, m) * hsic(l, l, m));
}

static double *full_gram(const oracle_layer *layer, int64_t n)
{
    double *c = malloc((size_t)(n * layer->p) * sizeof *c), *k = malloc((size_t)(n * n) * sizeof *k);
    oracle_centre(layer->data, n, layer->p, c);
    oracle_linear_gram(c, layer->p, n, k);
    free(c);
    return k;
}

void oracle_full_cka(const oracle_layer *x, int nx, const oracle_layer *y, int ny, int64_t n, int debiased,
                     double *cka)
{
    double (*hsic)(const double *, const double *, int64_t) = debiased ? oracle_hsic1_gram : oracle_hsic0_gram;
    double **kx = malloc((size_t)nx * sizeof *kx), **ky = malloc((size_t)ny * sizeof *ky);
    for (int i = 0; i < nx; i++) kx[i] = full_gram(&x[i], n);
    for (int j = 0; j < ny; j++) ky[j] = full_gram(&y[j], n);
    for (int i = 0; i < nx; i++)
        for (int j = 0; j < ny; j++) cka[i * ny + j] = oracle_cka_gram(hsic, kx[i], ky[j], n);
    for (int i = 0; i < nx; i++) free(kx[i]);
    for (int j = 0; j < ny; j++) free(ky[j]);
    free(kx);
    free(ky);
}

double oracle_ks_uniform(const double *u, int64_t n)
{
    double *s = malloc((size_t)n * sizeof *s);
    memcpy(s, u, (size_t)n * sizeof *s);
    qsort(s, (size_t)n, sizeof *s, cmp_double);
    double d = 0.0;
    for (int64_t i = 1; i <= n; i++) {
        double plus = (double)i / (double)n - s[i - 1], minus = s[i - 1] - (double)(i - 1) / (double)n;
        if (plus > d) d = plus;
        if (minus > d) d = minus;
    }
    free(s);
    return d;
}

double oracle_ks_pvalue(double d, int64_t n)
{
    double sn = sqrt((double)n);
    double lambda = (sn + 0.12 + 0.11 / sn) * d;
    /* For lambda < 0.15, 1 - p < (sqrt(2 pi)/lambda) exp(-pi^2/(8 lambda^2)) < 1e-22
     * (the equivalent Jacobi-theta form), so p is 1 in double precision; the
     * alternating series would need ~4.5/lambda terms there. */
    if (lambda < 0.15) return 1.0;
    double sum = 0.0;
    for (int64_t k = 1;; k++) {
        double term = exp(-2.0 * (double)k * (double)k * lambda * lambda);
        sum += (k % 2 ? term : -term);
        if (term < 1e-20) break;
    }
    double p = 2.0 * sum;
    return p < 0.0 ? 0.0 : (p > 1.0 ? 1.0 : p);
}
