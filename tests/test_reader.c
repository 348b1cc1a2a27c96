/* The read-ahead thread: the blocks it hands out, in order, are the centred
 * rows of the plan's batches; errors and early stops are clean. */
#include <check.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "mpicka/hsic.h"
#include "mpicka/reader.h"
#include "testutil.h"

static char *file;

static void setup(void)
{
    tu_dir_setup();
    file = tu_in("acts.h5");
    hsize_t d1[2] = {50, 3}, d2[3] = {50, 2, 2};
    double a[150], b[200];
    for (int k = 0; k < 150; k++) a[k] = (double)((k * 31) % 17) + 0.25;
    for (int k = 0; k < 200; k++) b[k] = (double)((k * 7) % 13) - 6.0;
    tu_write_dataset(file, "a", H5T_IEEE_F64LE, 2, d1, a);
    tu_write_dataset(file, "b", H5T_IEEE_F32LE, 3, d2, b);
    b[37 * 4 + 1] = NAN;
    tu_write_dataset(file, "bad", H5T_IEEE_F32LE, 3, d2, b);
}

/* A lineup over models the test holds: free only its offsets. */
static void lineup_of(mk_model *models, int n, mk_lineup *lu)
{
    memset(lu, 0, sizeof *lu);
    lu->models = models;
    lu->nmodels = n;
    lu->cross = n == 2;
    ck_assert_int_eq(mk_lineup_layout(lu), MK_OK);
}

static void open_model(const char **layers, int n, mk_model *model, mk_source **src)
{
    mk_model_cfg cfg = {.files = &file, .nfiles = 1, .name = "acts", .layers = (char **)layers, .nlayers = n};
    ck_assert_int_eq(mk_model_inspect(&cfg, model), MK_OK);
    ck_assert_int_eq(mk_source_open(model, MK_CHUNK_CACHES, src), MK_OK);
}

static const double ones[2] = {1.0, 1.0};

/* Layers l0 and l1 of acts.h5, opened, and a plan of its 50 examples (m,
 * epochs, shuffle, seed as mk_plan_init takes them), with every batch to do. */
typedef struct {
    mk_model model;
    mk_source *src;
    mk_plan plan;
    mk_lineup lu;
    mk_todo todo;
} reading;

static void reading_open(reading *rd, const char *l0, const char *l1, int64_t m, int epochs, int shuffle,
                         uint64_t seed)
{
    const char *layers[] = {l0, l1};
    open_model(layers, 2, &rd->model, &rd->src);
    ck_assert_int_eq(mk_plan_init(&rd->plan, 50, m, epochs, shuffle, seed), MK_OK);
    lineup_of(&rd->model, 1, &rd->lu);
    ck_assert_int_eq(mk_todo_all(&rd->plan, &rd->todo), MK_OK);
}

static void reading_close(reading *rd)
{
    mk_todo_free(&rd->todo);
    mk_source_close(rd->src);
    mk_model_free(&rd->model);
    free(rd->lu.offset);
}

/* Blocks from r until one fails (at most 10): returns that error, and in
 * *taken how many were asked for, the failed one included. */
static mk_err next_until_failure(mk_reader *r, int *taken)
{
    mk_block blk;
    mk_err err = MK_OK;
    for (*taken = 0; err == MK_OK && *taken < 10; ++*taken) err = mk_reader_next(r, &blk);
    return err;
}

static void stop_reader(mk_reader *r)
{
    double times[MK_READER_TIMES] = {0};
    mk_reader_stop(r, times);
}

