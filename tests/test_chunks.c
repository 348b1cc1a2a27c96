/* Deflate-compressed layers read chunk by chunk and inflated by mpicka
 * (src/chunks.c), against HDF5's own reads of the same rows: every chunk
 * shape (straddling batches and the edges, N-D), shuffle, a chunk stored
 * uncompressed, chunks never written, 1 and 3 workers, and damaged chunks. */
#include <check.h>
#include <hdf5.h>
#include <stdlib.h>
#include <string.h>

#include "chunks.h"
#include "mpicka/source.h"
#include "testutil.h"

#define N 60

static char *file;

static double value(int64_t k) { return (double)((k * 7919) % 1009) / 16.0 - 20.0; }

/* A dataset of n rows with the given chunks and filters; rows [0, written)
 * are written (all values value(k)), the rest never are. */
static void make(const char *name, hid_t ftype, int rank, const hsize_t *dims, const hsize_t *chunk, int shuffle,
                 double fill, hsize_t written)
{
    hid_t fid = H5Fopen(file, H5F_ACC_RDWR, H5P_DEFAULT), space = H5Screate_simple(rank, dims, NULL);
    hid_t dcpl = H5Pcreate(H5P_DATASET_CREATE);
    ck_assert_int_ge(H5Pset_chunk(dcpl, rank, chunk), 0);
    if (shuffle) H5Pset_shuffle(dcpl);
    ck_assert_int_ge(H5Pset_deflate(dcpl, 4), 0);
    ck_assert_int_ge(H5Pset_fill_value(dcpl, H5T_NATIVE_DOUBLE, &fill), 0);
    hid_t dset = H5Dcreate2(fid, name, ftype, space, H5P_DEFAULT, dcpl, H5P_DEFAULT);
    ck_assert_int_ge(dset, 0);
    size_t per_row = 1;
    for (int d = 1; d < rank; d++) per_row *= dims[d];
    double *data = malloc(written * per_row * sizeof *data);
    for (size_t k = 0; k < written * per_row; k++) data[k] = value((int64_t)k);
    hsize_t start[4] = {0}, count[4];
    memcpy(count, dims, (size_t)rank * sizeof *count);
    count[0] = written;
    hid_t mem = H5Screate_simple(rank, count, NULL);
    H5Sselect_hyperslab(space, H5S_SELECT_SET, start, NULL, count, NULL);
    if (written) ck_assert_int_ge(H5Dwrite(dset, H5T_NATIVE_DOUBLE, mem, space, H5P_DEFAULT, data), 0);
    free(data);
    H5Sclose(mem), H5Dclose(dset), H5Pclose(dcpl), H5Sclose(space), H5Fclose(fid);
}

/* Chunk at row `row` of a 2-D dataset replaced by these stored bytes. */
static void put_chunk(const char *name, hsize_t row, uint32_t mask, const void *bytes, size_t len)
{
    hid_t fid = H5Fopen(file, H5F_ACC_RDWR, H5P_DEFAULT), dset = H5Dopen2(fid, name, H5P_DEFAULT);
    hsize_t off[2] = {row, 0};
    ck_assert_int_ge(H5Dwrite_chunk(dset, H5P_DEFAULT, mask, off, len, bytes), 0);
    H5Dclose(dset), H5Fclose(fid);
}

