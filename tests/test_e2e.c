/* End to end: `mpicka synth` writes real HDF5 files, `mpirun -np 1|2|3
 * mpicka run` computes the matrix, and the results are checked against the
 * float64 oracle and bitwise against each other; then every bad input. */
#include <check.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mpicka/plan.h"
#include "oracle.h"
#include "testutil.h"

static char *in_dir(const char *name) { return tu_path(tu_dir, name); }

/* x: 5 layers, mixed dtypes, 2-D and 4-D, offset 1e3 (float32 must cope);
 * y: 3 layers. 203 examples: batches of 32 leave a partial batch of 11. */
static void make_inputs(void)
{
    tu_dir_setup();
    char cmd[2048];
    snprintf(cmd, sizeof cmd,
             "cd %s && %s synth x.h5 --n 203 --layers 5 --features 6,2x3x2,4x2x2x2,9,3 "
             "--dtype f32,f16,f64,i16,f32 --offset 1000 --corr 0.8 --seed 1 "
             "--names block1/conv,block1/relu,block2/conv,block2/relu,fc --chunk 50 --gzip 4 && "
             "%s synth y.h5 --n 203 --layers 3 --features 5,2x2x2 --dtype f32,f64 --seed 2",
             tu_dir, MK_TEST_EXE, MK_TEST_EXE);
    tu_must_run(cmd);
}

typedef struct {
    double cka[64], hxy[64], hxx[8], hyy[8];
    int64_t ncka;
} result;

static void read_result(const char *outdir, result *r)
{
    memset(r, 0, sizeof *r);
    char *h5 = tu_path(outdir, "cka.h5");
    r->ncka = tu_read_doubles(h5, "cka", r->cka, 64);
    ck_assert_int_gt(r->ncka, 0);
    ck_assert_int_eq(tu_read_doubles(h5, "hsic_xy", r->hxy, 64), r->ncka);
    ck_assert_int_gt(tu_read_doubles(h5, "hsic_xx", r->hxx, 8), 0);
    ck_assert_int_gt(tu_read_doubles(h5, "hsic_yy", r->hyy, 8), 0);
    free(h5);
}

static void assert_same_bits(const result *a, const result *b, const char *what)
{
    ck_assert_int_eq(a->ncka, b->ncka);
    ck_assert_msg(memcmp(a->cka, b->cka, (size_t)a->ncka * sizeof(double)) == 0, "%s: cka differs", what);
    ck_assert_msg(memcmp(a->hxy, b->hxy, (size_t)a->ncka * sizeof(double)) == 0, "%s: hsic_xy differs", what);
    ck_assert_msg(memcmp(a->hxx, b->hxx, sizeof a->hxx) == 0, "%s: hsic_xx differs", what);
    ck_assert_msg(memcmp(a->hyy, b->hyy, sizeof a->hyy) == 0, "%s: hsic_yy differs", what);
}

static int load_layers(const char *file, const char *const *names, int n, oracle_layer *layers)
{
    char *path = in_dir(file);
    for (int l = 0; l < n; l++) ck_assert_int_eq(oracle_read_layer(path, names[l], &layers[l]), 203);
    free(path);
    return n;
}

/* The oracle's batches: its own slicing without shuffle; with shuffle the
 * membership comes from the plan (tested on its own in test_plan). */
static void oracle(const oracle_layer *x, int nx, const oracle_layer *y, int ny, int64_t m, int epochs,
                   int shuffle, double *cka)
{
    int64_t n = 203, per = n / m + (n % m >= 4 ? 1 : 0), nb = per * epochs;
    int64_t **rows = malloc((size_t)nb * sizeof *rows), *sizes = malloc((size_t)nb * sizeof *sizes);
    mk_plan plan;
    ck_assert_int_eq(mk_plan_init(&plan, n, m, epochs, shuffle, 7), MK_OK);
    for (int64_t b = 0; b < nb; b++) {
        int64_t lo = (b % per) * m, hi = lo + m < n ? lo + m : n;
        sizes[b] = hi - lo;
        rows[b] = malloc((size_t)sizes[b] * sizeof(int64_t));
        if (shuffle)
            mk_plan_batch_rows(&plan, b, rows[b]);
        else
            for (int64_t k = 0; k < sizes[b]; k++) rows[b][k] = lo + k;
    }
    oracle_minibatch_cka(x, nx, y, ny, nb, (const int64_t *const *)rows, sizes, cka);
    for (int64_t b = 0; b < nb; b++) free(rows[b]);
    free(rows);
    free(sizes);
}

