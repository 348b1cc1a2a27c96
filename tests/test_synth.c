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

#include "testutil.h"

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

/* mk_synth_main("synth", args...) for a NULL-terminated list of args. */
static mk_err vsynth(const char *first, va_list ap)
{
    char *argv[MAX_ARGS];
    int argc = 0;
    argv[argc++] = (char *)"synth";
    for (const char *a = first; a; a = va_arg(ap, const char *)) {
        ck_assert_int_lt(argc, MAX_ARGS - 1);
        argv[argc++] = (char *)a;
    }
    argv[argc] = NULL;
    return mk_synth_main(argc, argv);
}

static mk_err synth(const char *first, ...)
{
    va_list ap;
    va_start(ap, first);
    mk_err err = vsynth(first, ap);
    va_end(ap);
    return err;
}

static void synth_ok(const char *first, ...)
{
    va_list ap;
    va_start(ap, first);
    mk_err err = vsynth(first, ap);
    va_end(ap);
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
             "--noise", "0", "--seed=3", NULL);
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

START_TEST(test_dtypes_and_f16_layout)
{
    static const struct {
        H5T_class_t cls;
        size_t size;
        H5T_sign_t sign;
    } want[] = {
        {H5T_FLOAT, 2, H5T_SGN_ERROR}, {H5T_FLOAT, 4, H5T_SGN_ERROR}, {H5T_FLOAT, 8, H5T_SGN_ERROR},
        {H5T_INTEGER, 1, H5T_SGN_2},   {H5T_INTEGER, 2, H5T_SGN_2},   {H5T_INTEGER, 4, H5T_SGN_2},
        {H5T_INTEGER, 8, H5T_SGN_2},   {H5T_INTEGER, 1, H5T_SGN_NONE},
    };
    char out[256];
    synth_ok(tpath(out, sizeof out, "t.h5"), "--n", "5", "--layers", "8", "--features", "3",
             "--dtype", "f16,f32,f64,i8,i16,i32,i64,u8", NULL);
    hid_t f = open_file(out);
    for (int l = 0; l < 8; l++) {
        char name[16];
        snprintf(name, sizeof name, "layer%d", l + 1);
        hid_t d = H5Dopen2(f, name, H5P_DEFAULT), t = H5Dget_type(d);
        ck_assert_int_eq(H5Tget_class(t), want[l].cls);
        ck_assert_int_eq(H5Tget_size(t), want[l].size);
        ck_assert_int_eq(H5Tget_order(t), H5T_ORDER_LE);
        if (want[l].cls == H5T_INTEGER) ck_assert_int_eq(H5Tget_sign(t), want[l].sign);
        if (l == 0) {
            /* IEEE binary16, as h5py writes numpy.float16 */
            size_t spos, epos, esize, mpos, msize;
            ck_assert_int_ge(H5Tget_fields(t, &spos, &epos, &esize, &mpos, &msize), 0);
            ck_assert_int_eq(spos, 15);
            ck_assert_int_eq(epos, 10);
            ck_assert_int_eq(esize, 5);
            ck_assert_int_eq(mpos, 0);
            ck_assert_int_eq(msize, 10);
            ck_assert_int_eq(H5Tget_precision(t), 16);
            ck_assert_int_eq(H5Tget_offset(t), 0);
            ck_assert_int_eq(H5Tget_ebias(t), 15);
            ck_assert_int_eq(H5Tget_norm(t), H5T_NORM_IMPLIED);
        }
        ck_assert_int_ge(H5Tclose(t), 0);
        ck_assert_int_ge(H5Dclose(d), 0);
    }
    ck_assert_int_ge(H5Fclose(f), 0);
}
END_TEST

/* The same seed as f16 and as f32 agree to half precision (2^-11 relative,
 * 2^-25 absolute for subnormals), read back as float through HDF5. */