static void setup(void)
{
    tu_dir_setup();
    file = tu_in("acts.h5");
    H5Fclose(H5Fcreate(file, H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT));
    hsize_t d2[2] = {N, 12}, d4[4] = {N, 3, 4, 5}, d1[1] = {N};
    make("f32", H5T_IEEE_F32LE, 2, d2, (hsize_t[]){7, 5}, 0, 0.0, N);
    make("f64_shuffled", H5T_IEEE_F64LE, 2, d2, (hsize_t[]){16, 12}, 1, 0.0, N);
    make("nd", H5T_IEEE_F32LE, 4, d4, (hsize_t[]){3, 2, 3, 2}, 0, 0.0, N);
    make("one", H5T_IEEE_F64LE, 1, d1, (hsize_t[]){9}, 1, 0.0, N);
    make("sparse", H5T_IEEE_F32LE, 2, d2, (hsize_t[]){10, 12}, 0, 7.5, 20);
    make("ints", H5T_STD_I32LE, 2, d2, (hsize_t[]){8, 12}, 0, 0.0, N); /* HDF5 reads these */
    make("plain", H5T_IEEE_F32LE, 2, d2, (hsize_t[]){10, 12}, 0, 0.0, N);
    float raw[10 * 12]; /* chunk 1 of "plain" stored uncompressed: the deflate filter skipped */
    for (int k = 0; k < 10 * 12; k++) raw[k] = (float)(1000 + k);
    put_chunk("plain", 10, 1u, raw, sizeof raw);
}

/* HDF5's values of the rows, as double. */
static double *hdf5_rows(const char *name, const int64_t *rows, int64_t m, int64_t p)
{
    double *all = malloc((size_t)(N * p) * sizeof *all), *out = malloc((size_t)(m * p) * sizeof *out);
    ck_assert_int_eq(tu_read_doubles(file, name, all, N * p), N * p);
    for (int64_t i = 0; i < m; i++) memcpy(out + i * p, all + rows[i] * p, (size_t)p * sizeof *out);
    free(all);
    return out;
}

static void check_rows(const char *name, const int64_t *rows, int64_t m, int workers)
{
    const char *layers[] = {name};
    mk_model_cfg cfg = {.files = &file, .nfiles = 1, .name = "acts", .layers = (char **)layers, .nlayers = 1};
    mk_model model;
    mk_source *src;
    ck_assert_int_eq(mk_model_inspect(&cfg, &model), MK_OK);
    ck_assert_int_eq(mk_source_open(&model, MK_CHUNK_CACHES, &src), MK_OK);
    ck_assert_int_eq(mk_source_set_workers(src, workers), MK_OK);
    int64_t p = model.layers[0].p;
    int f32 = model.layers[0].in_f32;
    void *got = malloc((size_t)(m * p) * 8);
    /* twice: the band held from the first read must not leak into the second */
    for (int pass = 0; pass < 2; pass++) {
        ck_assert_msg(mk_source_read(src, 0, rows, m, got) == MK_OK, "%s: %s", name, mk_errmsg());
        double *want = hdf5_rows(name, rows, m, p);
        for (int64_t k = 0; k < m * p; k++) {
            double v = f32 ? (double)((float *)got)[k] : ((double *)got)[k];
            ck_assert_msg(v == want[k], "%s, %d worker(s): row %lld, feature %lld: %g, HDF5 %g", name, workers,
                          (long long)rows[k / p], (long long)(k % p), v, want[k]);
        }
        free(want);
    }
    free(got);
    mk_source_close(src);
    mk_model_free(&model);
}

START_TEST(every_shape_as_hdf5_reads_it)
{
    static const char *const names[] = {"f32", "f64_shuffled", "nd", "one", "ints", "plain"};
    int64_t all[N], some[] = {0, 1, 6, 7, 8, 23, 24, 25, 40, 58, 59}, last[] = {59}, tail[] = {50, 51, 52, 53, 54, 55};
    for (int i = 0; i < N; i++) all[i] = i;
    for (size_t n = 0; n < sizeof names / sizeof *names; n++)
        for (int workers = 1; workers <= 3; workers += 2) {
            check_rows(names[n], all, N, workers);
            check_rows(names[n], some, sizeof some / sizeof *some, workers);
            check_rows(names[n], last, 1, workers);
            check_rows(names[n], tail, 6, workers);
        }
}
END_TEST

