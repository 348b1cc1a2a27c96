/* Tests of `mpicka synth`: files are written through mk_synth_main into a
 * temporary folder and read back with plain HDF5 calls. Values are checked
 * against statistics of the data model and against each other (same seed,
 * different type, block or layout), not against the generator's own code. */
#include <check.h>
#include <dirent.h>
#include <hdf5.h>
#include <math.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "mpicka/error.h"
#include "mpicka/synth.h"

#define MAX_ARGS 64

static char tmpdir[64];

/* ---- fixture and helpers ------------------------------------------------ */

static void make_tmpdir(void)
{
    snprintf(tmpdir, sizeof tmpdir, "/tmp/mk_synth_XXXXXX");
    ck_assert_ptr_nonnull(mkdtemp(tmpdir));
}

/* Removes plain files and empty folders one level down (what the tests make). */
static void remove_tmpdir(void)
{
    DIR *d = opendir(tmpdir);
    if (!d) return;
    struct dirent *e;
    char path[512];
    while ((e = readdir(d)) != NULL) {
        if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0) continue;
        snprintf(path, sizeof path, "%s/%s", tmpdir, e->d_name);
        if (remove(path) != 0) fprintf(stderr, "test_synth: cannot remove %s\n", path);
    }
    closedir(d);
    rmdir(tmpdir);
}

static const char *tpath(char *buf, size_t size, const char *name)
{
    snprintf(buf, size, "%s/%s", tmpdir, name);
    return buf;
}

/* mk_synth_main("synth", args..., NULL). */
static mk_err synth(const char *first, ...)
{
    char *argv[MAX_ARGS];
    int argc = 0;
    argv[argc++] = (char *)"synth";
    va_list ap;
    va_start(ap, first);
    for (const char *a = first; a; a = va_arg(ap, const char *)) {
        ck_assert_int_lt(argc, MAX_ARGS - 1);
        argv[argc++] = (char *)a;
    }
    va_end(ap);
    argv[argc] = NULL;
    return mk_synth_main(argc, argv);
}

static void synth_ok(const char *first, ...)
{
    char *argv[MAX_ARGS];
    int argc = 0;
    argv[argc++] = (char *)"synth";
    va_list ap;
    va_start(ap, first);
    for (const char *a = first; a; a = va_arg(ap, const char *)) {
        ck_assert_int_lt(argc, MAX_ARGS - 1);
        argv[argc++] = (char *)a;
    }
    va_end(ap);
    argv[argc] = NULL;
    mk_err err = mk_synth_main(argc, argv);
    ck_assert_msg(err == MK_OK, "synth failed (%s): %s", mk_errname(err), mk_errmsg());
}

static int count_entries(const char *dir, const char *containing)
{
    DIR *d = opendir(dir);
    ck_assert_ptr_nonnull(d);
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL)
        if (strcmp(e->d_name, ".") && strcmp(e->d_name, "..") && strstr(e->d_name, containing)) n++;
    closedir(d);
    return n;
}

static hid_t open_file(const char *path)
{
    hid_t f = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT);
    ck_assert_msg(f >= 0, "cannot open %s", path);
    return f;
}

/* Rank and dims (incl. n) of a dataset. */
static int dataset_shape(hid_t file, const char *name, hsize_t *dims)
{
    hid_t d = H5Dopen2(file, name, H5P_DEFAULT);
    ck_assert_msg(d >= 0, "no dataset %s", name);
    hid_t s = H5Dget_space(d);
    int rank = H5Sget_simple_extent_ndims(s);
    ck_assert_int_ge(rank, 1);
    ck_assert_int_eq(H5Sget_simple_extent_dims(s, dims, NULL), rank);
    ck_assert_int_ge(H5Sclose(s), 0);
    ck_assert_int_ge(H5Dclose(d), 0);
    return rank;
}

/* The whole dataset converted to memtype; *count elements; caller frees. */
static void *read_as(hid_t file, const char *name, hid_t memtype, size_t *count)
{
    hsize_t dims[8];
    int rank = dataset_shape(file, name, dims);
    size_t n = 1;
    for (int i = 0; i < rank; i++) n *= (size_t)dims[i];
    void *buf = malloc(n * H5Tget_size(memtype));
    ck_assert_ptr_nonnull(buf);
    hid_t d = H5Dopen2(file, name, H5P_DEFAULT);
    ck_assert_int_ge(H5Dread(d, memtype, H5S_ALL, H5S_ALL, H5P_DEFAULT, buf), 0);
    ck_assert_int_ge(H5Dclose(d), 0);
    *count = n;
    return buf;
}