START_TEST(test_f16_values_match_f32)
{
    char a[256], b[256];
    synth_ok(tpath(a, sizeof a, "h16.h5"), "--n", "200", "--layers", "2", "--features", "40",
             "--dtype", "f16", "--seed", "7", "--offset", "0.5", NULL);
    synth_ok(tpath(b, sizeof b, "h32.h5"), "--n", "200", "--layers", "2", "--features", "40",
             "--dtype", "f32", "--seed", "7", "--offset", "0.5", NULL);
    hid_t fa = open_file(a), fb = open_file(b);
    for (int l = 1; l <= 2; l++) {
        char name[16];
        size_t na, nb, distinct = 0;
        snprintf(name, sizeof name, "layer%d", l);
        float *x = read_as(fa, name, H5T_NATIVE_FLOAT, &na);
        float *y = read_as(fb, name, H5T_NATIVE_FLOAT, &nb);
        ck_assert_uint_eq(na, 200 * 40);
        ck_assert_uint_eq(na, nb);
        for (size_t i = 0; i < na; i++) {
            double tol = fabs((double)y[i]) * 0x1p-10 + 0x1p-24;
            ck_assert_msg(fabs((double)x[i] - (double)y[i]) <= tol, "%s[%zu]: f16 %.8g vs f32 %.8g",
                          name, i, (double)x[i], (double)y[i]);
            distinct += i > 0 && x[i] != x[i - 1];
        }
        ck_assert_uint_gt(distinct, na / 2);
        free(x);
        free(y);
    }
    ck_assert_int_ge(H5Fclose(fa), 0);
    ck_assert_int_ge(H5Fclose(fb), 0);
}
END_TEST

/* The stored binary16 bits equal HDF5's own conversion of the same values
 * written as f64, including subnormals (relu zeros + a tiny offset), values
 * that round to zero and overflow to infinity. HDF5 1.10.8 is converted one
 * value per call: within one call, a value whose rounding carries into the
 * exponent comes out halved when it follows a subnormal result (e.g. 0.24997
 * after 1e-6 gives 0.125), which is why synth does not let HDF5 convert. */
START_TEST(test_f16_bits_match_hdf5_conversion)
{
    static const char *offsets[] = {"0.5", "1e-6", "-1e-6", "3e-8", "-2.9e-8", "65000", "70000", "-70000"};
    for (size_t o = 0; o < sizeof offsets / sizeof offsets[0]; o++) {
        char a[256], b[256];
        synth_ok(tpath(a, sizeof a, "h16.h5"), "--n", "100", "--layers", "2", "--features", "30",
                 "--dtype", "f16", "--relu", "--offset", offsets[o], NULL);
        synth_ok(tpath(b, sizeof b, "h64.h5"), "--n", "100", "--layers", "2", "--features", "30",
                 "--dtype", "f64", "--relu", "--offset", offsets[o], NULL);
        hid_t fa = open_file(a), fb = open_file(b);
        for (int l = 1; l <= 2; l++) {
            char name[16];
            size_t bytes, n;
            snprintf(name, sizeof name, "layer%d", l);
            uint16_t *got = (uint16_t *)(void *)read_raw(fa, name, &bytes);
            double *want = read_doubles(fb, name, &n);
            ck_assert_uint_eq(bytes, 2 * n);
            hid_t d = H5Dopen2(fa, name, H5P_DEFAULT), t = H5Dget_type(d);
            for (size_t i = 0; i < n; i++) {
                double v = want[i];
                uint16_t conv;
                ck_assert_int_ge(H5Tconvert(H5T_NATIVE_DOUBLE, t, 1, &v, NULL, H5P_DEFAULT), 0);
                memcpy(&conv, &v, sizeof conv);
                ck_assert_msg(got[i] == conv, "offset %s %s[%zu] = %.17g: 0x%04x, HDF5 gives 0x%04x",
                              offsets[o], name, i, want[i], got[i], conv);
            }
            ck_assert_int_ge(H5Tclose(t), 0);
            ck_assert_int_ge(H5Dclose(d), 0);
            free(got);
            free(want);
        }
        ck_assert_int_ge(H5Fclose(fa), 0);
        ck_assert_int_ge(H5Fclose(fb), 0);
    }
}
END_TEST

/* Exact ties round to even as in IEEE 754 (and numpy): relu zeros plus the
 * offset are exactly the offset, so those entries must hold these bits. */
