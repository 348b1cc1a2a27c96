/* The estimators end to end: real HDF5 files, `mpirun -np 1|2|3 mpicka run`,
 * every matrix of cka.h5 (CKA, jackknife standard errors, permutation
 * p-values) against a naive float64 computation from the n rows, and bitwise
 * across rank counts; the exact estimator against the n-by-n Grams, and its
 * memory at 10^5 and 10^6 examples. */
#include <check.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mpicka/plan.h"
#include "oracle.h"
#include "testutil.h"

#define N 203
#define M 32
#define NB 7 /* 6 batches of 32 and one of 11 */

static oracle_layer xs[3], ys[2];
static const char *x_names[] = {"a", "b", "c"}, *y_names[] = {"layer1", "layer2"};

/* x: 3 layers (float32, float16, float64; one 3-D), offset 1e3; y: 2 layers
 * tied to the same latent state (related to x). */
static void setup(void)
{
    H5Eset_auto2(H5E_DEFAULT, NULL, NULL); /* absent datasets are expected */
    tu_dir_setup();
    char cmd[2048];
    snprintf(cmd, sizeof cmd,
             "cd %s && %s synth x.h5 --n %d --layers 3 --features 6,2x2x2,5 --dtype f32,f16,f64 --offset 1000 "
             "--names a,b,c --seed 1 && %s synth y.h5 --n %d --layers 2 --features 4,7 --seed 1 --noise 2",
             tu_dir, MK_TEST_EXE, N, MK_TEST_EXE, N);
    tu_must_run(cmd);
    char *x = tu_path(tu_dir, "x.h5"), *y = tu_path(tu_dir, "y.h5");
    for (int l = 0; l < 3; l++) ck_assert_int_eq(oracle_read_layer(x, x_names[l], &xs[l]), N);
    for (int l = 0; l < 2; l++) ck_assert_int_eq(oracle_read_layer(y, y_names[l], &ys[l]), N);
    free(x);
    free(y);
}

static void teardown(void)
{
    for (int l = 0; l < 3; l++) free(xs[l].data);
    for (int l = 0; l < 2; l++) free(ys[l].data);
    tu_dir_teardown();
}

static const char *base_config = "x:\n  file: x.h5\n  layers: [a, b, c]\n"
                                 "y:\n  file: y.h5\n  layers: [\"layer*\"]\n"
                                 "batch_size: 32\nprecision: float64\nplot: false\noutput: unused\n";

static void write_in_dir(const char *name, const char *text)
{
    char *path = tu_path(tu_dir, name);
    tu_write_text(path, text);
    free(path);
}

typedef struct {
    double cka[9], hxy[9], stderr_[9], pvalue[9];
    int64_t cells, has_stderr, has_pvalue;
} result;

/* Run with np ranks into dir/out; read cka.h5 back. */
static void run(int np, const char *config, const char *sets, const char *out, result *r, char **text)
{
    char args[2048], *output;
    /* --force: the tests reuse output folders across configurations */
    snprintf(args, sizeof args, "run %s --force --set output=%s %s", config, out, sets);
    int status = tu_mpicka(np, tu_dir, args, &output);
    ck_assert_msg(status == 0, "np=%d %s: %s", np, sets, output);
    if (text) *text = output;
    else free(output);
    char *outdir = tu_path(tu_dir, out), *h5 = tu_path(outdir, "cka.h5");
    memset(r, 0, sizeof *r);
    r->cells = tu_read_doubles(h5, "cka", r->cka, 9);
    ck_assert_int_eq(tu_read_doubles(h5, "hsic_xy", r->hxy, 9), r->cells);
    r->has_stderr = tu_read_doubles(h5, "cka_stderr", r->stderr_, 9) == r->cells;
    r->has_pvalue = tu_read_doubles(h5, "cka_pvalue", r->pvalue, 9) == r->cells;
    free(h5);
    free(outdir);
}

static void assert_same_bits(const result *a, const result *b)
{
    ck_assert_int_eq(a->cells, b->cells);
    ck_assert(!memcmp(a->cka, b->cka, sizeof a->cka));
    ck_assert(!memcmp(a->hxy, b->hxy, sizeof a->hxy));
    ck_assert(!memcmp(a->stderr_, b->stderr_, sizeof a->stderr_));
    ck_assert(!memcmp(a->pvalue, b->pvalue, sizeof a->pvalue));
}