static double *read_doubles(hid_t file, const char *name, size_t *count)
{
    return read_as(file, name, H5T_NATIVE_DOUBLE, count);
}

/* The stored bytes, read with the file type itself so nothing is converted. */
static unsigned char *read_raw(hid_t file, const char *name, size_t *bytes)
{
    hid_t d = H5Dopen2(file, name, H5P_DEFAULT);
    ck_assert_int_ge(d, 0);
    hid_t t = H5Dget_type(d);
    size_t n;
    unsigned char *buf = read_as(file, name, t, &n);
    *bytes = n * H5Tget_size(t);
    ck_assert_int_ge(H5Tclose(t), 0);
    ck_assert_int_ge(H5Dclose(d), 0);
    return buf;
}

static double attr_double(hid_t file, const char *name)
{
    double v = NAN;
    hid_t a = H5Aopen(file, name, H5P_DEFAULT);
    ck_assert_msg(a >= 0, "no attribute %s", name);
    ck_assert_int_ge(H5Aread(a, H5T_NATIVE_DOUBLE, &v), 0);
    ck_assert_int_ge(H5Aclose(a), 0);
    return v;
}

static uint64_t attr_u64(hid_t file, const char *name)
{
    uint64_t v = 0;
    hid_t a = H5Aopen(file, name, H5P_DEFAULT);
    ck_assert_msg(a >= 0, "no attribute %s", name);
    ck_assert_int_ge(H5Aread(a, H5T_NATIVE_UINT64, &v), 0);
    ck_assert_int_ge(H5Aclose(a), 0);
    return v;
}

static void check_attr_text(hid_t file, const char *name, const char *want)
{
    char buf[256] = {0};
    hid_t a = H5Aopen(file, name, H5P_DEFAULT);
    ck_assert_msg(a >= 0, "no attribute %s", name);
    hid_t t = H5Aget_type(a);
    ck_assert_int_eq(H5Tget_class(t), H5T_STRING);
    ck_assert_int_lt(H5Tget_size(t), sizeof buf);
    ck_assert_int_ge(H5Aread(a, t, buf), 0);
    ck_assert_str_eq(buf, want);
    ck_assert_int_ge(H5Tclose(t), 0);
    ck_assert_int_ge(H5Aclose(a), 0);
}

static void mean_var(const double *x, size_t n, double *mean, double *var)
{
    double s = 0, ss = 0;
    for (size_t i = 0; i < n; i++) s += x[i];
    *mean = s / (double)n;
    for (size_t i = 0; i < n; i++) ss += (x[i] - *mean) * (x[i] - *mean);
    *var = ss / (double)(n - 1);
}

/* Linear CKA of X (n x p) and Y (n x q), written out from its definition:
 * ||Xc^T Yc||_F^2 / (||Xc^T Xc||_F ||Yc^T Yc||_F) with column-centred Xc, Yc. */
static void center_columns(double *x, size_t n, size_t p)
{
    for (size_t j = 0; j < p; j++) {
        double m = 0;
        for (size_t i = 0; i < n; i++) m += x[i * p + j];
        m /= (double)n;
        for (size_t i = 0; i < n; i++) x[i * p + j] -= m;
    }
}

static double cross_norm2(const double *x, size_t p, const double *y, size_t q, size_t n)
{
    double total = 0;
    for (size_t a = 0; a < p; a++)
        for (size_t b = 0; b < q; b++) {
            double s = 0;
            for (size_t i = 0; i < n; i++) s += x[i * p + a] * y[i * q + b];
            total += s * s;
        }
    return total;
}

static double linear_cka(double *x, size_t p, double *y, size_t q, size_t n)
{
    center_columns(x, n, p);
    center_columns(y, n, q);
    return cross_norm2(x, p, y, q, n) / sqrt(cross_norm2(x, p, x, p, n) * cross_norm2(y, q, y, q, n));
}