START_TEST(test_f16_ties_to_even)
{
    static const struct {
        const char *offset;
        uint16_t bits;
    } ties[] = {
        {"2049", 0x6800},                    /* between 2048 and 2050: even is 2048 */
        {"2051", 0x6802},                    /* between 2050 and 2052: even is 2052 */
        {"-2051", 0xe802},
        {"65520", 0x7c00},                   /* between 65504 and 2^16: rounds to infinity */
        {"2.98023223876953125e-08", 0x0000}, /* 2^-25, half the smallest subnormal */
        {"8.94069671630859375e-08", 0x0002}, /* 3 * 2^-25: between 1 and 2 units */
        {"6.103515625e-05", 0x0400},         /* 2^-14, the smallest normal (exact) */
    };
    for (size_t c = 0; c < sizeof ties / sizeof ties[0]; c++) {
        char a[256], b[256];
        synth_ok(tpath(a, sizeof a, "t16.h5"), "--n", "50", "--layers", "1", "--features", "10",
                 "--dtype", "f16", "--relu", "--offset", ties[c].offset, NULL);
        synth_ok(tpath(b, sizeof b, "t64.h5"), "--n", "50", "--layers", "1", "--features", "10",
                 "--dtype", "f64", "--relu", "--offset", ties[c].offset, NULL);
        hid_t fa = open_file(a), fb = open_file(b);
        size_t bytes, n, seen = 0;
        uint16_t *got = (uint16_t *)(void *)read_raw(fa, "layer1", &bytes);
        double *v = read_doubles(fb, "layer1", &n);
        double offset = strtod(ties[c].offset, NULL);
        for (size_t i = 0; i < n; i++) {
            if (v[i] != offset) continue;
            seen++;
            ck_assert_msg(got[i] == ties[c].bits, "%s stored as 0x%04x, want 0x%04x", ties[c].offset, got[i],
                          ties[c].bits);
        }
        ck_assert_uint_gt(seen, n / 4);
        free(got);
        free(v);
        ck_assert_int_ge(H5Fclose(fa), 0);
        ck_assert_int_ge(H5Fclose(fb), 0);
    }
}
END_TEST

/* Integer layers hold round(16 * value) saturated to the type: checked against
 * an f64 file of the same seed, at offsets that push i8 and u8 into saturation. */
START_TEST(test_integers_round_and_saturate)
{
    static const char *offsets[] = {"-7", "0", "7"};
    static const double lo[] = {0, INT8_MIN, INT16_MIN, INT32_MIN, (double)INT64_MIN, 0};
    static const double hi[] = {0, INT8_MAX, INT16_MAX, INT32_MAX, 9.2e18, UINT8_MAX};
    for (int o = 0; o < 3; o++) {
        char a[256], b[256];
        synth_ok(tpath(a, sizeof a, "i.h5"), "--n", "300", "--layers", "6", "--features", "20",
                 "--dtype", "f64,i8,i16,i32,i64,u8", "--offset", offsets[o], "--seed", "11", NULL);
        synth_ok(tpath(b, sizeof b, "f.h5"), "--n", "300", "--layers", "6", "--features", "20",
                 "--dtype", "f64", "--offset", offsets[o], "--seed", "11", NULL);
        hid_t fa = open_file(a), fb = open_file(b);
        for (int l = 1; l < 6; l++) {
            char name[16];
            size_t n, m, nonzero = 0, saturated = 0;
            snprintf(name, sizeof name, "layer%d", l + 1);
            int64_t *q = read_as(fa, name, H5T_NATIVE_INT64, &n);
            double *v = read_doubles(fb, name, &m);
            ck_assert_uint_eq(n, m);
            for (size_t i = 0; i < n; i++) {
                double want = fmin(fmax(round(16.0 * v[i]), lo[l]), hi[l]);
                ck_assert_msg((double)q[i] == want, "%s offset %s [%zu]: %lld, want %.0f (value %.17g)",
                              name, offsets[o], i, (long long)q[i], want, v[i]);
                nonzero += q[i] != 0;
                saturated += (double)q[i] == lo[l] || (double)q[i] == hi[l];
            }
            /* u8 clips the negative half to 0, all of it at offset -7 */
            size_t floor = l == 5 ? (o == 0 ? 0 : n / 3) : n / 2;
            ck_assert_msg(nonzero >= floor, "%s: %zu of %zu nonzero", name, nonzero, n);
            if ((l == 1 && o != 1) || (l == 5 && o == 0)) ck_assert_uint_gt(saturated, 0);
            free(q);
            free(v);
        }
        ck_assert_int_ge(H5Fclose(fa), 0);
        ck_assert_int_ge(H5Fclose(fb), 0);
    }
}
END_TEST

