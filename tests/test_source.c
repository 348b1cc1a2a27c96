/* The HDF5 activation source on real files written here. */
#include <check.h>
#include <hdf5.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "mpicka/source.h"
#include "oracle.h"
#include "testutil.h"

static char *file;

static hid_t half_type(void)
{
    hid_t t = H5Tcopy(H5T_IEEE_F32LE);
    H5Tset_fields(t, 15, 10, 5, 0, 10);
    H5Tset_size(t, 2);
    H5Tset_ebias(t, 15);
    return t;
}

/* Values exactly representable in every type used: small non-negative integers. */
static double value(int64_t i, int64_t f) { return (double)((i * 7 + f * 3) % 23); }

static void write_layer(const char *name, hid_t type, int rank, const hsize_t *dims)
{
    int64_t count = 1;
    for (int d = 0; d < rank; d++) count *= (int64_t)dims[d];
    int64_t p = count / (int64_t)dims[0];
    double *data = malloc((size_t)count * sizeof *data);
    for (int64_t k = 0; k < count; k++) data[k] = value(k / p, k % p);
    tu_write_dataset(file, name, type, rank, dims, data);
    free(data);
}

static void setup(void)
{
    tu_dir_setup();
    file = tu_in("acts.h5");
    hsize_t d2[2] = {20, 6}, d4[4] = {20, 2, 3, 2}, d1[1] = {20};
    hid_t half = half_type();
    write_layer("layer10/out", H5T_IEEE_F32LE, 2, d2);
    write_layer("layer2/out", H5T_IEEE_F64LE, 2, d2);
    write_layer("layer1/out", half, 4, d4);
    write_layer("layer1/aux", H5T_STD_I32LE, 2, d2);
    write_layer("logits", H5T_STD_U8LE, 1, d1);
    write_layer("emb", H5T_STD_I16LE, 2, d2);
    H5Tclose(half);
}

static mk_err inspect(const char **layers, int n, mk_model *model)
{
    mk_model_cfg cfg = {.files = &file, .nfiles = 1, .name = "acts", .layers = (char **)layers, .nlayers = n};
    return mk_model_inspect(&cfg, model);
}

START_TEST(globs_expand_in_natural_order)
{
    const char *layers[] = {"layer*/out", "emb", "/logits"};
    mk_model m;
    ck_assert_int_eq(inspect(layers, 3, &m), MK_OK);
    ck_assert_int_eq(m.nlayers, 5);
    const char *expect[] = {"layer1/out", "layer2/out", "layer10/out", "emb", "logits"};
    for (int l = 0; l < 5; l++) ck_assert_str_eq(m.layers[l].path, expect[l]);
    ck_assert_int_eq(m.layers[0].p, 12);
    ck_assert_str_eq(m.layers[0].shape, "(20, 2, 3, 2)");
    ck_assert_str_eq(m.layers[0].dtype, "float16");
    ck_assert_int_eq(m.layers[0].in_f32, 1);
    ck_assert_int_eq(m.layers[1].in_f32, 0); /* float64 */
    ck_assert_int_eq(m.layers[2].in_f32, 1); /* float32 */
    ck_assert_int_eq(m.layers[3].in_f32, 1); /* int16 */
    ck_assert_int_eq(m.layers[4].p, 1);
    ck_assert_str_eq(m.layers[4].dtype, "uint8");
    mk_model_free(&m);
}
END_TEST

START_TEST(star_does_not_cross_groups)
{
    const char *layers[] = {"layer1/*"};
    mk_model m;
    ck_assert_int_eq(inspect(layers, 1, &m), MK_OK);
    ck_assert_int_eq(m.nlayers, 2);
    ck_assert_str_eq(m.layers[0].path, "layer1/aux");
    ck_assert_int_eq(m.layers[1].in_f32, 1);
    ck_assert_str_eq(m.layers[0].dtype, "int32");
    ck_assert_int_eq(m.layers[0].in_f32, 0); /* int32 is not exact in float */
    mk_model_free(&m);
}
END_TEST

static void expect_error(const char *layer, mk_err code, const char *text)
{
    const char *layers[] = {layer};
    mk_model m;
    ck_assert_int_eq(inspect(layers, 1, &m), code);
    ck_assert_msg(strstr(mk_errmsg(), text) != NULL, "'%s' not in '%s'", text, mk_errmsg());
    ck_assert_msg(strstr(mk_errmsg(), "acts.h5") != NULL, "no file in '%s'", mk_errmsg());
    ck_assert_int_eq(m.nlayers, 0);
}