/* ---- the naive computation ---- */

typedef struct {
    int rbf, hsic0;
    double threshold;
} kind;

static double (*hsic_of(kind k))(const double *, const double *, int64_t)
{
    return k.hsic0 ? oracle_hsic0_gram : oracle_hsic1_gram;
}

/* The kernel of `rows` of a layer (centred first: both kernels' HSICs are
 * translation invariant, and centred offset data cancel nothing). */
static double *batch_kernel(const oracle_layer *l, const int64_t *rows, int64_t m, kind k)
{
    double *x = malloc((size_t)(m * l->p) * sizeof *x), *c = malloc((size_t)(m * l->p) * sizeof *c);
    double *g = malloc((size_t)(m * m) * sizeof *g);
    for (int64_t i = 0; i < m; i++) memcpy(x + i * l->p, l->data + rows[i] * l->p, (size_t)l->p * sizeof *x);
    oracle_centre(x, m, l->p, c);
    if (k.rbf) oracle_rbf_gram(c, l->p, m, k.threshold, g);
    else oracle_linear_gram(c, l->p, m, g);
    free(x);
    free(c);
    return g;
}

/* Per batch: h[b] = hxy (nx*ny) | hxx | hyy; perm[b][r] = hxy with y's
 * rows permuted by the plan's test permutation r of batch b. */
static void naive_batches(const oracle_layer *x, int nx, const oracle_layer *y, int ny, kind k, int64_t R,
                          double h[NB][16], double (*perm)[NB][9])
{
    mk_plan plan;
    ck_assert_int_eq(mk_plan_init(&plan, N, M, 1, 0, 0), MK_OK);
    for (int b = 0; b < NB; b++) {
        int64_t m = b < NB - 1 ? M : N - (NB - 1) * M, rows[M], pr[M], prow[M];
        for (int64_t i = 0; i < m; i++) rows[i] = b * M + i;
        double *kx[3], *ky[3];
        for (int i = 0; i < nx; i++) kx[i] = batch_kernel(&x[i], rows, m, k);
        for (int j = 0; j < ny; j++) ky[j] = batch_kernel(&y[j], rows, m, k);
        for (int i = 0; i < nx; i++) {
            h[b][nx * ny + i] = hsic_of(k)(kx[i], kx[i], m);
            for (int j = 0; j < ny; j++) h[b][i * ny + j] = hsic_of(k)(kx[i], ky[j], m);
        }
        for (int j = 0; j < ny; j++) h[b][nx * ny + nx + j] = hsic_of(k)(ky[j], ky[j], m);
        for (int64_t r = 0; r < R; r++) {
            mk_plan_test_perm(&plan, b, r, m, pr);
            for (int64_t i = 0; i < m; i++) prow[i] = rows[pr[i]];
            for (int j = 0; j < ny; j++) {
                double *kp = batch_kernel(&y[j], prow, m, k);
                for (int i = 0; i < nx; i++) perm[r][b][i * ny + j] = hsic_of(k)(kx[i], kp, m);
                free(kp);
            }
        }
        for (int i = 0; i < nx; i++) free(kx[i]);
        for (int j = 0; j < ny; j++) free(ky[j]);
    }
}

static double cka_of(const double *s, int nx, int ny, int i, int j)
{
    return s[i * ny + j] / sqrt(s[nx * ny + i] * s[nx * ny + nx + j]);
}

/* CKA, the delete-a-group jackknife (groups: batch b in floor(b G / NB))
 * and p-values (1 + #{r : permuted sum >= observed}) / (R + 1). */