START_TEST(test_names_make_groups)
{
    char out[256];
    synth_ok(tpath(out, sizeof out, "g.h5"), "--n", "4", "--layers", "3", "--features", "2",
             "--names", "enc/block1/out,enc/block2/out,head", NULL);
    hid_t f = open_file(out);
    hsize_t dims[8];
    ck_assert_int_eq(dataset_shape(f, "enc/block1/out", dims), 2);
    ck_assert_int_eq(dataset_shape(f, "enc/block2/out", dims), 2);
    ck_assert_int_eq(dataset_shape(f, "head", dims), 2);
    H5O_info_t info;
    ck_assert_int_ge(H5Oget_info_by_name(f, "enc/block1", &info, H5P_DEFAULT), 0);
    ck_assert_int_eq(info.type, H5O_TYPE_GROUP);
    ck_assert_int_eq(H5Lexists(f, "layer1", H5P_DEFAULT), 0);
    ck_assert_int_ge(H5Fclose(f), 0);
}
END_TEST

/* ---- values ------------------------------------------------------------- */

static void check_same_bytes(const char *a, const char *b, int layers)
{
    hid_t fa = open_file(a), fb = open_file(b);
    for (int l = 1; l <= layers; l++) {
        char name[16];
        size_t na, nb;
        snprintf(name, sizeof name, "layer%d", l);
        unsigned char *x = read_raw(fa, name, &na), *y = read_raw(fb, name, &nb);
        ck_assert_uint_eq(na, nb);
        ck_assert_msg(memcmp(x, y, na) == 0, "%s differs between %s and %s", name, a, b);
        free(x);
        free(y);
    }
    ck_assert_int_ge(H5Fclose(fa), 0);
    ck_assert_int_ge(H5Fclose(fb), 0);
}

START_TEST(test_block_and_layout_do_not_change_values)
{
    char a[256], b[256], c[256];
#define COMMON "--n", "37", "--layers", "5", "--features", "3x5,8,2x2x2", "--dtype", "f16,f32,i16,f64", \
               "--seed", "123", "--offset", "0.25"
    synth_ok(tpath(a, sizeof a, "b1.h5"), COMMON, "--block", "1", NULL);
    synth_ok(tpath(b, sizeof b, "b1000.h5"), COMMON, "--block", "1000", NULL);
    synth_ok(tpath(c, sizeof c, "b7.h5"), COMMON, "--block", "7", "--chunk", "5", "--gzip", "4", NULL);
#undef COMMON
    check_same_bytes(a, b, 5);
    check_same_bytes(a, c, 5);
}
END_TEST

START_TEST(test_seed_changes_values)
{
    char a[256], b[256], c[256];
    synth_ok(tpath(a, sizeof a, "s0.h5"), "--n", "20", "--layers", "1", "--seed", "1", NULL);
    synth_ok(tpath(b, sizeof b, "s0b.h5"), "--n", "20", "--layers", "1", "--seed", "1", NULL);
    synth_ok(tpath(c, sizeof c, "s1.h5"), "--n", "20", "--layers", "1", "--seed", "2", NULL);
    check_same_bytes(a, b, 1);
    hid_t fa = open_file(a), fc = open_file(c);
    size_t n, m, same = 0;
    double *x = read_doubles(fa, "layer1", &n), *y = read_doubles(fc, "layer1", &m);
    for (size_t i = 0; i < n; i++) same += x[i] == y[i];
    ck_assert_uint_eq(same, 0);
    free(x);
    free(y);
    ck_assert_int_ge(H5Fclose(fa), 0);
    ck_assert_int_ge(H5Fclose(fc), 0);
}
END_TEST