START_TEST(bad_layers_are_named)
{
    expect_error("nope", MK_EINPUT, "no dataset 'nope'");
    expect_error("layer1", MK_EINPUT, "'layer1' is a group");
    expect_error("block*/x", MK_EINPUT, "pattern 'block*/x' matches no dataset");
    expect_error("a/b/c", MK_EINPUT, "no dataset 'a/b/c'");
}
END_TEST

START_TEST(non_numeric_zero_sized_and_mismatched_n)
{
    hid_t str = H5Tcopy(H5T_C_S1);
    H5Tset_size(str, 8);
    hid_t fid = H5Fopen(file, H5F_ACC_RDWR, H5P_DEFAULT);
    hsize_t d[2] = {20, 0}, ds[1] = {20};
    hid_t space = H5Screate_simple(1, ds, NULL);
    H5Dclose(H5Dcreate2(fid, "names", str, space, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT));
    H5Sclose(space);
    space = H5Screate_simple(2, d, NULL);
    H5Dclose(H5Dcreate2(fid, "empty", H5T_IEEE_F32LE, space, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT));
    H5Sclose(space);
    H5Fclose(fid);
    H5Tclose(str);
    hsize_t d19[2] = {19, 3};
    write_layer("short", H5T_IEEE_F32LE, 2, d19);
    expect_error("names", MK_EINPUT, "dataset 'names' is not numeric");
    expect_error("empty", MK_EINPUT, "a feature dimension is zero");
    const char *layers[] = {"emb", "short"};
    mk_model m;
    ck_assert_int_eq(inspect(layers, 2, &m), MK_EINPUT);
    ck_assert_ptr_nonnull(strstr(mk_errmsg(), "'short' has 19 examples but 'emb' has 20"));
}
END_TEST

START_TEST(missing_and_non_hdf5_files)
{
    mk_model m;
    const char *layers[] = {"x"};
    char *missing = "/nonexistent/acts.h5";
    mk_model_cfg cfg = {.files = &missing, .nfiles = 1, .name = "a", .layers = (char **)layers, .nlayers = 1};
    ck_assert_int_eq(mk_model_inspect(&cfg, &m), MK_EINPUT);
    ck_assert_ptr_nonnull(strstr(mk_errmsg(), "/nonexistent/acts.h5"));
    char *text = tu_path(tu_dir, "notes.h5");
    tu_write_text(text, "not hdf5\n");
    cfg.files = &text;
    ck_assert_int_eq(mk_model_inspect(&cfg, &m), MK_EINPUT);
    ck_assert_ptr_nonnull(strstr(mk_errmsg(), "is not an HDF5 file"));
    free(text);
}
END_TEST

static void check_read(mk_source *src, const mk_model *m, int l, const int64_t *rows, int64_t count)
{
    int64_t p = m->layers[l].p;
    double *buf = malloc((size_t)(count * p) * sizeof(double));
    ck_assert_int_eq(mk_source_read(src, l, rows, count, buf), MK_OK);
    for (int64_t i = 0; i < count; i++)
        for (int64_t f = 0; f < p; f++) {
            double got = m->layers[l].in_f32 ? ((float *)buf)[i * p + f] : buf[i * p + f];
            ck_assert_msg(got == value(rows[i], f), "layer %s row %lld feature %lld: %g", m->layers[l].path, (long long)rows[i], (long long)f, got);
        }
    free(buf);
}

START_TEST(reads_rows_of_every_type)
{
    const char *layers[] = {"layer*/out", "layer1/aux", "emb", "logits"};
    mk_model m;
    mk_source *src;
    ck_assert_int_eq(inspect(layers, 4, &m), MK_OK);
    ck_assert_int_eq(mk_source_open(&m, MK_CHUNK_CACHES, &src), MK_OK);
    int64_t run[5] = {3, 4, 5, 6, 7}, scattered[6] = {0, 2, 3, 4, 11, 19};
    for (int l = 0; l < m.nlayers; l++) {
        check_read(src, &m, l, run, 5);
        check_read(src, &m, l, scattered, 6);
    }
    mk_source_close(src);
    mk_model_free(&m);
}
END_TEST