static const char *x_names[] = {"block1/conv", "block1/relu", "block2/conv", "block2/relu", "fc"};
static const char *y_names[] = {"layer1", "layer2", "layer3"};

/* Runs the config with 1, 2 and 3 ranks into out1..out3 of dir. */
static void check_ranks_and_oracle(const char *config, const char *out, const oracle_layer *x, int nx,
                                   const oracle_layer *y, int ny, double tol, int64_t m, int epochs, int shuffle)
{
    result r[3];
    for (int np = 1; np <= 3; np++) {
        char *text, extra[256], outdir[1024];
        snprintf(extra, sizeof extra, "--set output=%s%d", out, np);
        int status = tu_run_config(np, config, extra, &text);
        ck_assert_msg(status == 0, "np=%d: %s", np, text);
        tu_assert_has(text, "wrote");
        free(text);
        snprintf(outdir, sizeof outdir, "%s/%s%d", tu_dir, out, np);
        read_result(outdir, &r[np - 1]);
    }
    assert_same_bits(&r[0], &r[1], "1 vs 2 ranks");
    assert_same_bits(&r[0], &r[2], "1 vs 3 ranks");
    double ref[64];
    oracle(x, nx, y, ny, m, epochs, shuffle, ref);
    for (int k = 0; k < nx * ny; k++)
        ck_assert_msg(fabs(r[0].cka[k] - ref[k]) <= tol, "cka[%d] = %.17g, oracle %.17g", k, r[0].cka[k], ref[k]);
}

START_TEST(x_vs_y_float64_across_ranks)
{
    oracle_layer x[5], y[3];
    load_layers("x.h5", x_names, 5, x);
    load_layers("y.h5", y_names, 3, y);
    tu_write_config("xy.yaml",
                    "x:\n  file: x.h5\n  layers: [\"block*/*\", fc]\n"
                    "y:\n  file: y.h5\n  name: other\n  layers: [\"layer*\"]\n"
                    "batch_size: 32\nprecision: float64\noutput: unused\n");
    check_ranks_and_oracle("xy.yaml", "xy", x, 5, y, 3, 1e-9, 32, 1, 0);
    for (int l = 0; l < 5; l++) free(x[l].data);
    for (int l = 0; l < 3; l++) free(y[l].data);
}
END_TEST

START_TEST(self_float32_shuffled_two_epochs)
{
    oracle_layer x[5];
    load_layers("x.h5", x_names, 5, x);
    tu_write_config("self.yaml",
                    "x:\n  file: x.h5\n  layers: [\"block*/*\", fc]\n"
                    "batch_size: 40\nepochs: 2\nshuffle: true\nseed: 7\n"
                    "precision: float32\noutput: unused\n");
    check_ranks_and_oracle("self.yaml", "self", x, 5, x, 5, 1e-6, 40, 2, 1);
    for (int l = 0; l < 5; l++) free(x[l].data);
}
END_TEST

/* The resolved config stored in cka.h5 reproduces the run bit for bit, and
 * the CSV and the attributes say what was computed. */
START_TEST(output_reproduces_and_describes_the_run)
{
    tu_write_config("rep.yaml",
                    "x:\n  file: x.h5\n  layers: [\"block1/*\"]\n"
                    "y:\n  file: y.h5\n  layers: [layer1, layer3]\n"
                    "batch_size: 16\nshuffle: yes\nseed: 3\noutput: first\n");
    char *out;
    tu_assert_exit(tu_run_config(2, "rep.yaml", "--set epochs=2", &out), 0);
    free(out);
    char *h5 = in_dir("first/cka.h5");
    char *config = tu_read_str_attr(h5, "config");
    ck_assert_ptr_nonnull(config);
    ck_assert_ptr_nonnull(strstr(config, "epochs: 2"));
    ck_assert_int_eq(tu_read_int_attr(h5, "n"), 203);
    ck_assert_int_eq(tu_read_int_attr(h5, "ranks"), 2);
    ck_assert_int_eq(tu_read_int_attr(h5, "batches"), 2 * 13);
    ck_assert_int_eq(tu_read_int_attr(h5, "epochs"), 2);
    tu_write_config("again.yaml", config);
    tu_assert_exit(tu_run_config(3, "again.yaml", "--set output=second", &out), 0);
    free(out);
    result a, b;
    char *first = in_dir("first"), *second = in_dir("second");
    read_result(first, &a);
    read_result(second, &b);
    assert_same_bits(&a, &b, "rerun from the stored config");
    char *csv_path = in_dir("first/cka.csv");
    FILE *f = fopen(csv_path, "r");
    char line[1024];
    ck_assert_ptr_nonnull(fgets(line, sizeof line, f));
    ck_assert_str_eq(line, "layer,layer1,layer3\n");
    ck_assert_ptr_nonnull(fgets(line, sizeof line, f));
    ck_assert(strncmp(line, "block1/conv,", 12) == 0);
    ck_assert_double_eq(strtod(line + 12, NULL), a.cka[0]); /* %.17g round-trips */
    fclose(f);
    free(csv_path), free(first), free(second), free(config), free(h5);
}
END_TEST