/* Each feature is sum_k W[f][k] h[k] / sqrt(K) + noise * e with W, h, e
 * standard normal, so its mean is the offset and its variance ~ 1 + noise^2.
 * Over n = 2048 rows and p = 64 features the overall mean has a standard
 * error of about 1/sqrt(p n) ~ 0.003 (features share h; W's row sums add
 * ~1/sqrt(n)); the tolerance 0.05 is > 10 standard errors. The variance
 * averages ||W_f||^2/K over 64 features (sd ~ 0.044): tolerance 0.2. */
START_TEST(test_offset_shifts_mean)
{
    static const char *offsets[] = {"0", "5", "-3.5"};
    for (int o = 0; o < 3; o++) {
        char out[256];
        synth_ok(tpath(out, sizeof out, "m.h5"), "--n", "2048", "--layers", "2", "--features", "64",
                 "--noise", "0.5", "--offset", offsets[o], NULL);
        hid_t f = open_file(out);
        for (int l = 1; l <= 2; l++) {
            char name[16];
            size_t n;
            double mean, var;
            snprintf(name, sizeof name, "layer%d", l);
            double *x = read_doubles(f, name, &n);
            mean_var(x, n, &mean, &var);
            ck_assert_double_eq_tol(mean, atof(offsets[o]), 0.05);
            ck_assert_double_eq_tol(var, 1.25, 0.2);
            free(x);
        }
        ck_assert_int_ge(H5Fclose(f), 0);
    }
}
END_TEST

/* relu then offset: nothing below the offset, and about half of the values
 * (those whose pre-activation was negative) exactly at it. */
START_TEST(test_relu_floor_is_offset)
{
    char out[256];
    synth_ok(tpath(out, sizeof out, "r.h5"), "--n", "500", "--layers", "3", "--features", "30",
             "--relu", "--offset", "2", "--dtype", "f64,f32,f16", NULL);
    hid_t f = open_file(out);
    for (int l = 1; l <= 3; l++) {
        char name[16];
        size_t n, at = 0;
        snprintf(name, sizeof name, "layer%d", l);
        double *x = read_doubles(f, name, &n);
        for (size_t i = 0; i < n; i++) {
            ck_assert_msg(x[i] >= 2.0, "%s[%zu] = %.17g below the offset", name, i, x[i]);
            at += x[i] == 2.0;
        }
        ck_assert_uint_gt(at, n * 3 / 10);
        ck_assert_uint_lt(at, n * 7 / 10);
        free(x);
    }
    ck_assert_int_ge(H5Fclose(f), 0);
}
END_TEST

static double layer_cka(hid_t f, const char *a, const char *b, size_t n)
{
    size_t na, nb;
    double *x = read_doubles(f, a, &na), *y = read_doubles(f, b, &nb);
    double cka = linear_cka(x, na / n, y, nb / n, n);
    free(x);
    free(y);
    return cka;
}

/* Layers d apart share latent states correlated corr^d, and different random
 * projections of one K-dimensional state have linear CKA ~ 1/(1 + K/p), so
 * CKA ~ corr^(2d) / (1 + K/p): with K = 16, p = 128 that is ~0.87 for corr
 * 0.99, ~0.44 and ~0.21 for corr 0.7 at d = 1 and 2. Independent layers give
 * ~ p^2 / (n ||Sigma||_F^2) ~ 0.02 at n = 1000. Over seeds 1-6 the values
 * stayed within 0.03 of these; the bounds below leave more room. */
START_TEST(test_corr_controls_similarity)
{
    char hi[256], lo[256], mid[256];
#define COMMON "--n", "1000", "--layers", "3", "--features", "128", "--seed", "5"
    synth_ok(tpath(hi, sizeof hi, "c99.h5"), COMMON, "--corr", "0.99", NULL);
    synth_ok(tpath(lo, sizeof lo, "c0.h5"), COMMON, "--corr", "0", NULL);
    synth_ok(tpath(mid, sizeof mid, "c7.h5"), COMMON, "--corr", "0.7", NULL);
#undef COMMON
    hid_t fh = open_file(hi), fl = open_file(lo), fm = open_file(mid);
    double cka_hi = layer_cka(fh, "layer1", "layer2", 1000);
    double cka_lo = layer_cka(fl, "layer1", "layer2", 1000);
    double cka_12 = layer_cka(fm, "layer1", "layer2", 1000);
    double cka_13 = layer_cka(fm, "layer1", "layer3", 1000);
    ck_assert_double_gt(cka_hi, 0.75);
    ck_assert_double_lt(cka_lo, 0.1);
    ck_assert_double_eq_tol(cka_12, 0.44, 0.1);
    ck_assert_double_eq_tol(cka_13, 0.21, 0.08);
    ck_assert_double_gt(cka_12, cka_13);
    ck_assert_int_ge(H5Fclose(fh), 0);
    ck_assert_int_ge(H5Fclose(fl), 0);
    ck_assert_int_ge(H5Fclose(fm), 0);
}
END_TEST