/* Half precision is widened by mpicka itself: every kind of value must come
 * out as HDF5's own conversion gives it. */
START_TEST(half_precision_special_values)
{
    double v[16] = {0.0, -0.0, 1.0, -2.5, 65504.0, -65504.0, 6.103515625e-05, 5.9604644775390625e-08,
                    1e-6, -3e-7, INFINITY, -INFINITY, NAN, 0.1, 1000.25, -7.0};
    hsize_t dims[2] = {4, 4};
    hid_t half = half_type();
    tu_write_dataset(file, "halves", half, 2, dims, v);
    H5Tclose(half);
    const char *layers[] = {"halves"};
    mk_model m;
    mk_source *src;
    ck_assert_int_eq(inspect(layers, 1, &m), MK_OK);
    ck_assert_int_eq(m.layers[0].in_f32, 1);
    double expect[16];
    oracle_layer ref;
    ck_assert_int_eq(oracle_read_layer(file, "halves", &ref), 4);
    memcpy(expect, ref.data, sizeof expect);
    free(ref.data);
    ck_assert_int_eq(mk_source_open(&m, MK_CHUNK_CACHES, &src), MK_OK);
    int64_t rows[3] = {0, 2, 3};
    float got[12];
    ck_assert_int_eq(mk_source_read(src, 0, rows, 3, got), MK_OK);
    for (int i = 0; i < 3; i++)
        for (int f = 0; f < 4; f++) {
            double want = expect[rows[i] * 4 + f], have = got[i * 4 + f];
            if (isnan(want))
                ck_assert(isnan(have));
            else
                ck_assert_msg(have == want && signbit(have) == signbit(want), "value %d: %g, HDF5 gives %g",
                              (int)(rows[i] * 4 + f), have, want);
        }
    mk_source_close(src);
    mk_model_free(&m);
}
END_TEST

START_TEST(pack_round_trip)
{
    const char *layers[] = {"layer*/out", "logits"};
    mk_model m, u;
    char *buf;
    int64_t len;
    ck_assert_int_eq(inspect(layers, 2, &m), MK_OK);
    ck_assert_int_eq(mk_model_pack(&m, &buf, &len), MK_OK);
    ck_assert_int_eq(mk_model_unpack(buf, len, &u), MK_OK);
    ck_assert_str_eq(u.file, m.file);
    ck_assert_str_eq(u.name, "acts");
    ck_assert_int_eq(u.nlayers, m.nlayers);
    for (int l = 0; l < m.nlayers; l++) {
        ck_assert_str_eq(u.layers[l].path, m.layers[l].path);
        ck_assert_int_eq(u.layers[l].n, m.layers[l].n);
        ck_assert_int_eq(u.layers[l].p, m.layers[l].p);
        ck_assert_int_eq(u.layers[l].in_f32, m.layers[l].in_f32);
        ck_assert_str_eq(u.layers[l].shape, m.layers[l].shape);
        ck_assert_str_eq(u.layers[l].dtype, m.layers[l].dtype);
    }
    free(buf);
    mk_model_free(&m);
    mk_model_free(&u);
}
END_TEST

/* A chunked layer's band (a chunk's rows across every feature, partial
 * chunks counted whole) bounds its chunk cache; a contiguous layer has none. */
START_TEST(chunk_bands_bound_the_caches)
{
    hsize_t dims[3] = {20, 10, 3}, chunk[3] = {8, 4, 3};
    hid_t fid = H5Fopen(file, H5F_ACC_RDWR, H5P_DEFAULT), space = H5Screate_simple(3, dims, NULL);
    hid_t dcpl = H5Pcreate(H5P_DATASET_CREATE);
    ck_assert_int_ge(H5Pset_chunk(dcpl, 3, chunk), 0);
    ck_assert_int_ge(H5Pset_deflate(dcpl, 4), 0);
    hid_t dset = H5Dcreate2(fid, "chunked", H5T_IEEE_F32LE, space, H5P_DEFAULT, dcpl, H5P_DEFAULT);
    ck_assert_int_ge(dset, 0);
    static float zeros[20 * 10 * 3]; /* written: inspection refuses chunks never written */
    ck_assert_int_ge(H5Dwrite(dset, H5T_NATIVE_FLOAT, H5S_ALL, H5S_ALL, H5P_DEFAULT, zeros), 0);
    H5Dclose(dset), H5Pclose(dcpl), H5Sclose(space), H5Fclose(fid);
    const char *layers[] = {"chunked", "emb"};
    mk_model m, u;
    ck_assert_msg(inspect(layers, 2, &m) == MK_OK, "%s", mk_errmsg());
    ck_assert_int_eq(m.layers[0].band, 4 * 8 * 12 * 3);
    ck_assert_int_eq(m.layers[1].band, 0);
    ck_assert_uint_eq(mk_source_cache_bytes(&m, MK_CHUNK_CACHES), 4 * 8 * 12 * 3);
    char *buf;
    int64_t len;
    ck_assert_int_eq(mk_model_pack(&m, &buf, &len), MK_OK);
    ck_assert_int_eq(mk_model_unpack(buf, len, &u), MK_OK);
    ck_assert_int_eq(u.layers[0].band, m.layers[0].band);
    free(buf);
    mk_model_free(&m);
    mk_model_free(&u);
}
END_TEST