/* A constant layer gives NaN in its row and a warning; others are fine. */
START_TEST(dead_layer_gives_nan_and_a_warning)
{
    char *file = in_dir("dead.h5");
    hsize_t dims[2] = {40, 3};
    double data[120];
    for (int k = 0; k < 120; k++) data[k] = 5.0;
    tu_write_dataset(file, "dead", H5T_IEEE_F32LE, 2, dims, data);
    for (int k = 0; k < 120; k++) data[k] = (double)((k * 37) % 11);
    tu_write_dataset(file, "alive", H5T_IEEE_F32LE, 2, dims, data);
    tu_write_config("dead.yaml", "x:\n  file: dead.h5\n  layers: [alive, dead]\nbatch_size: 10\noutput: deadout\n");
    char *out;
    tu_assert_exit(tu_run_config(2, "dead.yaml", NULL, &out), 0);
    tu_assert_has(out, "layer 'dead'");
    tu_assert_count(out, "is constant in every batch (a dead layer)", 1);
    free(out);
    char *h5 = in_dir("deadout/cka.h5");
    double cka[4];
    ck_assert_int_eq(tu_read_doubles(h5, "cka", cka, 4), 4);
    ck_assert_double_eq_tol(cka[0], 1.0, 1e-12);
    ck_assert(isnan(cka[1]) && isnan(cka[2]) && isnan(cka[3]));
    free(h5);
    free(file);
}
END_TEST

/* Progress: plain lines for a log, a live bar on request, nothing when quiet. */
START_TEST(progress_in_every_mode)
{
    tu_write_config("prog.yaml",
                    "x:\n  file: x.h5\n  layers: [fc]\nbatch_size: 8\nprogress_seconds: 0\noutput: prog\n");
    char *out;
    tu_assert_exit(tu_run_config(2, "prog.yaml", NULL, &out), 0);
    tu_assert_has(out, "mpicka: progress: 25/25 batches (100%)");
    ck_assert_int_ge(tu_count(out, "mpicka: progress: "), 10);
    tu_assert_has(out, "examples/s");
    free(out);
    tu_assert_exit(tu_run_config(2, "prog.yaml", "--progress bar", &out), 0);
    tu_assert_has(out, "\r[");
    char *png = in_dir("prog/cka.png");
    ck_assert(tu_exists(png)); /* drawn by default */
    free(png);
    tu_assert_has(out, "\r\033[K"); /* the bar is cleared at the end */
    tu_assert_count(out, "mpicka: progress: ", 0);
    free(out);
    tu_assert_exit(tu_run_config(2, "prog.yaml", "--quiet --set plot=false --set output=quiet", &out), 0);
    char *none = in_dir("quiet/cka.png");
    ck_assert(!tu_exists(none));
    free(none);
    tu_assert_count(out, "progress", 0);
    tu_assert_count(out, "\r[", 0);
    tu_assert_has(out, "wrote");
    free(out);
}
END_TEST

/* check: the plan, a memory estimate within 25% of a real run's peak, and
 * every problem of a bad config at once. */
#define MK_TEST_LIBRARY_MIB 28.0 /* the libraries' share of the estimate */