START_TEST(blocks_come_in_order_and_centred)
{
    reading rd;
    reading_open(&rd, "a", "b", 16, 2, 1, 9); /* 3 batches per epoch, 2 epochs */
    /* Expected blocks first: only the reader thread may call HDF5 once it runs.
     * Layer b is scaled by 1/4 (as a layer out of the Grams' range would be). */
    static const double scales[2] = {1.0, 0.25};
    int64_t rows[4][16];
    double expect[4][2][64], raw[64], mean[12];
    for (int64_t g = 1; g < 5; g++) {
        mk_plan_batch_rows(&rd.plan, g, rows[g - 1]);
        for (int l = 0; l < 2; l++) {
            int64_t p = rd.model.layers[l].p;
            float rawf[64];
            ck_assert_int_eq(
                mk_source_read(rd.src, l, rows[g - 1], 16, rd.model.layers[l].in_f32 ? (void *)rawf : raw), MK_OK);
            if (rd.model.layers[l].in_f32)
                for (int k = 0; k < 16 * p; k++) raw[k] = rawf[k];
            mk_centring how = {.scale = scales[l]};
            ck_assert_int_eq(mk_centre(raw, 0, 16, p, MK_PREC_FLOAT64, mean, expect[g - 1][l], &how), -1);
        }
    }
    mk_reader *r;
    ck_assert_int_eq(mk_reader_start(&rd.plan, MK_PREC_FLOAT64, &rd.src, &rd.lu, scales, &rd.todo, 1, 5, NULL, &r), MK_OK);
    for (int64_t g = 1; g < 5; g++)
        for (int l = 0; l < 2; l++) {
            mk_block blk;
            ck_assert_int_eq(mk_reader_next(r, &blk), MK_OK);
            ck_assert_int_eq(blk.g, g);
            ck_assert_int_eq(blk.layer, l);
            ck_assert_int_eq(blk.m, 16);
            ck_assert(memcmp(blk.rows, rows[g - 1], sizeof rows[0]) == 0);
            for (int k = 0; k < 16 * rd.model.layers[l].p; k++)
                ck_assert(((const double *)blk.data)[k] == expect[g - 1][l][k]);
        }
    double times[MK_READER_TIMES] = {0};
    mk_reader_stop(r, times);
    ck_assert(times[MK_READER_READ] > 0.0);
    reading_close(&rd);
}
END_TEST

START_TEST(nan_is_reported_with_the_example)
{
    reading rd;
    reading_open(&rd, "a", "bad", 10, 1, 0, 0);
    mk_reader *r;
    ck_assert_int_eq(
        mk_reader_start(&rd.plan, MK_PREC_FLOAT32, &rd.src, &rd.lu, ones, &rd.todo, 0, rd.plan.total, NULL, &r), MK_OK);
    int taken;
    ck_assert_int_eq(next_until_failure(r, &taken), MK_EDATA);
    ck_assert_int_eq(taken, 2 * 3 + 2); /* example 37 is in batch 3; 'bad' is its second layer */
    tu_assert_has(mk_errmsg(), "dataset 'bad' holds NaN or Inf at example 37");
    stop_reader(r);
    reading_close(&rd);
}
END_TEST

START_TEST(stopping_early_does_not_hang)
{
    reading rd;
    reading_open(&rd, "a", "b", 4, 3, 0, 0);
    ck_assert_int_eq(mk_todo_remove(&rd.todo, 2, 5), MK_OK); /* as after a checkpoint */
    for (int take = 0; take < 4; take++) {
        mk_reader *r;
        ck_assert_int_eq(
            mk_reader_start(&rd.plan, MK_PREC_FLOAT32, &rd.src, &rd.lu, ones, &rd.todo, 0, rd.todo.batches, NULL, &r),
            MK_OK);
        mk_block blk;
        for (int k = 0; k < take; k++) {
            ck_assert_int_eq(mk_reader_next(r, &blk), MK_OK);
            ck_assert_int_eq(blk.g, k / 2 < 2 ? k / 2 : k / 2 + 3); /* batches 2..4 were done */
        }
        stop_reader(r);
    }
    reading_close(&rd);
}
END_TEST

/* x and y with sample IDs that differ at example 23: the batch holding it
 * fails before its first block, naming the example, both IDs and files. */