START_TEST(natural_order)
{
    ck_assert_int_lt(mk_natural_cmp("layer2", "layer10"), 0);
    ck_assert_int_gt(mk_natural_cmp("layer10/out", "layer9/out"), 0);
    ck_assert_int_lt(mk_natural_cmp("a", "b"), 0);
    ck_assert_int_eq(mk_natural_cmp("x01", "x1"), 0);
    ck_assert_int_lt(mk_natural_cmp("block1/conv2", "block1/conv10"), 0);
    ck_assert_int_lt(mk_natural_cmp("fc", "fc1"), 0);
}
END_TEST

/* ---- shards ---- */

/* Rows [lo, hi) of a layer of p features as one shard's dataset, values by
 * global example index. */
static void write_rows(const char *path, const char *name, hid_t type, int64_t lo, int64_t hi, int64_t p)
{
    hsize_t dims[2] = {(hsize_t)(hi - lo), (hsize_t)p};
    double *data = malloc((size_t)((hi - lo) * p) * sizeof *data);
    for (int64_t k = 0; k < (hi - lo) * p; k++) data[k] = value(lo + k / p, k % p);
    tu_write_dataset(path, name, type, 2, dims, data);
    free(data);
}

static void write_ids(const char *path, int64_t lo, int64_t hi, int64_t offset)
{
    hsize_t dim = (hsize_t)(hi - lo);
    double *ids = malloc((size_t)(hi - lo) * sizeof *ids);
    for (int64_t i = lo; i < hi; i++) ids[i - lo] = (double)(1000 + i + offset);
    tu_write_dataset(path, "ids", H5T_STD_I32LE, 1, &dim, ids);
    free(ids);
}

/* Shards of 7, 9 and 4 examples, named so that natural order differs from
 * the alphabetical one (part-2 before part-10). */
static const int64_t bounds[4] = {0, 7, 16, 20};
static const char *const shard_names[3] = {"part-1.h5", "part-2.h5", "part-10.h5"};

static void write_shards(int with_ids)
{
    hid_t half = half_type();
    for (int f = 0; f < 3; f++) {
        char *path = tu_path(tu_dir, shard_names[f]);
        write_rows(path, "a", H5T_IEEE_F64LE, bounds[f], bounds[f + 1], 3);
        write_rows(path, "b/c", half, bounds[f], bounds[f + 1], 2);
        if (with_ids) write_ids(path, bounds[f], bounds[f + 1], 0);
        free(path);
    }
    H5Tclose(half);
}

static mk_err inspect_files(char **files, int nfiles, const char **layers, int n, int check_ids, mk_model *model)
{
    mk_model_cfg cfg = {.files = files, .nfiles = nfiles, .name = "parts", .layers = (char **)layers,
                        .nlayers = n, .check_ids = check_ids};
    return mk_model_inspect(&cfg, model);
}

