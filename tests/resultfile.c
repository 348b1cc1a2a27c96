#include "resultfile.h"

#include <hdf5.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void must(int ok, const char *what)
{
    if (!ok) {
        fprintf(stderr, "resultfile: cannot write %s\n", what);
        abort();
    }
}

static int skipped(const rf_result *r, const char *name) { return r->skip && strcmp(r->skip, name) == 0; }

static void put_doubles(hid_t fid, const char *name, const double *v, int rank, const hsize_t *dims,
                        hid_t ftype)
{
    hid_t space = H5Screate_simple(rank, dims, NULL);
    hid_t dset = H5Dcreate2(fid, name, ftype, space, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    must(dset >= 0 && H5Dwrite(dset, H5T_NATIVE_DOUBLE, H5S_ALL, H5S_ALL, H5P_DEFAULT, v) >= 0, name);
    H5Dclose(dset);
    H5Sclose(space);
}

/* fixed: that many bytes; 0: variable-length. */
static hid_t string_type(size_t fixed)
{
    hid_t t = H5Tcopy(H5T_C_S1);
    H5Tset_size(t, fixed ? fixed : H5T_VARIABLE);
    H5Tset_cset(t, H5T_CSET_UTF8);
    return t;
}

static void put_names(hid_t fid, const char *name, const char *const *names, int n, int fixed)
{
    hsize_t dim = (hsize_t)n;
    hid_t type = string_type(fixed ? 64 : 0), space = H5Screate_simple(1, &dim, NULL);
    hid_t dset = H5Dcreate2(fid, name, type, space, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    char *buf = calloc((size_t)n + 1, 64);
    for (int k = 0; k < n && fixed; k++) snprintf(buf + 64 * k, 64, "%s", names[k]);
    const void *data = fixed ? (const void *)buf : (const void *)names;
    must(dset >= 0 && H5Dwrite(dset, type, H5S_ALL, H5S_ALL, H5P_DEFAULT, data) >= 0, name);
    free(buf);
    H5Dclose(dset);
    H5Sclose(space);
    H5Tclose(type);
}

static void put_attr(hid_t fid, const rf_result *r, const char *name, hid_t ftype, hid_t mtype, const void *v)
{
    if (skipped(r, name)) return;
    hid_t space = H5Screate(H5S_SCALAR);
    hid_t attr = H5Acreate2(fid, name, ftype, space, H5P_DEFAULT, H5P_DEFAULT);
    must(attr >= 0 && H5Awrite(attr, mtype, v) >= 0, name);
    H5Aclose(attr);
    H5Sclose(space);
}

static void put_int(hid_t fid, const rf_result *r, const char *name, int64_t v)
{
    put_attr(fid, r, name, H5T_STD_I64LE, H5T_NATIVE_INT64, &v);
}

static void put_text(hid_t fid, const rf_result *r, const char *name, const char *v)
{
    hid_t t = string_type(0);
    put_attr(fid, r, name, t, t, &v);
    H5Tclose(t);
}

/* A string attribute as mpicka writes them, or fixed-length (read too). */
static void put_string(hid_t loc, const rf_result *r, const char *name, const char *v, int fixed)
{
    hid_t t = string_type(fixed ? strlen(v) + 1 : 0);
    put_attr(loc, r, name, t, t, fixed ? (const void *)v : (const void *)&v);
    H5Tclose(t);
}

static void put_meta(hid_t fid, const rf_result *r)
{
    double threshold = RF_META_THRESHOLD;
    if (r->meta_dataset) {
        hsize_t one = 1;
        put_doubles(fid, "meta", &threshold, 1, &one, H5T_IEEE_F64LE);
        return;
    }
    hid_t g = H5Gcreate2(fid, "meta", H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    must(g >= 0, "/meta");
    put_string(g, r, "estimator", RF_META_ESTIMATOR, r->meta_fixed);
    put_string(g, r, "kernel", RF_META_KERNEL, r->meta_fixed);
    put_attr(g, r, "rbf_threshold", H5T_IEEE_F64LE, H5T_NATIVE_DOUBLE, &threshold);
    put_int(g, r, "debiased", 1);
    put_int(g, r, "jackknife_groups", RF_META_GROUPS);
    put_int(g, r, "permutations", RF_META_PERMUTATIONS);
    put_string(g, r, "description", r->meta, r->meta_fixed);
    must(H5Gclose(g) >= 0, "/meta");
}

/* /cka_stderr, /cka_pvalue and /meta, those asked for. */
static void put_extras(hid_t fid, const rf_result *r)
{
    hsize_t dims[2] = {(hsize_t)r->nx, (hsize_t)r->ny}, turned[2] = {dims[1], dims[0]};
    if (r->cka_stderr)
        put_doubles(fid, "cka_stderr", r->cka_stderr, 2, r->stderr_transposed ? turned : dims, H5T_IEEE_F64LE);
    if (r->cka_pvalue)
        put_doubles(fid, "cka_pvalue", r->cka_pvalue, 2, dims, r->pvalue_int ? H5T_STD_I32LE : H5T_IEEE_F64LE);
    if (r->meta) put_meta(fid, r);
}

static void put_attrs(hid_t fid, const rf_result *r)
{
    uint64_t seed = RF_SEED;
    double seconds = RF_SECONDS, total = RF_SECONDS_TOTAL;
    put_int(fid, r, "n", RF_N);
    put_int(fid, r, "batch_size", 256);
    put_int(fid, r, "batches", 3);
    put_int(fid, r, "batches_per_epoch", 3);
    put_int(fid, r, "dropped_per_epoch", 1);
    put_int(fid, r, "epochs", 1);
    put_int(fid, r, "shuffle", 0);
    put_attr(fid, r, "seed", H5T_STD_U64LE, H5T_NATIVE_UINT64, &seed);
    if (r->self_as_text)
        put_text(fid, r, "self", "yes");
    else
        put_int(fid, r, "self", r->self);
    put_int(fid, r, "ranks", RF_RANKS);
    put_int(fid, r, "blas_threads", 1);
    put_attr(fid, r, "seconds", H5T_IEEE_F64LE, H5T_NATIVE_DOUBLE, &seconds);
    put_attr(fid, r, "seconds_total", H5T_IEEE_F64LE, H5T_NATIVE_DOUBLE, &total);
    put_text(fid, r, "precision", "float64");
    put_text(fid, r, "estimator", "minibatch linear CKA, unbiased HSIC_1");
    put_text(fid, r, "version", "0.1.0");
    put_text(fid, r, "config", RF_CONFIG);
    put_text(fid, r, "x_name", r->x_name);
    put_text(fid, r, "y_name", r->y_name);
    put_text(fid, r, "x_file", r->files ? r->files : "acts/a.h5");
    put_text(fid, r, "y_file", r->files ? r->files : r->self ? "acts/a.h5" : "acts/b.h5");
}

static void put_matrix(hid_t fid, const rf_result *r)
{
    hsize_t dims[2] = {(hsize_t)r->nx, (hsize_t)r->ny}, flat = dims[0] * dims[1];
    if (!skipped(r, "cka"))
        put_doubles(fid, "cka", r->cka, r->cka_1d ? 1 : 2, r->cka_1d ? &flat : dims,
                    r->cka_int ? H5T_STD_I32LE : H5T_IEEE_F64LE);
    put_doubles(fid, "hsic_xy", r->cka, 2, dims, H5T_IEEE_F64LE);
    put_doubles(fid, "hsic_xx", r->cka, 1, &dims[0], H5T_IEEE_F64LE);
    put_doubles(fid, "hsic_yy", r->cka, 1, &dims[1], H5T_IEEE_F64LE);
}

static void put_x_names(hid_t fid, const rf_result *r)
{
    if (skipped(r, "x_layers")) return;
    if (r->x_layers_numeric) {
        hsize_t dim = (hsize_t)r->nx;
        put_doubles(fid, "x_layers", r->cka, 1, &dim, H5T_IEEE_F64LE);
        return;
    }
    put_names(fid, "x_layers", r->x_layers, r->nx - (r->x_layers_short ? 1 : 0), r->fixed_strings);
}

static void put_int_array(hid_t fid, const char *name, const long long *v, int n, int as_float)
{
    hsize_t dim = (hsize_t)n;
    hid_t space = H5Screate_simple(1, &dim, NULL);
    hid_t dset = H5Dcreate2(fid, name, as_float ? H5T_IEEE_F64LE : H5T_STD_I64LE, space, H5P_DEFAULT,
                            H5P_DEFAULT, H5P_DEFAULT);
    must(dset >= 0 && H5Dwrite(dset, H5T_NATIVE_LLONG, H5S_ALL, H5S_ALL, H5P_DEFAULT, v) >= 0, name);
    H5Dclose(dset);
    H5Sclose(space);
}

/* The datasets and attribute of a models result. */
static void put_models(hid_t fid, const rf_result *r)
{
    int n = r->nmodels;
    if (r->models_as_text)
        put_text(fid, r, "models", "three");
    else
        put_int(fid, r, "models", r->models_attr ? r->models_attr : n);
    if (!skipped(r, "model_names"))
        put_names(fid, "model_names", r->model_names, r->names_count ? r->names_count : n, 0);
    if (!skipped(r, "model_files")) put_names(fid, "model_files", r->model_files, n, 0);
    if (!skipped(r, "model_offsets"))
        put_int_array(fid, "model_offsets", r->model_offsets, r->offsets_count ? r->offsets_count : n + 1,
                      r->offsets_float);
    if (!skipped(r, "matched_layers")) put_names(fid, "matched_layers", r->matched_layers, r->nmatched, 0);
    hsize_t dims[3] = {(hsize_t)r->nmatched, (hsize_t)n, (hsize_t)n}, first[3] = {dims[0], dims[1], dims[2]};
    if (r->matched_first) first[0] = (hsize_t)r->matched_first;
    const double *v[3] = {r->cka_matched, r->cka_matched_stderr, r->cka_matched_pvalue};
    const char *names[3] = {"cka_matched", "cka_matched_stderr", "cka_matched_pvalue"};
    double *big = NULL;
    if (r->matched_first > r->nmatched) { /* more rows than there are: repeat the first */
        size_t nn = (size_t)n * n;
        big = calloc((size_t)r->matched_first * nn, sizeof *big);
        for (int k = 0; k < r->matched_first; k++) memcpy(big + k * nn, r->cka_matched, nn * sizeof *big);
        v[0] = big;
    }
    for (int m = 0; m < 3; m++)
        if (v[m] && r->nmatched > 0 && !skipped(r, names[m]))
            put_doubles(fid, names[m], v[m], 3, m == 0 ? first : dims, H5T_IEEE_F64LE);
    free(big);
}

void rf_write(const char *path, const rf_result *r)
{
    hid_t fid = H5Fcreate(path, H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
    must(fid >= 0, path);
    put_matrix(fid, r);
    put_x_names(fid, r);
    if (!skipped(r, "y_layers")) put_names(fid, "y_layers", r->y_layers, r->ny, r->fixed_strings);
    put_attrs(fid, r);
    put_extras(fid, r);
    if (r->nmodels) put_models(fid, r);
    must(H5Fclose(fid) >= 0, path);
}

static void write_made(const char *path, int nx, int ny, int self, int full)
{
    size_t n = (size_t)nx * (size_t)ny;
    double *cka = malloc(3 * n * sizeof *cka), *se = cka + n, *p = se + n;
    char **xl = malloc((size_t)nx * sizeof *xl), **yl = malloc((size_t)ny * sizeof *yl);
    for (int i = 0; i < nx; i++) {
        xl[i] = malloc(32);
        snprintf(xl[i], 32, "x/layer%d", i);
        for (int j = 0; j < ny; j++) {
            cka[i * ny + j] = (i + 1.0) / (i + j + 2.0);
            se[i * ny + j] = (i + j + 1.0) / 1000.0;
            p[i * ny + j] = 1.0 / (i + j + 2.0);
        }
    }
    for (int j = 0; j < ny; j++) {
        yl[j] = malloc(32);
        snprintf(yl[j], 32, self ? "x/layer%d" : "y/layer%d", j);
    }
    rf_result r = {.nx = nx, .ny = ny, .cka = cka, .x_layers = (const char *const *)xl,
                   .y_layers = (const char *const *)yl, .x_name = "alpha",
                   .y_name = self ? "alpha" : "beta", .self = self};
    if (full) {
        r.cka_stderr = se;
        r.cka_pvalue = p;
        r.meta = RF_DESCRIPTION;
    }
    rf_write(path, &r);
    for (int i = 0; i < nx; i++) free(xl[i]);
    for (int j = 0; j < ny; j++) free(yl[j]);
    free(xl);
    free(yl);
    free(cka);
}

void rf_write_simple(const char *path, int nx, int ny, int self) { write_made(path, nx, ny, self, 0); }

void rf_write_full(const char *path, int nx, int ny, int self) { write_made(path, nx, ny, self, 1); }

/* ---- models results ------------------------------------------------------------ */

static char *joined(char *const *parts, const char *const *cparts, int n)
{
    size_t len = 1;
    for (int k = 0; k < n; k++) len += strlen(parts ? parts[k] : cparts[k]) + 2;
    char *s = calloc(len, 1);
    for (int k = 0; k < n; k++) {
        if (k) strcat(s, ", ");
        strcat(s, parts ? parts[k] : cparts[k]);
    }
    return s;
}

/* Values of matrix src for layer `at` of every model pair, into a K by N by N cube. */
static double *matched_cube(const double *src, const long long *off, int n, int k_count, int L)
{
    if (!src) return NULL;
    double *cube = malloc((size_t)k_count * n * n * sizeof *cube + 1);
    for (int k = 0; k < k_count; k++)
        for (int a = 0; a < n; a++)
            for (int b = 0; b < n; b++)
                cube[((size_t)k * n + a) * n + b] = src[(size_t)(off[a] + k) * L + (size_t)(off[b] + k)];
    return cube;
}

void rf_models_make(const rf_models *m, rf_models_made *made)
{
    int n = m->nmodels, L = 0, smallest = m->layers[0];
    memset(made, 0, sizeof *made);
    made->offsets = calloc((size_t)n + 1, sizeof *made->offsets);
    for (int k = 0; k < n; k++) {
        L += m->layers[k];
        made->offsets[k + 1] = L;
        smallest = m->layers[k] < smallest ? m->layers[k] : smallest;
    }
    made->layers = calloc((size_t)L, sizeof *made->layers);
    made->files = calloc((size_t)n, sizeof *made->files);
    made->matched = calloc((size_t)smallest + 1, sizeof *made->matched);
    for (int k = 0; k < n; k++) {
        made->files[k] = malloc(strlen(m->names[k]) + 16);
        sprintf(made->files[k], "acts/%s.h5", m->names[k]);
        for (int j = 0; j < m->layers[k]; j++) {
            made->layers[made->offsets[k] + j] = malloc(32);
            snprintf(made->layers[made->offsets[k] + j], 32, "layer%d", j);
        }
    }
    for (int j = 0; j < smallest; j++) made->matched[j] = made->layers[j]; /* model 0's names */
    made->joined_names = joined(NULL, m->names, n);
    made->joined_files = joined(made->files, NULL, n);
    /* names shared by every model are layer0 .. layer<smallest-1>: model k's j-th */
    const double *src[3] = {m->cka, m->cka_stderr, m->cka_pvalue};
    for (int s = 0; s < 3; s++) made->matched_values[s] = matched_cube(src[s], made->offsets, n, smallest, L);
    rf_result r = {.nx = L, .ny = L, .cka = m->cka, .x_layers = (const char *const *)made->layers,
                   .y_layers = (const char *const *)made->layers, .x_name = made->joined_names,
                   .y_name = made->joined_names, .self = 1, .cka_stderr = m->cka_stderr,
                   .cka_pvalue = m->cka_pvalue, .meta = m->meta, .nmodels = n, .model_names = m->names,
                   .model_files = (const char *const *)made->files, .files = made->joined_files, .model_offsets = made->offsets,
                   .nmatched = smallest, .matched_layers = (const char *const *)made->matched,
                   .cka_matched = made->matched_values[0], .cka_matched_stderr = made->matched_values[1],
                   .cka_matched_pvalue = made->matched_values[2]};
    made->r = r;
}

void rf_models_free(rf_models_made *made)
{
    for (long long k = 0; made->layers && k < made->offsets[made->r.nmodels]; k++) free(made->layers[k]);
    for (int k = 0; made->files && k < made->r.nmodels; k++) free(made->files[k]);
    free(made->layers);
    free(made->files);
    free(made->matched);
    free(made->joined_names);
    free(made->joined_files);
    free(made->offsets);
    for (int s = 0; s < 3; s++) free(made->matched_values[s]);
    memset(made, 0, sizeof *made);
}

void rf_write_models(const char *path, const rf_models *m)
{
    rf_models_made made;
    rf_models_make(m, &made);
    rf_write(path, &made.r);
    rf_models_free(&made);
}
