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