START_TEST(shards_concatenate_in_natural_order)
{
    write_shards(1);
    char *glob = tu_path(tu_dir, "part-*.h5");
    const char *layers[] = {"*", "b/*"};
    mk_model m;
    ck_assert_int_eq(inspect_files(&glob, 1, layers, 2, 1, &m), MK_OK);
    ck_assert_int_eq(m.nfiles, 3);
    for (int f = 0; f < 3; f++) {
        ck_assert_ptr_nonnull(strstr(m.files[f], shard_names[f]));
        ck_assert_int_eq(m.first[f], bounds[f]);
    }
    ck_assert_int_eq(m.first[3], 20);
    ck_assert_int_eq(m.nlayers, 2); /* 'ids' is never a layer of a glob */
    ck_assert_str_eq(m.layers[0].path, "a");
    ck_assert_int_eq(m.layers[0].n, 20);
    ck_assert_str_eq(m.layers[0].shape, "(20, 3)");
    ck_assert_str_eq(m.ids, "ids");
    ck_assert_int_eq(mk_model_shard(&m, 0), 0);
    ck_assert_int_eq(mk_model_shard(&m, 6), 0);
    ck_assert_int_eq(mk_model_shard(&m, 7), 1);
    ck_assert_int_eq(mk_model_shard(&m, 19), 2);
    char **files;
    int count;
    ck_assert_int_eq(mk_model_files(&m, &files, &count), MK_OK);
    ck_assert_int_eq(count, 3);
    ck_assert_str_eq(files[2], m.files[2]);
    mk_model_files_free(files, count);
    /* batches straddling shards, with runs and gaps */
    mk_source *src;
    ck_assert_int_eq(mk_source_open(&m, MK_CHUNK_CACHES, &src), MK_OK);
    int64_t straddle[8] = {5, 6, 7, 8, 15, 16, 17, 19}, all[20];
    for (int i = 0; i < 20; i++) all[i] = i;
    for (int l = 0; l < 2; l++) {
        check_read(src, &m, l, straddle, 8);
        check_read(src, &m, l, all, 20);
    }
    mk_ids ids = {0};
    ck_assert_int_eq(mk_source_read_ids(src, straddle, 8, &ids), MK_OK);
    ck_assert_int_eq(ids.m, 8);
    for (int i = 0; i < 8; i++) {
        char want[32];
        snprintf(want, sizeof want, "%lld", (long long)(1000 + straddle[i]));
        ck_assert_str_eq(ids.id[i], want);
    }
    mk_ids_free(&ids);
    mk_source_close(src);
    /* the file list travels with the model */
    char *buf;
    int64_t len;
    mk_model u;
    ck_assert_int_eq(mk_model_pack(&m, &buf, &len), MK_OK);
    ck_assert_int_eq(mk_model_unpack(buf, len, &u), MK_OK);
    ck_assert_int_eq(u.nfiles, 3);
    for (int f = 0; f < 3; f++) ck_assert_str_eq(u.files[f], m.files[f]);
    for (int f = 0; f <= 3; f++) ck_assert_int_eq(u.first[f], m.first[f]);
    ck_assert_str_eq(u.ids, "ids");
    ck_assert_int_eq(u.order, m.order);
    free(buf);
    mk_model_free(&u);
    mk_model_free(&m);
    free(glob);
}
END_TEST

START_TEST(listed_shards_keep_their_order)
{
    write_shards(0);
    char *files[2] = {tu_path(tu_dir, "part-10.h5"), tu_path(tu_dir, "part-1.h5")};
    const char *layers[] = {"a"};
    mk_model m;
    ck_assert_int_eq(inspect_files(files, 2, layers, 1, 1, &m), MK_OK);
    ck_assert_int_eq(m.first[1], 4);
    ck_assert_int_eq(m.first[2], 11);
    ck_assert_ptr_null(m.ids);
    ck_assert_ptr_nonnull(strstr(m.file, "part-10.h5, "));
    mk_model_free(&m);
    char *twice[2] = {files[0], files[0]};
    ck_assert_int_eq(inspect_files(twice, 2, layers, 1, 1, &m), MK_EINPUT);
    ck_assert_ptr_nonnull(strstr(mk_errmsg(), "is listed twice"));
    char *none = tu_path(tu_dir, "nothing-*.h5");
    ck_assert_int_eq(inspect_files(&none, 1, layers, 1, 1, &m), MK_EINPUT);
    ck_assert_ptr_nonnull(strstr(mk_errmsg(), "nothing-*.h5' matches no file"));
    free(none), free(files[0]), free(files[1]);
}
END_TEST