static void naive_matrices(int nx, int ny, double h[NB][16], double (*perm)[NB][9], int64_t R, int G, double *cka,
                           double *se, double *pv)
{
    int len = nx * ny + nx + ny;
    double total[16] = {0};
    for (int b = 0; b < NB; b++)
        for (int k = 0; k < len; k++) total[k] += h[b][k];
    for (int i = 0; i < nx; i++)
        for (int j = 0; j < ny; j++) {
            int c = i * ny + j;
            cka[c] = cka_of(total, nx, ny, i, j);
            double theta[NB], mean = 0.0, ss = 0.0;
            for (int g = 0; g < G; g++) {
                double rest[16] = {0};
                for (int b = 0; b < NB; b++)
                    for (int k = 0; k < len && b * G / NB != g; k++) rest[k] += h[b][k];
                theta[g] = cka_of(rest, nx, ny, i, j);
                mean += theta[g] / G;
            }
            for (int g = 0; g < G; g++) ss += (theta[g] - mean) * (theta[g] - mean);
            se[c] = sqrt((G - 1.0) / G * ss);
            int64_t above = 0;
            for (int64_t r = 0; r < R; r++) {
                double s = 0.0;
                for (int b = 0; b < NB; b++) s += perm[r][b][c];
                above += s >= total[c];
            }
            pv[c] = (double)(1 + above) / (double)(R + 1);
        }
}

static void assert_close(const double *got, const double *want, int n, double tol, const char *what)
{
    for (int k = 0; k < n; k++)
        ck_assert_msg(fabs(got[k] - want[k]) <= tol, "%s[%d]: %.17g, naive %.17g", what, k, got[k], want[k]);
}

/* Every option at once: RBF kernel, HSIC_0, jackknife, permutations; the
 * same bits on 1 and 3 ranks; each matrix as the naive computation says. */
START_TEST(rbf_hsic0_errors_and_pvalues)
{
    write_in_dir("c.yaml", base_config);
    const char *sets = "--set estimator=hsic0 --set kernel=rbf --set rbf_threshold=0.7 --set jackknife=4 "
                       "--set permutations=19";
    result r1, r3;
    run(1, "c.yaml", sets, "o1", &r1, NULL);
    run(3, "c.yaml", sets, "o3", &r3, NULL);
    assert_same_bits(&r1, &r3);
    ck_assert(r1.has_stderr && r1.has_pvalue);
    static double h[NB][16], perm[19][NB][9];
    double cka[6], se[6], pv[6];
    naive_batches(xs, 3, ys, 2, (kind){1, 1, 0.7}, 19, h, perm);
    naive_matrices(3, 2, h, perm, 19, 4, cka, se, pv);
    assert_close(r1.cka, cka, 6, 1e-9, "cka");
    assert_close(r1.stderr_, se, 6, 1e-9, "cka_stderr");
    assert_close(r1.pvalue, pv, 6, 0.0, "cka_pvalue");
    char *h5 = tu_path(tu_dir, "o1/cka.h5"), *est = tu_read_str_attr(h5, "estimator");
    ck_assert_ptr_nonnull(strstr(est, "biased HSIC_0, RBF kernel (bandwidth 0.7 x median distance); "
                                      "jackknife over 4 groups; 19 permutations"));
    free(est);
    free(h5);
}
END_TEST

/* The other minibatch combinations on 2 ranks, and a self comparison with
 * permutations (y is a permuted copy of x). */
START_TEST(other_minibatch_estimators)
{
    write_in_dir("c.yaml", base_config);
    const struct {
        const char *sets;
        kind k;
    } cases[] = {{"--set kernel=rbf", {1, 0, 1.0}}, {"--set estimator=hsic0", {0, 1, 1.0}}};
    static double h[NB][16], perm[19][NB][9];
    double cka[9], se[9], pv[9];
    for (int c = 0; c < 2; c++) {
        result r;
        run(2, "c.yaml", cases[c].sets, "o", &r, NULL);
        naive_batches(xs, 3, ys, 2, cases[c].k, 0, h, perm);
        naive_matrices(3, 2, h, perm, 0, 7, cka, se, pv);
        assert_close(r.cka, cka, 6, 1e-9, cases[c].sets);
        assert_close(r.stderr_, se, 6, 1e-9, "cka_stderr, one group per batch");
        ck_assert(!r.has_pvalue);
    }
    write_in_dir("s.yaml", "x:\n  file: x.h5\n  layers: [a, b, c]\n"
                        "batch_size: 32\nplot: false\noutput: unused\n");
    result r;
    run(2, "s.yaml", "--set permutations=9 --set jackknife=0", "s", &r, NULL);
    ck_assert(!r.has_stderr && r.has_pvalue);
    naive_batches(xs, 3, xs, 3, (kind){0, 0, 1.0}, 9, h, perm);
    naive_matrices(3, 3, h, perm, 9, 2, cka, se, pv);
    assert_close(r.cka, cka, 9, 1e-9, "self cka");
    assert_close(r.pvalue, pv, 9, 0.0, "self cka_pvalue");
}
END_TEST