static void expect_damaged(const char *needle)
{
    const char *layers[] = {"bad"};
    mk_model_cfg cfg = {.files = &file, .nfiles = 1, .name = "acts", .layers = (char **)layers, .nlayers = 1};
    mk_model model;
    mk_source *src;
    ck_assert_int_eq(mk_model_inspect(&cfg, &model), MK_OK);
    ck_assert_int_eq(mk_source_open(&model, MK_CHUNK_CACHES, &src), MK_OK);
    int64_t rows[] = {3, 12};
    float got[2 * 12];
    mk_err err = mk_source_read(src, 0, rows, 2, got);
    ck_assert_msg(err == MK_EIO, "%s", mk_errname(err));
    ck_assert_msg(strstr(mk_errmsg(), "acts.h5: cannot read examples 3..12 of dataset 'bad': the chunk at example 10 ") &&
                  strstr(mk_errmsg(), needle) && strstr(mk_errmsg(), "(damaged file?)"), "%s", mk_errmsg());
    mk_source_close(src);
    mk_model_free(&model);
}

/* The engine reads chunks never written as HDF5's fill value; the
 * inspection refuses such a layer, so that no run reads them. */
START_TEST(unwritten_chunks_are_the_fill_value_and_refused)
{
    hid_t fid = H5Fopen(file, H5F_ACC_RDONLY, H5P_DEFAULT), dset = H5Dopen2(fid, "sparse", H5P_DEFAULT);
    int64_t rows[N], some[] = {0, 9, 19, 20, 23, 40, 59};
    for (int i = 0; i < N; i++) rows[i] = i;
    float got[N * 12];
    for (int workers = 1; workers <= 3; workers += 2)
        for (int pick = 0; pick < 2; pick++) {
            const int64_t *r = pick ? some : rows;
            int64_t m = pick ? (int64_t)(sizeof some / sizeof *some) : N;
            mk__chunks *c;
            ck_assert_int_eq(mk__chunks_open(dset, 1, (size_t)1 << 20, &c), MK_OK);
            ck_assert_ptr_nonnull(c);
            ck_assert_int_eq(mk__chunks_set_workers(c, workers), MK_OK);
            ck_assert_msg(mk__chunks_read(c, r, m, 0, got, file, "sparse") == MK_OK, "%s", mk_errmsg());
            double *want = hdf5_rows("sparse", r, m, 12);
            for (int64_t k = 0; k < m * 12; k++)
                ck_assert_msg((double)got[k] == want[k], "row %lld: %g, HDF5 %g", (long long)r[k / 12], got[k], want[k]);
            free(want);
            mk__chunks_close(c);
        }
    H5Dclose(dset), H5Fclose(fid);
    const char *layers[] = {"sparse"};
    mk_model_cfg cfg = {.files = &file, .nfiles = 1, .name = "acts", .layers = (char **)layers, .nlayers = 1};
    mk_model model;
    ck_assert_int_eq(mk_model_inspect(&cfg, &model), MK_EINPUT);
    ck_assert_msg(strstr(mk_errmsg(), "dataset 'sparse' has 2 of its 6 chunks; examples 20..29 (at least) were never "
                                      "written"), "%s", mk_errmsg());
}
END_TEST

START_TEST(damaged_chunks_are_named)
{
    hsize_t d2[2] = {N, 12};
    make("bad", H5T_IEEE_F32LE, 2, d2, (hsize_t[]){10, 12}, 0, 0.0, N);
    unsigned char junk[300];
    for (int k = 0; k < 300; k++) junk[k] = (unsigned char)(k * 37 + 11);
    put_chunk("bad", 10, 0u, junk, sizeof junk); /* not a deflate stream */
    expect_damaged("does not inflate to its 480 bytes");
    put_chunk("bad", 10, 1u, junk, sizeof junk); /* "uncompressed", but not one chunk's bytes */
    expect_damaged("does not inflate to its 480 bytes");
}
END_TEST

TU_MAIN("chunks", 0,
        TU_CASE("inflated here", setup, tu_dir_teardown, 60, NULL, every_shape_as_hdf5_reads_it,
                unwritten_chunks_are_the_fill_value_and_refused, damaged_chunks_are_named))