static void expect_shard_error(const char *layer, const char *needle1, const char *needle2)
{
    char *glob = tu_path(tu_dir, "part-*.h5");
    const char *layers[] = {layer};
    mk_model m;
    ck_assert_int_eq(inspect_files(&glob, 1, layers, 1, 1, &m), MK_EINPUT);
    ck_assert_msg(strstr(mk_errmsg(), needle1) && strstr(mk_errmsg(), needle2), "%s", mk_errmsg());
    ck_assert_int_eq(m.nlayers, 0);
    free(glob);
}

START_TEST(shards_must_match)
{
    write_shards(0);
    char *p2 = tu_path(tu_dir, "part-2.h5"), *p10 = tu_path(tu_dir, "part-10.h5");
    write_rows(p2, "wide", H5T_IEEE_F32LE, 7, 16, 4);
    write_rows(p10, "wide", H5T_IEEE_F32LE, 16, 20, 5);
    char *p1 = tu_path(tu_dir, "part-1.h5");
    write_rows(p1, "wide", H5T_IEEE_F32LE, 0, 7, 4);
    write_rows(p1, "typed", H5T_IEEE_F32LE, 0, 7, 4);
    write_rows(p2, "typed", H5T_IEEE_F64LE, 7, 16, 4);
    write_rows(p10, "typed", H5T_IEEE_F32LE, 16, 20, 4);
    write_rows(p1, "only_first", H5T_IEEE_F32LE, 0, 7, 4);
    expect_shard_error("only_first", "part-2.h5: no dataset 'only_first', which the first shard", "part-1.h5");
    expect_shard_error("wide", "part-10.h5: dataset 'wide' has shape (4, 5)", "same trailing shape");
    expect_shard_error("typed", "part-2.h5: dataset 'typed' has shape (9, 4) and type float64, but float32", "part-1.h5");
    write_ids(p1, 0, 7, 0); /* only the first shard has IDs */
    expect_shard_error("a", "part-2.h5 lacks the sample-ID dataset 'ids'", "every shard needs it");
    hsize_t d2[2] = {9, 2};
    double zeros[18] = {0};
    tu_write_dataset(p2, "ids", H5T_STD_I64LE, 2, d2, zeros);
    expect_shard_error("a", "part-2.h5: the sample-ID dataset 'ids' must be 1-D", "ids: false");
    free(p1), free(p2), free(p10);
}
END_TEST