START_TEST(check_plans_and_estimates_memory)
{
    char cmd[1024];
    snprintf(cmd, sizeof cmd, "cd %s && %s synth mid.h5 --n 1024 --layers 4 --features 4096,16x16x16 --seed 3",
             tu_dir, MK_TEST_EXE);
    tu_must_run(cmd);
    tu_write_config("mid.yaml", "x:\n  file: mid.h5\n  layers: [\"layer*\"]\nbatch_size: 256\nplot: false\n"
                    "output: midout\n");
    const char *precs[] = {"float32", "float64"};
    for (int i = 0; i < 2; i++) {
        char *out, args[256];
        snprintf(cmd, sizeof cmd, "cd %s && %s check mid.yaml -n 3 --set precision=%s", tu_dir, MK_TEST_EXE, precs[i]);
        tu_assert_exit(tu_run(cmd, &out), 0);
        tu_assert_has(out, "mid.yaml is valid");
        tu_assert_has(out, "4 batch(es) per epoch");
        tu_assert_has(out, "on 3 rank(s): at most 2 batch(es) per rank");
        tu_assert_has(out, "(1024, 16, 16, 16)");
        double estimate = tu_number_after(out, "memory per rank: about ");
        free(out);
        snprintf(args, sizeof args, "--quiet --force --set precision=%s", precs[i]); /* one folder, two configs */
        tu_assert_exit(tu_run_config(2, "mid.yaml", args, &out), 0);
        double peak = tu_number_after(out, "peak memory per rank ");
        ck_assert(estimate > MK_TEST_LIBRARY_MIB && peak > 0.0);
#ifndef MK_TEST_SANITIZED /* the sanitizers' shadow memory and quarantine inflate the peak */
        ck_assert_msg(fabs(estimate - peak) <= 0.25 * peak, "%s: estimate %.1f MiB, peak %.1f MiB", precs[i],
                      estimate, peak);
#endif
        free(out);
    }
}
END_TEST

START_TEST(check_reports_every_problem)
{
    char *blocker = in_dir("blocker");
    tu_write_text(blocker, "a file where a folder should be\n");
    free(blocker);
    tu_write_config("many.yaml", "x:\n  file: x.h5\n  layers: [fc, \"zzz*\", missing]\n"
                    "y:\n  file: nope.h5\n  layers: [a]\noutput: blocker/out\n");
    char cmd[1024], *out;
    snprintf(cmd, sizeof cmd, "cd %s && %s check many.yaml", tu_dir, MK_TEST_EXE);
    tu_assert_exit(tu_run(cmd, &out), 3);
    tu_assert_count(out, "layer pattern 'zzz*' matches no dataset", 1);
    tu_assert_count(out, "no dataset 'missing'", 1);
    char where[4200]; /* a relative input names the folder it was looked for in (tu_dir, maybe behind a link) */
    snprintf(where, sizeof where, "cannot open input 'nope.h5' (relative to the working folder '");
    tu_assert_count(out, where, 1);
    snprintf(where, sizeof where, "%s'): No such file or directory", strrchr(tu_dir, '/'));
    tu_assert_count(out, where, 1);
    tu_assert_count(out, "output 'blocker/out'", 1);
    tu_assert_count(out, "4 problem(s)", 2);
    free(out);
    /* an input next to a config in another folder: relative paths are from the working folder, and it says so */
    snprintf(cmd, sizeof cmd, "cd %s && mkdir -p sub && cp x.h5 sub/inner.h5", tu_dir);
    tu_assert_exit(tu_run(cmd, &out), 0);
    free(out);
    tu_write_config("sub/rel.yaml", "x:\n  file: inner.h5\n  layers: [fc]\nbatch_size: 8\noutput: o\n");
    snprintf(cmd, sizeof cmd, "cd %s && %s check sub/rel.yaml", tu_dir, MK_TEST_EXE);
    tu_assert_exit(tu_run(cmd, &out), 3);
    tu_assert_count(out, "input 'inner.h5' is read from the working folder '", 1);
    tu_assert_count(out, "but 'sub/inner.h5' exists next to the config: relative paths are from the working folder, "
                         "not the config's; write that path in the config, or run from 'sub'", 1);
    free(out);
    snprintf(cmd, sizeof cmd, "cd %s/sub && %s check rel.yaml", tu_dir, MK_TEST_EXE);
    tu_assert_exit(tu_run(cmd, &out), 0);
    tu_assert_count(out, "next to the config", 0);
    free(out);
    tu_write_config("typo.yaml", "x:\n  file: x.h5\n  layers: [fc]\nbatchsize: 8\noutput: o\n");
    snprintf(cmd, sizeof cmd, "cd %s && %s check typo.yaml", tu_dir, MK_TEST_EXE);
    tu_assert_exit(tu_run(cmd, &out), 2);
    tu_assert_count(out, "typo.yaml:4: unknown key 'batchsize' (did you mean 'batch_size'?)", 1);
    free(out);
}
END_TEST