/* ---- layout ------------------------------------------------------------- */

static hid_t dcpl_of(hid_t f, const char *name)
{
    hid_t d = H5Dopen2(f, name, H5P_DEFAULT);
    ck_assert_int_ge(d, 0);
    hid_t p = H5Dget_create_plist(d);
    ck_assert_int_ge(p, 0);
    ck_assert_int_ge(H5Dclose(d), 0);
    return p;
}

START_TEST(test_chunked_gzip_layout)
{
    char out[256], plain[256], big[256];
    synth_ok(tpath(out, sizeof out, "z.h5"), "--n", "100", "--layers", "2", "--features", "64,4x4",
             "--chunk", "16", "--gzip", "6", NULL);
    synth_ok(tpath(plain, sizeof plain, "p.h5"), "--n", "100", "--layers", "1", NULL);
    synth_ok(tpath(big, sizeof big, "k.h5"), "--n", "10", "--layers", "1", "--chunk", "500", NULL);
    hid_t f = open_file(out);
    hsize_t cdims[8];
    hid_t p = dcpl_of(f, "layer2");
    ck_assert_int_eq(H5Pget_layout(p), H5D_CHUNKED);
    ck_assert_int_eq(H5Pget_chunk(p, 8, cdims), 3);
    ck_assert_int_eq(cdims[0], 16);
    ck_assert_int_eq(cdims[1], 4);
    ck_assert_int_eq(cdims[2], 4);
    int nf = H5Pget_nfilters(p), shuffle = -1, deflate = -1;
    for (int i = 0; i < nf; i++) {
        unsigned flags, cd[4];
        size_t ncd = 4;
        H5Z_filter_t id = H5Pget_filter2(p, (unsigned)i, &flags, &ncd, cd, 0, NULL, NULL);
        if (id == H5Z_FILTER_SHUFFLE) shuffle = i;
        if (id == H5Z_FILTER_DEFLATE) {
            deflate = i;
            ck_assert_uint_eq(ncd, 1);
            ck_assert_uint_eq(cd[0], 6);
        }
    }
    ck_assert_int_ge(shuffle, 0);
    ck_assert_int_gt(deflate, shuffle);   /* shuffle must run first to help deflate */
    ck_assert_int_ge(H5Pclose(p), 0);
    ck_assert_int_ge(H5Fclose(f), 0);

    f = open_file(plain);
    p = dcpl_of(f, "layer1");
    ck_assert_int_eq(H5Pget_layout(p), H5D_CONTIGUOUS);
    ck_assert_int_eq(H5Pget_nfilters(p), 0);
    ck_assert_int_ge(H5Pclose(p), 0);
    ck_assert_int_ge(H5Fclose(f), 0);

    f = open_file(big);   /* chunks longer than n are clamped to n */
    p = dcpl_of(f, "layer1");
    ck_assert_int_eq(H5Pget_chunk(p, 8, cdims), 2);
    ck_assert_int_eq(cdims[0], 10);
    ck_assert_int_ge(H5Pclose(p), 0);
    ck_assert_int_ge(H5Fclose(f), 0);
}
END_TEST

/* ---- errors ------------------------------------------------------------- */

struct bad_case {
    const char *args[6];
    const char *named;        /* must appear in mk_errmsg() */
    const char *shows;        /* must appear too; NULL: args[1], "": nothing more */
};