START_TEST(different_ids_stop_the_batch)
{
    char *yfile = tu_path(tu_dir, "y.h5");
    hsize_t d1[2] = {50, 3}, n = 50;
    double a[150], ids[50];
    for (int k = 0; k < 150; k++) a[k] = (double)(k % 7);
    for (int i = 0; i < 50; i++) ids[i] = 100 + i;
    tu_write_dataset(file, "ids", H5T_STD_I64LE, 1, &n, ids);
    ids[23] = 124, ids[24] = 123;
    tu_write_dataset(yfile, "a", H5T_IEEE_F32LE, 2, d1, a);
    tu_write_dataset(yfile, "ids", H5T_STD_U16LE, 1, &n, ids);
    const char *layers[] = {"a"};
    mk_model_cfg xc = {.files = &file, .nfiles = 1, .name = "x", .layers = (char **)layers, .nlayers = 1, .check_ids = 1};
    mk_model_cfg yc = xc;
    yc.files = &yfile;
    mk_model xy[2];
    mk_source *srcs[2];
    ck_assert_int_eq(mk_model_inspect(&xc, &xy[0]), MK_OK);
    ck_assert_int_eq(mk_model_inspect(&yc, &xy[1]), MK_OK);
    ck_assert_int_eq(mk_source_open(&xy[0], MK_CHUNK_CACHES, &srcs[0]), MK_OK);
    ck_assert_int_eq(mk_source_open(&xy[1], MK_CHUNK_CACHES, &srcs[1]), MK_OK);
    mk_plan plan;
    ck_assert_int_eq(mk_plan_init(&plan, 50, 10, 1, 0, 0), MK_OK);
    mk_todo todo;
    ck_assert_int_eq(mk_todo_all(&plan, &todo), MK_OK);
    mk_lineup lu;
    lineup_of(xy, 2, &lu);
    static const double ones4[4] = {1.0, 1.0, 1.0, 1.0};
    mk_reader *r;
    ck_assert_int_eq(mk_reader_start(&plan, MK_PREC_FLOAT64, srcs, &lu, ones4, &todo, 0, plan.total, NULL, &r), MK_OK);
    int taken;
    ck_assert_int_eq(next_until_failure(r, &taken), MK_EDATA);
    ck_assert_int_eq(taken, 2 * 2 + 1); /* batch 2, before its first block */
    ck_assert_msg(strstr(mk_errmsg(), "example 23 is '123' in ") && strstr(mk_errmsg(), "acts.h5 but '124' in ") &&
                      strstr(mk_errmsg(), "y.h5"), "%s", mk_errmsg());
    stop_reader(r);
    mk_todo_free(&todo);
    mk_source_close(srcs[0]);
    mk_source_close(srcs[1]);
    mk_model_free(&xy[0]);
    mk_model_free(&xy[1]);
    free(lu.offset);
    free(yfile);
}
END_TEST

/* Blocks read already (the probe's) are handed out instead of a read: a
 * kept block of twice the file's values comes out as twice the centred
 * rows, while the layer left out, and the next batch, come from the file. */
static void centred_from_file(reading *rd, int layer, int64_t first, double *out)
{
    int64_t rows[10], p = rd->model.layers[layer].p;
    double raw[40], mean[12];
    float rawf[40];
    for (int k = 0; k < 10; k++) rows[k] = first + k;
    int f32 = rd->model.layers[layer].in_f32;
    ck_assert_int_eq(mk_source_read(rd->src, layer, rows, 10, f32 ? (void *)rawf : raw), MK_OK);
    for (int k = 0; f32 && k < 10 * p; k++) raw[k] = rawf[k];
    mk_centring how = {.scale = 1.0};
    ck_assert_int_eq(mk_centre(raw, 0, 10, p, MK_PREC_FLOAT64, mean, out, &how), -1);
}

static void expect_block(mk_reader *r, int64_t g, int layer, const double *want, int64_t count)
{
    mk_block blk;
    ck_assert_int_eq(mk_reader_next(r, &blk), MK_OK);
    ck_assert_int_eq(blk.g, g);
    ck_assert_int_eq(blk.layer, layer);
    for (int64_t k = 0; k < count; k++) ck_assert(((const double *)blk.data)[k] == want[k]);
}

START_TEST(kept_blocks_replace_the_read)
{
    reading rd;
    reading_open(&rd, "a", "b", 10, 1, 0, 0);
    double a0[30], b0[40], a1[30];
    centred_from_file(&rd, 0, 0, a0);
    centred_from_file(&rd, 1, 0, b0);
    centred_from_file(&rd, 0, 10, a1);
    mk_kept kept = {.g = 0, .nlayers = 2, .raw = calloc(2, sizeof(void *))};
    double *twice = malloc(30 * sizeof *twice);
    int64_t rows[10];
    for (int k = 0; k < 10; k++) rows[k] = k;
    ck_assert_int_eq(mk_source_read(rd.src, 0, rows, 10, twice), MK_OK);
    for (int k = 0; k < 30; k++) twice[k] *= 2.0, a0[k] *= 2.0;
    kept.raw[0] = twice; /* layer b of batch 0 is left to the reader */
    mk_reader *r;
    ck_assert_int_eq(mk_reader_start(&rd.plan, MK_PREC_FLOAT64, &rd.src, &rd.lu, ones, &rd.todo, 0, 2, &kept, &r),
                     MK_OK);
    ck_assert_ptr_null(kept.raw); /* taken over */
    expect_block(r, 0, 0, a0, 30);
    expect_block(r, 0, 1, b0, 40);
    expect_block(r, 1, 0, a1, 30);
    stop_reader(r);
    reading_close(&rd);
}
END_TEST

TU_MAIN("reader", 0,
        TU_CASE("read-ahead", setup, tu_dir_teardown, 60, NULL, blocks_come_in_order_and_centred,
                nan_is_reported_with_the_example, stopping_early_does_not_hang, different_ids_stop_the_batch,
                kept_blocks_replace_the_read))