/* ---- bad input: a clear message naming the culprit, printed once, a
 * non-zero exit, and no output folder ---- */

static void expect_failure(const char *config_text, const char *extra, int status, const char *message)
{
    tu_write_config("bad.yaml", config_text);
    char *out;
    int got = tu_run_config(2, "bad.yaml", extra, &out);
    ck_assert_msg(got == status, "exit %d, expected %d: %s", got, status, out);
    ck_assert_msg(tu_count(out, message) == 1, "'%s' not printed once in: %s", message, out);
    int notes = tu_count(out, "mpicka: warning") + tu_count(out, "mpicka: progress");
    ck_assert_msg(tu_count(out, "mpicka: ") - notes == 1, "not one message: %s", out);
    char *outdir = in_dir("badout");
    ck_assert_msg(!tu_exists(outdir), "output folder left behind: %s", out);
    free(outdir);
    free(out);
}

static void write_special_inputs(void)
{
    char *file = in_dir("special.h5");
    hsize_t d50[2] = {50, 4}, d49[2] = {49, 4}, d3[2] = {3, 4};
    double data[200];
    for (int k = 0; k < 200; k++) data[k] = (double)((k * 13) % 17);
    tu_write_dataset(file, "fifty", H5T_IEEE_F32LE, 2, d50, data);
    tu_write_dataset(file, "fortynine", H5T_IEEE_F32LE, 2, d49, data);
    tu_write_dataset(file, "three", H5T_IEEE_F32LE, 2, d3, data);
    data[37 * 4 + 2] = NAN;
    tu_write_dataset(file, "with_nan", H5T_IEEE_F64LE, 2, d50, data);
    hid_t fid = H5Fopen(file, H5F_ACC_RDWR, H5P_DEFAULT), str = H5Tcopy(H5T_C_S1);
    H5Tset_size(str, 8);
    hid_t space = H5Screate_simple(1, d50, NULL);
    H5Dclose(H5Dcreate2(fid, "labels", str, space, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT));
    H5Sclose(space), H5Tclose(str), H5Fclose(fid);
    free(file);
}

#define HEAD(file, layers) "x:\n  file: " file "\n  layers: " layers "\n"

START_TEST(bad_inputs)
{
    write_special_inputs();
    const char *out = "output: badout\n";
    char text[1024];
#define BAD(body, extra, status, msg)                                                      \
    do {                                                                                   \
        snprintf(text, sizeof text, "%s%s", body, out);                                    \
        expect_failure(text, extra, status, msg);                                          \
    } while (0)
    BAD(HEAD("nope.h5", "[a]"), NULL, 3, "cannot open input 'nope.h5'");
    BAD(HEAD("x.h5", "[\"zzz*\"]"), NULL, 3, "x.h5: layer pattern 'zzz*' matches no dataset");
    BAD(HEAD("x.h5", "[fc, missing]"), NULL, 3, "x.h5: no dataset 'missing'");
    BAD(HEAD("special.h5", "[labels]"), NULL, 3, "special.h5: dataset 'labels' is not numeric");
    BAD(HEAD("special.h5", "[fifty, fortynine]"), NULL, 3, "'fortynine' has 49 examples but 'fifty' has 50");
    BAD(HEAD("special.h5", "[fifty]") "y:\n  file: x.h5\n  layers: [fc]\n", NULL, 3, "x and y differ in examples");
    BAD(HEAD("special.h5", "[three]"), NULL, 3, "'three' has 3 examples; at least 4 are needed");
    BAD(HEAD("x.h5", "[fc]") "batch_size: 2\n", NULL, 2, "bad.yaml:4: 'batch_size' must be at least 4");
    BAD(HEAD("x.h5", "[fc]") "batchsize: 8\n", NULL, 2, "bad.yaml:4: unknown key 'batchsize' (did you mean 'batch_size'?)");
    BAD(HEAD("x.h5", "[fc]") "epochs: two\n", NULL, 2, "bad.yaml:4: 'epochs' must be an integer");
    BAD(HEAD("x.h5", "[fc]") "shuffle: [oops\n", NULL, 2, "bad.yaml:5:7: malformed YAML");
    BAD(HEAD("x.h5", "[fc]"), "--set batch_size=abc", 2, "'batch_size' must be an integer");
    BAD(HEAD("x.h5", "[fc]"), "--set x.fil=a.h5", 2, "did you mean 'x.file'");
    BAD(HEAD("special.h5", "[fifty, with_nan]") "batch_size: 16\n", NULL, 3,
        "special.h5: dataset 'with_nan' holds NaN or Inf at example 37");
#undef BAD
}
END_TEST