static const struct bad_case bad_cases[] = {
    {{"--n", "0"}, "--n", NULL},
    {{"--n", "abc"}, "--n", NULL},
    {{"--n", "12x"}, "--n", NULL},
    {{"--n", ""}, "--n", NULL},
    {{"--n", " 5"}, "--n", NULL},
    {{"--n", "99999999999999999999"}, "--n", NULL},
    {{"--n"}, "--n", NULL},
    {{"--layers", "0"}, "--layers", NULL},
    {{"--layers", "-2"}, "--layers", NULL},
    {{"--features", "0"}, "--features", NULL},
    {{"--features", "8x"}, "--features", NULL},
    {{"--features", "x8"}, "--features", NULL},
    {{"--features", "1x2x3x4x5"}, "--features", NULL},
    {{"--features", "8,,4"}, "--features", NULL},
    {{"--features", "-8"}, "--features", NULL},
    {{"--features", "1,2,3,4,5"}, "--features", NULL},
    {{"--dtype", "f128"}, "--dtype", NULL},
    {{"--dtype", "f32,"}, "--dtype", NULL},
    {{"--corr", "1.5"}, "--corr", NULL},
    {{"--corr", "-0.1"}, "--corr", NULL},
    {{"--corr", "nan"}, "--corr", NULL},
    {{"--corr", "0.5x"}, "--corr", NULL},
    {{"--latent", "0"}, "--latent", NULL},
    {{"--noise", "-1"}, "--noise", NULL},
    {{"--noise", "inf"}, "--noise", NULL},
    {{"--offset", "inf"}, "--offset", NULL},
    {{"--offset", "1e999"}, "--offset", NULL},
    {{"--seed", "-1"}, "--seed", NULL},
    {{"--seed", "1.5"}, "--seed", NULL},
    {{"--seed", "18446744073709551616"}, "--seed", NULL},
    {{"--names", "a,b"}, "--names", NULL},
    {{"--names", "a,b,c,a"}, "--names", "'a'"},
    {{"--names", "a,a/b,c,d"}, "--names", "'a/b'"},
    {{"--names", "a,b,c,d/"}, "--names", "'d/'"},
    {{"--chunk", "-1"}, "--chunk", NULL},
    {{"--gzip", "3"}, "--gzip", NULL},
    {{"--gzip", "10", "--chunk", "4"}, "--gzip", NULL},
    {{"--block", "0"}, "--block", NULL},
    {{"--relu=1"}, "--relu", NULL},
    {{"--bogus", "1"}, "--bogus", ""},
};

START_TEST(test_bad_option_is_usage_error)
{
    const struct bad_case *c = &bad_cases[_i];
    char out[256];
    char *argv[MAX_ARGS] = {(char *)"synth", (char *)tpath(out, sizeof out, "bad.h5")};
    int argc = 2;
    for (int a = 0; a < 6 && c->args[a]; a++) argv[argc++] = (char *)c->args[a];
    mk_set_errmsg("");
    mk_err err = mk_synth_main(argc, argv);
    ck_assert_msg(err == MK_EUSAGE, "case %d (%s %s): got %s: %s", _i, c->args[0],
                  c->args[1] ? c->args[1] : "", mk_errname(err), mk_errmsg());
    ck_assert_msg(strstr(mk_errmsg(), c->named) != NULL, "case %d: message '%s' does not name %s", _i,
                  mk_errmsg(), c->named);
    const char *shows = c->shows ? c->shows : c->args[1] ? c->args[1] : "";
    ck_assert_msg(strstr(mk_errmsg(), shows) != NULL, "case %d: message '%s' does not show '%s'", _i,
                  mk_errmsg(), shows);
    ck_assert_int_eq(count_entries(tmpdir, "bad.h5"), 0);
}
END_TEST

START_TEST(test_missing_or_extra_output_is_usage_error)
{
    ck_assert_int_eq(synth("--n", "5", NULL), MK_EUSAGE);
    ck_assert_ptr_nonnull(strstr(mk_errmsg(), "OUT"));
    ck_assert_int_eq(synth("a.h5", "b.h5", NULL), MK_EUSAGE);
    ck_assert_ptr_nonnull(strstr(mk_errmsg(), "b.h5"));
}
END_TEST