/* ---- shapes, types, names, attributes ----------------------------------- */

START_TEST(test_defaults)
{
    char out[256];
    synth_ok(tpath(out, sizeof out, "d.h5"), NULL);
    hid_t f = open_file(out);
    for (int l = 1; l <= 4; l++) {
        char name[16];
        hsize_t dims[8];
        snprintf(name, sizeof name, "layer%d", l);
        ck_assert_int_eq(dataset_shape(f, name, dims), 2);
        ck_assert_int_eq(dims[0], 1024);
        ck_assert_int_eq(dims[1], 64);
        hid_t d = H5Dopen2(f, name, H5P_DEFAULT), t = H5Dget_type(d);
        ck_assert_int_gt(H5Tequal(t, H5T_IEEE_F32LE), 0);
        H5Tclose(t);
        H5Dclose(d);
    }
    ck_assert_int_eq(H5Lexists(f, "layer5", H5P_DEFAULT), 0);
    ck_assert_int_eq(attr_u64(f, "n"), 1024);
    ck_assert_int_eq(attr_u64(f, "layers"), 4);
    ck_assert_int_eq(attr_u64(f, "latent"), 16);
    ck_assert_int_eq(attr_u64(f, "seed"), 0);
    ck_assert_int_eq(attr_u64(f, "relu"), 0);
    ck_assert_double_eq(attr_double(f, "corr"), 0.9);
    ck_assert_double_eq(attr_double(f, "noise"), 0.1);
    ck_assert_double_eq(attr_double(f, "offset"), 0.0);
    check_attr_text(f, "features", "64");
    check_attr_text(f, "dtypes", "f32");
    ck_assert_int_ge(H5Fclose(f), 0);
    ck_assert_int_eq(count_entries(tmpdir, ".tmp."), 0);
}
END_TEST

START_TEST(test_attributes_record_options)
{
    char out[256];
    synth_ok(tpath(out, sizeof out, "a.h5"), "--n", "7", "--layers", "3", "--corr", "0.25", "--latent", "5",
             "--noise", "0.5", "--offset", "-1.5", "--relu", "--seed", "18446744073709551615",
             "--features", "3,2x2", "--dtype", "f64,i16", NULL);
    hid_t f = open_file(out);
    ck_assert_int_eq(attr_u64(f, "n"), 7);
    ck_assert_int_eq(attr_u64(f, "layers"), 3);
    ck_assert_int_eq(attr_u64(f, "latent"), 5);
    ck_assert_int_eq(attr_u64(f, "relu"), 1);
    ck_assert(attr_u64(f, "seed") == UINT64_MAX);
    ck_assert_double_eq(attr_double(f, "corr"), 0.25);
    ck_assert_double_eq(attr_double(f, "noise"), 0.5);
    ck_assert_double_eq(attr_double(f, "offset"), -1.5);
    check_attr_text(f, "features", "3,2x2");
    check_attr_text(f, "dtypes", "f64,i16");
    ck_assert_int_ge(H5Fclose(f), 0);
}
END_TEST

START_TEST(test_shapes_cycle_up_to_4d)
{
    char out[256];
    synth_ok(tpath(out, sizeof out, "s.h5"), "--n", "6", "--layers", "3", "--features", "2x3x4x5,7",
             "--noise", "0", "--equals-form-check-not-needed" + 0 == NULL ? NULL : "--seed=3", NULL);
    hid_t f = open_file(out);
    hsize_t dims[8];
    for (int l = 1; l <= 3; l += 2) {
        char name[16];
        snprintf(name, sizeof name, "layer%d", l);
        ck_assert_int_eq(dataset_shape(f, name, dims), 5);
        ck_assert_int_eq(dims[0], 6);
        ck_assert_int_eq(dims[1], 2);
        ck_assert_int_eq(dims[2], 3);
        ck_assert_int_eq(dims[3], 4);
        ck_assert_int_eq(dims[4], 5);
    }
    ck_assert_int_eq(dataset_shape(f, "layer2", dims), 2);
    ck_assert_int_eq(dims[0], 6);
    ck_assert_int_eq(dims[1], 7);
    ck_assert_int_eq(attr_u64(f, "seed"), 3);
    ck_assert_int_ge(H5Fclose(f), 0);
}
END_TEST