/* Damaged files, an output that would overwrite an input, a layer too wide
 * for memory: clear errors naming the culprit, never a crash. */
START_TEST(hostile_inputs)
{
    char cmd[1024];
    snprintf(cmd, sizeof cmd, "cd %s && head -c 20000 x.h5 > truncated.h5 && cp x.h5 corrupt.h5 && "
             "dd if=/dev/urandom of=corrupt.h5 bs=1 seek=30000 count=20000 conv=notrunc status=none && "
             "mkdir -p asout && cp y.h5 asout/cka.h5", tu_dir);
    tu_must_run(cmd);
    const char *out = "output: badout\n";
    char text[1024];
    snprintf(text, sizeof text, HEAD("truncated.h5", "[fc]") "%s", out);
    expect_failure(text, NULL, 3, "truncated.h5");
    snprintf(text, sizeof text, HEAD("corrupt.h5", "[\"block*/*\", fc]") "batch_size: 32\n%s", out);
    tu_write_config("bad.yaml", text);
    char *o;
    int status = tu_run_config(2, "bad.yaml", NULL, &o);
    ck_assert_msg(status == 3 || status == 4, "corrupt file: exit %d: %s", status, o);
    ck_assert_msg(strstr(o, "corrupt.h5") != NULL, "the file is not named: %s", o);
    free(o);
    expect_failure(HEAD("asout/cka.h5", "[layer1]") "batch_size: 32\noutput: asout\n", NULL, 2,
                   "output 'asout' would overwrite the input 'asout/cka.h5'");
    char *wide = in_dir("wide.h5");
    /* a tiny file that claims a layer of 2^40 features */
    hid_t fid = H5Fcreate(wide, H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
    hsize_t big[3] = {8, 1 << 20, 1 << 20};
    hid_t space = H5Screate_simple(3, big, NULL), dcpl = H5Pcreate(H5P_DATASET_CREATE);
    hsize_t chunk[3] = {1, 1024, 1024};
    H5Pset_chunk(dcpl, 3, chunk);
    H5Dclose(H5Dcreate2(fid, "huge", H5T_IEEE_F32LE, space, H5P_DEFAULT, dcpl, H5P_DEFAULT));
    H5Pclose(dcpl), H5Sclose(space), H5Fclose(fid);
    free(wide);
    expect_failure(HEAD("wide.h5", "[huge]") "batch_size: 8\noutput: badout\n", NULL, 3,
                   "wide.h5: dataset 'huge' has shape (8, 1048576, 1048576): more than 2147483647 features");
}
END_TEST

START_TEST(bad_command_lines)
{
    char *o;
    tu_assert_exit(tu_mpicka(2, tu_dir, "run", &o), 2);
    tu_assert_count(o, "missing CONFIG", 1);
    free(o);
    tu_assert_exit(tu_mpicka(2, tu_dir, "run no-such.yaml", &o), 4);
    tu_assert_count(o, "no-such.yaml", 1);
    free(o);
    tu_assert_exit(tu_mpicka(1, tu_dir, "run a.yaml --frobnicate", &o), 2);
    tu_assert_count(o, "unknown option '--frobnicate'", 1);
    free(o);
    tu_assert_exit(tu_mpicka(1, tu_dir, "run a.yaml --progress loud", &o), 2);
    tu_assert_count(o, "--progress loud: expected bar, lines or none", 1);
    free(o);
    tu_assert_exit(tu_mpicka(1, tu_dir, "run --help", &o), 0);
    tu_assert_has(o, "batch_size");
    free(o);
}
END_TEST

static void shared_inputs(TCase *tc)
{
    tcase_add_unchecked_fixture(tc, make_inputs, tu_dir_teardown);
}

TU_MAIN("e2e", 0,
        TU_CASE("mpirun", NULL, NULL, 600, shared_inputs, x_vs_y_float64_across_ranks, self_float32_shuffled_two_epochs,
                output_reproduces_and_describes_the_run, dead_layer_gives_nan_and_a_warning, progress_in_every_mode,
                check_plans_and_estimates_memory, check_reports_every_problem, bad_inputs, hostile_inputs,
                bad_command_lines))