/* Exact CKA, both forms: 1 and 3 ranks bitwise, and the n-by-n Grams. */
START_TEST(exact_against_full_grams)
{
    write_in_dir("c.yaml", base_config);
    for (int debiased = 0; debiased < 2; debiased++) {
        char sets[128];
        snprintf(sets, sizeof sets, "--set estimator=exact --set debiased=%s --set batch_size=50",
                 debiased ? "true" : "false");
        result r1, r3;
        run(1, "c.yaml", sets, "e1", &r1, NULL);
        run(3, "c.yaml", sets, "e3", &r3, NULL);
        assert_same_bits(&r1, &r3);
        ck_assert(!r1.has_stderr && !r1.has_pvalue);
        double want[6];
        oracle_full_cka(xs, 3, ys, 2, N, debiased, want);
        assert_close(r1.cka, want, 6, 1e-9, debiased ? "debiased exact" : "biased exact");
    }
}
END_TEST

/* Exact mode's memory depends on the features, not on n: the peak at 10^6
 * examples is that at 10^5. */
START_TEST(exact_memory_does_not_grow_with_n)
{
    double peak[2];
    for (int k = 0; k < 2; k++) {
        long n = k ? 1000000 : 100000;
        char cmd[1024], *out;
        snprintf(cmd, sizeof cmd, "cd %s && %s synth big%d.h5 --n %ld --layers 3 --features 16 --seed 4", tu_dir,
                 MK_TEST_EXE, k, n);
        tu_must_run(cmd);
        snprintf(cmd, sizeof cmd, "x:\n  file: big%d.h5\n  layers: [\"layer*\"]\nestimator: exact\n"
                                  "batch_size: 2000\nprecision: float32\nplot: false\noutput: big%d\n", k, k);
        char *path = tu_path(tu_dir, "big.yaml");
        tu_write_text(path, cmd);
        free(path);
        int status = tu_mpicka(2, tu_dir, "run big.yaml", &out);
        ck_assert_msg(status == 0, "%s", out);
        tu_assert_has(out, k ? "n=1000000" : "n=100000");
        peak[k] = tu_number_after(out, "peak memory per rank ");
        printf("exact, 3 x 16 features: peak memory per rank %.1f MiB at n = %ld\n", peak[k], n);
        free(out);
    }
    ck_assert_msg(peak[1] < peak[0] * 1.05 + 1.0, "peak %.1f MiB at 10^6 vs %.1f MiB at 10^5", peak[1], peak[0]);
}
END_TEST

/* Exact CKA of 200,000 features would hold 40 billion cross-products: run
 * and check refuse it up front, name the inputs and point to the
 * minibatch estimator, and leave no output behind. */
START_TEST(exact_refuses_too_many_features)
{
    char cmd[1024], *out;
    snprintf(cmd, sizeof cmd, "cd %s && %s synth wide.h5 --n 8 --layers 1 --features 200000 --seed 4", tu_dir,
             MK_TEST_EXE);
    tu_must_run(cmd);
    char *path = tu_path(tu_dir, "wide.yaml");
    tu_write_text(path, "x:\n  file: wide.h5\n  layers: [layer1]\nestimator: exact\noutput: wide_out\n");
    free(path);
    const char *commands[] = {"run wide.yaml", "check wide.yaml"};
    for (int k = 0; k < 2; k++) {
        int status = tu_mpicka(k ? 1 : 2, tu_dir, commands[k], &out);
        ck_assert_msg(status != 0, "'%s' succeeded: %s", commands[k], out);
        ck_assert_msg(strstr(out, "estimator exact") && strstr(out, "200000 features") && strstr(out, "wide.h5") &&
                          strstr(out, "use a minibatch estimator"), "%s", out);
        free(out);
    }
    path = tu_path(tu_dir, "wide_out");
    ck_assert(!tu_exists(path));
    free(path);
}
END_TEST

TU_MAIN("estimators_e2e", 0,
        TU_CASE("runs", setup, teardown, 600, NULL, rbf_hsic0_errors_and_pvalues, other_minibatch_estimators,
                exact_against_full_grams, exact_memory_does_not_grow_with_n, exact_refuses_too_many_features))