START_TEST(test_help_lists_every_option)
{
    static const char *opts[] = {"--n", "--layers", "--features", "--dtype", "--corr", "--latent", "--noise",
                                 "--offset", "--relu", "--seed", "--names", "--chunk", "--gzip", "--block",
                                 "--help", "default 1024", "default 4096"};
    char cap[256];
    tpath(cap, sizeof cap, "help.txt");
    fflush(stdout);
    int saved = dup(STDOUT_FILENO);
    FILE *f = fopen(cap, "w+");
    ck_assert_ptr_nonnull(f);
    ck_assert_int_ge(dup2(fileno(f), STDOUT_FILENO), 0);
    mk_err e1 = synth("--help", NULL), e2 = synth("x.h5", "-h", NULL);
    fflush(stdout);
    ck_assert_int_ge(dup2(saved, STDOUT_FILENO), 0);
    close(saved);
    ck_assert_int_eq(e1, MK_OK);
    ck_assert_int_eq(e2, MK_OK);
    char text[8192] = {0};
    rewind(f);
    size_t got = fread(text, 1, sizeof text - 1, f);
    fclose(f);
    ck_assert_uint_gt(got, 0);
    for (size_t i = 0; i < sizeof opts / sizeof opts[0]; i++)
        ck_assert_msg(strstr(text, opts[i]) != NULL, "--help does not mention %s", opts[i]);
    ck_assert_int_eq(count_entries(tmpdir, "x.h5"), 0);
}
END_TEST

START_TEST(test_unwritable_output_is_io_error)
{
    char out[256], sub[256];
    ck_assert_int_eq(synth(tpath(out, sizeof out, "no/such/dir/o.h5"), "--n", "3", NULL), MK_EIO);
    ck_assert_msg(strstr(mk_errmsg(), out) != NULL, "message '%s' does not name %s", mk_errmsg(), out);

    /* The destination is a folder: the file is written, the rename fails and
     * the temporary file must go. */
    ck_assert_int_eq(mkdir(tpath(sub, sizeof sub, "isdir.h5"), 0700), 0);
    ck_assert_int_eq(synth(sub, "--n", "3", NULL), MK_EIO);
    ck_assert_msg(strstr(mk_errmsg(), sub) != NULL, "message '%s' does not name %s", mk_errmsg(), sub);
    ck_assert_int_eq(count_entries(tmpdir, ".tmp."), 0);

    if (geteuid() != 0) {   /* root writes through permissions */
        char ro[256], inro[300];
        ck_assert_int_eq(mkdir(tpath(ro, sizeof ro, "ro"), 0500), 0);
        snprintf(inro, sizeof inro, "%s/o.h5", ro);
        ck_assert_int_eq(synth(inro, "--n", "3", NULL), MK_EIO);
        ck_assert_int_eq(count_entries(ro, ""), 0);
    }
}
END_TEST

START_TEST(test_overwrites_existing_file)
{
    char out[256];
    synth_ok(tpath(out, sizeof out, "o.h5"), "--n", "3", NULL);
    synth_ok(out, "--n", "9", NULL);
    hid_t f = open_file(out);
    ck_assert_int_eq(attr_u64(f, "n"), 9);
    ck_assert_int_ge(H5Fclose(f), 0);
    ck_assert_int_eq(count_entries(tmpdir, ".tmp."), 0);
}
END_TEST

static void each_bad_option(TCase *tc)
{
    tcase_add_loop_test(tc, test_bad_option_is_usage_error, 0, (int)(sizeof bad_cases / sizeof bad_cases[0]));
}

TU_MAIN("synth", 0,
        TU_CASE("files", make_tmpdir, remove_tmpdir, 300, NULL, test_defaults, test_attributes_record_options,
                test_shapes_cycle_up_to_4d, test_dtypes_and_f16_layout, test_names_make_groups,
                test_chunked_gzip_layout, test_overwrites_existing_file),
        TU_CASE("values", make_tmpdir, remove_tmpdir, 300, NULL, test_f16_values_match_f32,
                test_f16_bits_match_hdf5_conversion, test_f16_ties_to_even, test_integers_round_and_saturate,
                test_block_and_layout_do_not_change_values, test_seed_changes_values, test_offset_shifts_mean,
                test_relu_floor_is_offset, test_corr_controls_similarity),
        TU_CASE("errors", make_tmpdir, remove_tmpdir, 300, each_bad_option, test_missing_or_extra_output_is_usage_error,
                test_help_lists_every_option, test_unwritable_output_is_io_error))