/* Fixed- and variable-length strings are IDs too, compared as text. */
START_TEST(string_ids)
{
    const char *names[20];
    char text[20][16];
    for (int i = 0; i < 20; i++) {
        snprintf(text[i], sizeof text[i], "img_%03d.png", i);
        names[i] = text[i];
    }
    hid_t fid = H5Fopen(file, H5F_ACC_RDWR, H5P_DEFAULT);
    hsize_t dim = 20;
    hid_t space = H5Screate_simple(1, &dim, NULL), vstr = H5Tcopy(H5T_C_S1), fstr = H5Tcopy(H5T_C_S1);
    H5Tset_size(vstr, H5T_VARIABLE);
    H5Tset_size(fstr, 16);
    hid_t d = H5Dcreate2(fid, "ids", vstr, space, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    H5Dwrite(d, vstr, H5S_ALL, H5S_ALL, H5P_DEFAULT, names);
    H5Dclose(d);
    d = H5Dcreate2(fid, "fixed_ids", fstr, space, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    H5Dwrite(d, fstr, H5S_ALL, H5S_ALL, H5P_DEFAULT, text);
    H5Dclose(d);
    H5Tclose(vstr), H5Tclose(fstr), H5Sclose(space), H5Fclose(fid);
    const char *ds[2] = {"ids", "/fixed_ids"};
    for (int k = 0; k < 2; k++) {
        const char *layers[] = {"emb"};
        mk_model_cfg cfg = {.files = &file, .nfiles = 1, .name = "acts", .layers = (char **)layers, .nlayers = 1,
                            .ids = ds[k], .check_ids = 1};
        mk_model m;
        mk_source *src;
        ck_assert_int_eq(mk_model_inspect(&cfg, &m), MK_OK);
        ck_assert_str_eq(m.ids, ds[k] + (k == 1));
        ck_assert_int_eq(mk_source_open(&m, MK_CHUNK_CACHES, &src), MK_OK);
        int64_t rows[3] = {0, 11, 19};
        mk_ids ids = {0};
        ck_assert_int_eq(mk_source_read_ids(src, rows, 3, &ids), MK_OK);
        ck_assert_str_eq(ids.id[0], "img_000.png");
        ck_assert_str_eq(ids.id[1], "img_011.png");
        ck_assert_str_eq(ids.id[2], "img_019.png");
        mk_ids_free(&ids);
        mk_source_close(src);
        mk_model_free(&m);
        cfg.check_ids = 0; /* ids: false */
        ck_assert_int_eq(mk_model_inspect(&cfg, &m), MK_OK);
        ck_assert_ptr_null(m.ids);
        mk_model_free(&m);
    }
}
END_TEST

/* A file that tracks creation order (as h5py's track_order=True writes it)
 * expands globs in network order, unless natural order is asked for. */
START_TEST(creation_order)
{
    char *path = tu_path(tu_dir, "net.h5");
    hid_t fcpl = H5Pcreate(H5P_FILE_CREATE);
    H5Pset_link_creation_order(fcpl, H5P_CRT_ORDER_TRACKED | H5P_CRT_ORDER_INDEXED);
    H5Fclose(H5Fcreate(path, H5F_ACC_TRUNC, fcpl, H5P_DEFAULT));
    H5Pclose(fcpl);
    const char *net[] = {"conv1", "bn1", "layer1.0", "layer1.1", "layer2.0", "fc", "avgpool"};
    for (int l = 0; l < 7; l++) write_rows(path, net[l], H5T_IEEE_F32LE, 0, 20, 2);
    write_ids(path, 0, 20, 0);
    const char *layers[] = {"*"};
    mk_model_cfg cfg = {.files = &path, .nfiles = 1, .name = "net", .layers = (char **)layers, .nlayers = 1};
    mk_model m;
    ck_assert_int_eq(mk_model_inspect(&cfg, &m), MK_OK);
    ck_assert_int_eq(m.order, MK_ORDER_CREATION);
    ck_assert_int_eq(m.nlayers, 7);
    for (int l = 0; l < 7; l++) ck_assert_str_eq(m.layers[l].path, net[l]);
    mk_model_free(&m);
    cfg.order = MK_ORDER_NATURAL;
    ck_assert_int_eq(mk_model_inspect(&cfg, &m), MK_OK);
    ck_assert_int_eq(m.order, MK_ORDER_NATURAL);
    ck_assert_str_eq(m.layers[0].path, "avgpool");
    ck_assert_str_eq(m.layers[6].path, "layer2.0");
    mk_model_free(&m);
    /* the fixture's file does not track it: auto falls back, creation refuses */
    cfg.files = &file;
    const char *outs[] = {"layer*/out"};
    cfg.layers = (char **)outs;
    cfg.order = MK_ORDER_AUTO;
    ck_assert_int_eq(mk_model_inspect(&cfg, &m), MK_OK);
    ck_assert_int_eq(m.order, MK_ORDER_NATURAL);
    ck_assert_str_eq(m.layers[0].path, "layer1/out");
    mk_model_free(&m);
    cfg.order = MK_ORDER_CREATION;
    ck_assert_int_eq(mk_model_inspect(&cfg, &m), MK_EINPUT);
    ck_assert_ptr_nonnull(strstr(mk_errmsg(), "does not track the creation order"));
    free(path);
}
END_TEST

START_TEST(missing_layer_lists_the_closest)
{
    expect_error("layer1/ou", MK_EINPUT, "no dataset 'layer1/ou' (closest: 'layer1/out', 'layer1/aux'");
    expect_error("layer3/out", MK_EINPUT, "'layer1/out'");
    expect_error("embedding", MK_EINPUT, "(closest: 'emb')");
    expect_error("zzzzzzzzzzzzzz", MK_EINPUT, "no dataset 'zzzzzzzzzzzzzz'");
    ck_assert_ptr_null(strstr(mk_errmsg(), "closest"));
}
END_TEST

TU_MAIN("source", 0,
        TU_CASE("hdf5", setup, tu_dir_teardown, 0, NULL, globs_expand_in_natural_order, star_does_not_cross_groups,
                bad_layers_are_named, non_numeric_zero_sized_and_mismatched_n, missing_and_non_hdf5_files,
                reads_rows_of_every_type, half_precision_special_values, pack_round_trip, chunk_bands_bound_the_caches,
                natural_order, shards_concatenate_in_natural_order, listed_shards_keep_their_order, shards_must_match,
                string_ids, creation_order, missing_layer_lists_the_closest))
