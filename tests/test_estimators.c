/* The estimators' maths against naive implementations written from the
 * formulas (oracle.c): RBF and linear kernels, HSIC_1 and HSIC_0, permuted
 * kernels, the exact whole-data CKA, the jackknife; then their statistics:
 * jackknife standard errors against the spread over independent data sets,
 * and permutation p-values (uniform under independence, small when related). */
#include <check.h>
#include <float.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mpicka/exact.h"
#include "mpicka/hsic.h"
#include "mpicka/plan.h"
#include "oracle.h"
#include "testutil.h"

/* y_f = w * x_{f mod px} + noise, + offset. */
static double *make_data(int64_t m, int64_t p, const double *x, int64_t px, double w, double offset, uint64_t *st)
{
    double *y = malloc((size_t)(m * p) * sizeof *y);
    for (int64_t i = 0; i < m; i++)
        for (int64_t f = 0; f < p; f++)
            y[i * p + f] = offset + (x ? w * x[i * px + f % px] : 0.0) + tu_normal(st);
    return y;
}

static void assert_rel(double got, double want, double tol, const char *what)
{
    double err = fabs(got - want) / fmax(fabs(want), 1e-300);
    ck_assert_msg(err <= tol, "%s: got %.17g, want %.17g (relative error %.3g > %.3g)", what, got, want, err, tol);
}

/* HSIC of (a, b) through the code under test: both rows, then mk_pairs. */
static void code_pair(const mk_hsic_opts *o, mk_precision prec, const double *a, int64_t pa, const double *b,
                      int64_t pb, int64_t m, double h[3])
{
    int64_t len = mk_row_len(o->est, m), pmax = pa > pb ? pa : pb;
    mk_hsic_ws ws;
    ck_assert_int_eq(mk_hsic_ws_init(&ws, m, pmax, prec, o), MK_OK);
    double *v = malloc((size_t)(2 * len) * sizeof *v);
    ck_assert_int_eq(mk_layer_row(&ws, a, 0, m, pa, v), -1);
    ck_assert_int_eq(mk_layer_row(&ws, b, 0, m, pb, v + len), -1);
    mk_pairs(NULL, o->est, v, 1, v + len, 1, m, &h[0], &h[1], &h[2]);
    free(v);
    mk_hsic_ws_free(&ws);
}

static void oracle_pair(const mk_hsic_opts *o, const double *a, int64_t pa, const double *b, int64_t pb, int64_t m,
                        double h[3])
{
    double *k = malloc((size_t)(m * m) * sizeof *k), *l = malloc((size_t)(m * m) * sizeof *l);
    if (o->kernel == MK_KERNEL_RBF) {
        oracle_rbf_gram(a, pa, m, o->threshold, k);
        oracle_rbf_gram(b, pb, m, o->threshold, l);
    } else { /* both HSICs are translation invariant: centre, so that offset data cancel nothing */
        double *ca = malloc((size_t)(m * pa) * sizeof *ca), *cb = malloc((size_t)(m * pb) * sizeof *cb);
        oracle_centre(a, m, pa, ca);
        oracle_centre(b, m, pb, cb);
        oracle_linear_gram(ca, pa, m, k);
        oracle_linear_gram(cb, pb, m, l);
        free(ca);
        free(cb);
    }
    double (*hsic)(const double *, const double *, int64_t) = o->est == MK_EST_HSIC0 ? oracle_hsic0_gram
                                                                                     : oracle_hsic1_gram;
    h[0] = hsic(k, l, m);
    h[1] = hsic(k, k, m);
    h[2] = hsic(l, l, m);
    free(k);
    free(l);
}

/* Every kernel and estimator, odd and even m (the median of an even count
 * is a mean of two), offset data: float64 to 1e-9, float32 to 1e-5. */
START_TEST(kernels_and_estimators_match_formulas)
{
    const mk_hsic_opts opts[] = {{MK_EST_HSIC1, MK_KERNEL_LINEAR, 1.0}, {MK_EST_HSIC0, MK_KERNEL_LINEAR, 1.0},
                                 {MK_EST_HSIC1, MK_KERNEL_RBF, 1.0},    {MK_EST_HSIC0, MK_KERNEL_RBF, 0.5},
                                 {MK_EST_HSIC1, MK_KERNEL_RBF, 2.0}};
    const int64_t ms[] = {4, 5, 17, 32};
    uint64_t st = 11;
    for (size_t mi = 0; mi < sizeof ms / sizeof ms[0]; mi++) {
        int64_t m = ms[mi];
        double *a = make_data(m, 6, NULL, 1, 0.0, 100.0, &st), *b = make_data(m, 3, a, 6, 0.8, -50.0, &st);
        for (size_t k = 0; k < sizeof opts / sizeof opts[0]; k++) {
            double got[3], got32[3], want[3];
            char what[128];
            code_pair(&opts[k], MK_PREC_FLOAT64, a, 6, b, 3, m, got);
            code_pair(&opts[k], MK_PREC_FLOAT32, a, 6, b, 3, m, got32);
            oracle_pair(&opts[k], a, 6, b, 3, m, want);
            for (int i = 0; i < 3; i++) {
                snprintf(what, sizeof what, "m=%lld est=%d kernel=%d value %d", (long long)m, opts[k].est,
                         opts[k].kernel, i);
                assert_rel(got[i], want[i], 1e-9, what);
            }
            double cka = got[0] / sqrt(got[1] * got[2]), want_cka = want[0] / sqrt(want[1] * want[2]);
            ck_assert_msg(fabs(got32[0] / sqrt(got32[1] * got32[2]) - want_cka) < 1e-5, "float32 CKA, m=%lld",
                          (long long)m);
            ck_assert(fabs(cka - want_cka) < 1e-9);
        }
        free(a);
        free(b);
    }
}
END_TEST

/* The median of all m*m squared distances, zero diagonal and ties included. */
START_TEST(median_matches_numpy_rule)
{
    uint64_t st = 5;
    for (int64_t m = 2; m <= 12; m++) {
        double *x = make_data(m, 2, NULL, 1, 0.0, 0.0, &st);
        if (m > 3) memcpy(x + 2, x, 2 * sizeof *x); /* a repeated point: one more zero */
        double *d = malloc((size_t)mk_tri_len(m) * sizeof *d);
        for (int64_t i = 0, k = 0; i < m; i++)
            for (int64_t j = i + 1; j < m; j++, k++)
                d[k] = pow(x[i * 2] - x[j * 2], 2) + pow(x[i * 2 + 1] - x[j * 2 + 1], 2);
        assert_rel(mk_median_sq_dist(d, m), oracle_rbf_median(x, 2, m), 1e-12, "median");
        free(d);
        free(x);
    }
}
END_TEST

/* A permuted centred kernel is the centred kernel of permuted examples. */
START_TEST(permuted_rows_are_kernels_of_permuted_examples)
{
    const mk_hsic_opts opts[] = {{MK_EST_HSIC1, MK_KERNEL_LINEAR, 1.0}, {MK_EST_HSIC0, MK_KERNEL_RBF, 1.0}};
    int64_t m = 13, p = 4;
    uint64_t st = 3;
    mk_plan plan;
    ck_assert_int_eq(mk_plan_init(&plan, 100, m, 1, 0, 42), MK_OK);
    double *a = make_data(m, p, NULL, 1, 0.0, 0.0, &st), *b = make_data(m, p, a, p, 1.0, 0.0, &st);
    double *bp = malloc((size_t)(m * p) * sizeof *bp);
    int64_t perm[13];
    for (size_t k = 0; k < 2; k++) {
        int64_t len = mk_row_len(opts[k].est, m);
        mk_hsic_ws ws;
        ck_assert_int_eq(mk_hsic_ws_init(&ws, m, p, MK_PREC_FLOAT64, &opts[k]), MK_OK);
        double *va = malloc((size_t)len * sizeof *va), *vb = malloc((size_t)len * sizeof *vb);
        double *vp = malloc((size_t)len * sizeof *vp), h, want[3];
        ck_assert_int_eq(mk_layer_row(&ws, a, 0, m, p, va), -1);
        ck_assert_int_eq(mk_layer_row(&ws, b, 0, m, p, vb), -1);
        for (int64_t r = 0; r < 5; r++) {
            mk_plan_test_perm(&plan, 3, r, m, perm);
            mk_permute_row(opts[k].est, vb, m, perm, vp);
            mk_pairs(NULL, opts[k].est, va, 1, vp, 1, m, &h, NULL, NULL);
            for (int64_t i = 0; i < m; i++) memcpy(bp + i * p, b + perm[i] * p, (size_t)p * sizeof *bp);
            oracle_pair(&opts[k], a, p, bp, p, m, want);
            assert_rel(h, want[0], 1e-9, "permuted HSIC");
        }
        free(va);
        free(vb);
        free(vp);
        mk_hsic_ws_free(&ws);
    }
    free(a);
    free(b);
    free(bp);
}
END_TEST

/* Seeded by (seed, batch, r) only; a permutation; different across r. */
START_TEST(test_permutations_are_seeded_permutations)
{
    mk_plan plan;
    ck_assert_int_eq(mk_plan_init(&plan, 1000, 50, 1, 0, 9), MK_OK);
    int64_t a[50], b[50], seen[50];
    mk_plan_test_perm(&plan, 7, 3, 50, a);
    mk_plan_test_perm(&plan, 7, 3, 50, b);
    ck_assert(!memcmp(a, b, sizeof a));
    memset(seen, 0, sizeof seen);
    for (int i = 0; i < 50; i++) seen[a[i]]++;
    for (int i = 0; i < 50; i++) ck_assert_int_eq(seen[i], 1);
    mk_plan_test_perm(&plan, 7, 4, 50, b);
    ck_assert(memcmp(a, b, sizeof a));
    mk_plan_test_perm(&plan, 8, 3, 50, b);
    ck_assert(memcmp(a, b, sizeof a));
}
END_TEST

/* Exact CKA streamed in uneven batches (a tail of 2 rows) of offset data,
 * in both precisions, against the n-by-n Grams. */
START_TEST(exact_matches_full_grams)
{
    int64_t n = 203, p[3] = {5, 7, 3}, m = 40;
    uint64_t st = 21;
    oracle_layer lay[3];
    lay[0].data = make_data(n, 5, NULL, 1, 0.0, 1000.0, &st);
    lay[1].data = make_data(n, 7, lay[0].data, 5, 0.7, -300.0, &st);
    lay[2].data = make_data(n, 3, lay[1].data, 7, 0.3, 20.0, &st);
    for (int l = 0; l < 3; l++) lay[l].p = p[l];
    for (int prec = 0; prec < 2; prec++) {
        mk_exact e;
        ck_assert_int_eq(mk_exact_init(&e, 3, p, 0, m, (mk_precision)prec), MK_OK);
        for (int l = 0; l < 3; l++) /* any fixed shift: the first row's values */
            memcpy(e.mu0 + e.off[l], lay[l].data, (size_t)p[l] * sizeof(double));
        int64_t len = mk_exact_len(&e);
        double *sum = calloc((size_t)len, sizeof *sum), *leaf = malloc((size_t)len * sizeof *leaf);
        double *blk = malloc((size_t)(m * 7) * sizeof *blk), mean[7];
        float *blk32 = malloc((size_t)(m * 7) * sizeof *blk32);
        for (int64_t lo = 0; lo < n; lo += m) {
            int64_t rows = lo + m < n ? m : n - lo;
            for (int l = 0; l < 3; l++) {
                oracle_centre(lay[l].data + lo * p[l], rows, p[l], blk);
                for (int64_t f = 0; f < p[l]; f++) mean[f] = lay[l].data[lo * p[l] + f] - blk[f];
                for (int64_t k = 0; k < rows * p[l]; k++) blk32[k] = (float)blk[k];
                mk_exact_put(&e, l, prec ? (void *)blk : (void *)blk32, mean, rows);
            }
            mk_exact_batch(&e, rows, leaf);
            for (int64_t k = 0; k < len; k++) sum[k] += leaf[k];
        }
        for (int debiased = 0; debiased < 2; debiased++) {
            double hxy[9], hxx[3], hyy[3], cka[9], want[9];
            mk_exact_hsic(&e, sum, n, debiased, 3, 3, 0, hxy, hxx, hyy);
            mk_cka_from_sums(3, 3, hxy, hxx, hyy, cka);
            oracle_full_cka(lay, 3, lay, 3, n, debiased, want);
            for (int k = 0; k < 9; k++)
                ck_assert_msg(fabs(cka[k] - want[k]) < (prec ? 1e-9 : 1e-5), "prec %d debiased %d pair %d: %.17g vs %.17g",
                              prec, debiased, k, cka[k], want[k]);
        }
        free(sum);
        free(leaf);
        free(blk);
        free(blk32);
        mk_exact_free(&e);
    }
    for (int l = 0; l < 3; l++) free(lay[l].data);
}
END_TEST

/* The sums of n rows of three layers streamed in batches of m, their shift
 * the first row, in precision prec on the pool par (NULL: this thread). */
static double *exact_sums(mk_exact *e, const oracle_layer *lay, int64_t n, int64_t m, int prec, mk_par *par)
{
    int64_t len = mk_exact_len(e), pmax = 0;
    for (int l = 0; l < 3; l++) pmax = lay[l].p > pmax ? lay[l].p : pmax;
    e->par = par;
    for (int l = 0; l < 3; l++) memcpy(e->mu0 + e->off[l], lay[l].data, (size_t)lay[l].p * sizeof(double));
    double *sum = calloc((size_t)len, sizeof *sum), *leaf = malloc((size_t)len * sizeof *leaf);
    double *blk = malloc((size_t)(m * pmax) * sizeof *blk), *mean = malloc((size_t)pmax * sizeof *mean);
    float *blk32 = malloc((size_t)(m * pmax) * sizeof *blk32);
    for (int64_t k = 0; k < len; k++) leaf[k] = NAN; /* what the code does not write must not stay */
    for (int64_t lo = 0; lo < n; lo += m) {
        int64_t rows = lo + m < n ? m : n - lo;
        for (int l = 0; l < 3; l++) {
            int64_t p = lay[l].p;
            oracle_centre(lay[l].data + lo * p, rows, p, blk);
            for (int64_t f = 0; f < p; f++) mean[f] = lay[l].data[lo * p + f] - blk[f];
            for (int64_t k = 0; k < rows * p; k++) blk32[k] = (float)blk[k];
            mk_exact_put(e, l, prec ? (void *)blk : (void *)blk32, mean, rows);
        }
        mk_exact_batch(e, rows, leaf);
        for (int64_t k = 0; k < len; k++) sum[k] += leaf[k];
    }
    free(leaf), free(blk), free(blk32), free(mean);
    return sum;
}

/* The sums on 1 and on 3 threads: the same bits, all finite, and the CKA of
 * x = lay[0..nx) against y = lay[y0..y0+ny) the n-by-n Gram oracle's. */
static void expect_strips(mk_exact *e, oracle_layer *lay, int64_t n, int64_t m, int prec, mk_par *par, int nx, int ny,
                          int y0)
{
    int64_t len = mk_exact_len(e);
    double *one = exact_sums(e, lay, n, m, prec, NULL), *three = exact_sums(e, lay, n, m, prec, par);
    ck_assert_msg(!memcmp(one, three, (size_t)len * sizeof *one), "y from %d, prec %d: 1 and 3 threads differ", y0,
                  prec);
    for (int64_t k = 0; k < len; k++)
        ck_assert_msg(isfinite(one[k]), "y from %d, prec %d: sum %lld is %g", y0, prec, (long long)k, one[k]);
    for (int debiased = 0; debiased < 2; debiased++) {
        double hxy[9], hxx[3], hyy[3], cka[9], want[9];
        mk_exact_hsic(e, one, n, debiased, nx, ny, y0, hxy, hxx, hyy);
        mk_cka_from_sums(nx, ny, hxy, hxx, hyy, cka);
        oracle_full_cka(lay, nx, lay + y0, ny, n, debiased, want);
        for (int k = 0; k < nx * ny; k++)
            ck_assert_msg(fabs(cka[k] - want[k]) < (prec ? 1e-10 : 1e-5), "y from %d, prec %d debiased %d pair %d: "
                          "%.17g vs %.17g", y0, prec, debiased, k, cka[k], want[k]);
    }
    free(one), free(three);
}

/* Layers wider than a strip of the cross-products (512 features), the
 * first strip ending inside layer 1 and the second short: the CKA of every
 * pair against the n-by-n Grams, and the same bits on 1 and 3 threads; then
 * x (layers 0 and 1) against y (layer 2), where only the x-y pairs and each
 * layer with itself are computed. */
START_TEST(exact_strips_match_full_grams)
{
    int64_t n = 61, m = 25, p[3] = {300, 400, 250}, P = 950;
    uint64_t st = 5;
    oracle_layer lay[3];
    lay[0].data = make_data(n, 300, NULL, 1, 0.0, 50.0, &st);
    lay[1].data = make_data(n, 400, lay[0].data, 300, 0.6, -20.0, &st);
    lay[2].data = make_data(n, 250, lay[1].data, 400, 0.4, 3.0, &st);
    for (int l = 0; l < 3; l++) lay[l].p = p[l];
    mk_par *par;
    ck_assert_int_eq(mk_par_create(3, &par), MK_OK);
    for (int prec = 0; prec < 2; prec++) {
        mk_exact e;
        ck_assert_int_eq(mk_exact_init(&e, 3, p, 0, m, (mk_precision)prec), MK_OK);
        ck_assert_int_eq(e.P, P);
        expect_strips(&e, lay, n, m, prec, par, 3, 3, 0);
        int64_t every = mk_exact_len(&e);
        mk_exact_free(&e);
        ck_assert_int_eq(mk_exact_init(&e, 3, p, 700, m, (mk_precision)prec), MK_OK);
        /* x against y stores the x-y blocks and each layer with itself, not the 300 x 400 x-x block */
        ck_assert_int_eq(every - mk_exact_len(&e), 300 * 400);
        expect_strips(&e, lay, n, m, prec, par, 2, 1, 2);
        mk_exact_free(&e);
    }
    mk_par_free(par);
    for (int l = 0; l < 3; l++) free(lay[l].data);
}
END_TEST

/* Feature-space CKA in long double from the formulas of mpicka/exact.h
 * (centre first; HSIC_1 with the diagonals zeroed, as Kornblith's
 * feature-space code has it): the reference for the exact pass's accuracy. */
static void long_double_cka(double *const *x, const int64_t *p, int L, int64_t n, int debiased, long double *cka)
{
    long double *c[3], *r[3], tr[3], h[3][3], ln = (long double)n;
    for (int l = 0; l < L; l++) {
        c[l] = malloc((size_t)(n * p[l]) * sizeof **c);
        r[l] = calloc((size_t)n, sizeof **r);
        tr[l] = 0.0L;
        for (int64_t f = 0; f < p[l]; f++) {
            long double mean = 0.0L;
            for (int64_t i = 0; i < n; i++) mean += x[l][i * p[l] + f];
            mean /= ln;
            for (int64_t i = 0; i < n; i++) {
                long double v = x[l][i * p[l] + f] - mean;
                c[l][i * p[l] + f] = v;
                r[l][i] += v * v;
                tr[l] += v * v;
            }
        }
    }
    for (int a = 0; a < L; a++)
        for (int b = a; b < L; b++) {
            long double t = 0.0L, q = 0.0L;
            for (int64_t f = 0; f < p[a]; f++)
                for (int64_t g = 0; g < p[b]; g++) {
                    long double cfg = 0.0L;
                    for (int64_t i = 0; i < n; i++) cfg += c[a][i * p[a] + f] * c[b][i * p[b] + g];
                    t += cfg * cfg;
                }
            for (int64_t i = 0; i < n; i++) q += r[a][i] * r[b][i];
            h[a][b] = h[b][a] = debiased ? t - ln / (ln - 2) * q + tr[a] * tr[b] / ((ln - 1) * (ln - 2)) : t;
        }
    for (int a = 0; a < L; a++)
        for (int b = 0; b < L; b++) cka[a * L + b] = h[a][b] / sqrtl(h[a][a] * h[b][b]);
    for (int l = 0; l < L; l++) free(c[l]), free(r[l]);
}

/* Layers of 128, 96 and 64 features driven by 8 shared latent values, plus
 * noise, around 1e4 (a mean 10^4 times the spread). */
static void offset_layers(int64_t n, const int64_t *p, double **x, uint64_t *st)
{
    double z[8];
    for (int l = 0; l < 3; l++) x[l] = malloc((size_t)(n * p[l]) * sizeof **x);
    for (int64_t i = 0; i < n; i++) {
        for (int k = 0; k < 8; k++) z[k] = tu_normal(st);
        for (int l = 0; l < 3; l++)
            for (int64_t f = 0; f < p[l]; f++)
                x[l][i * p[l] + f] = 1e4 * (1.0 + 0.01 * (double)f) + z[(f + l) % 8] * (1.0 + 0.1 * l) +
                                     0.5 * z[(3 * f + 1) % 8] + 0.3 * tu_normal(st);
    }
}

/* The exact pass as a run makes it (each batch centred by mk_centre, the
 * shift the first batch's means) against the long double reference, on data
 * with a large mean: within 1e-15, where centre-first float64 code with
 * pairwise sums (numpy) is a few 1e-16 off. A plain sum of the p_a p_b
 * squared cross-products was 1e-14 off here. */
START_TEST(exact_accurate_on_offset_data)
{
    if (LDBL_MANT_DIG < 64) {
        printf("exact accuracy: long double has %d bits here, no reference; skipped\n", LDBL_MANT_DIG);
        return;
    }
    int64_t n = 1600, m = 512, p[3] = {128, 96, 64};
    uint64_t st = 77;
    double *x[3];
    offset_layers(n, p, x, &st);
    mk_exact e;
    ck_assert_int_eq(mk_exact_init(&e, 3, p, 0, m, MK_PREC_FLOAT64), MK_OK);
    double *blk = malloc((size_t)(m * 128) * sizeof *blk), mean[3 * 128];
    for (int l = 0; l < 3; l++) {
        mk_centre(x[l], 0, m, p[l], MK_PREC_FLOAT64, mean, blk, NULL);
        memcpy(e.mu0 + e.off[l], mean, (size_t)p[l] * sizeof *mean);
    }
    int64_t len = mk_exact_len(&e);
    double *sum = calloc((size_t)len, sizeof *sum), *leaf = malloc((size_t)len * sizeof *leaf);
    for (int64_t lo = 0; lo < n; lo += m) { /* a tail batch of 64 */
        int64_t rows = lo + m < n ? m : n - lo;
        for (int l = 0; l < 3; l++) {
            mk_centre(x[l] + lo * p[l], 0, rows, p[l], MK_PREC_FLOAT64, mean, blk, NULL);
            mk_exact_put(&e, l, blk, mean, rows);
        }
        mk_exact_batch(&e, rows, leaf);
        for (int64_t k = 0; k < len; k++) sum[k] += leaf[k];
    }
    for (int debiased = 0; debiased < 2; debiased++) {
        double hxy[9], hxx[3], hyy[3], cka[9], worst = 0.0;
        long double want[9];
        mk_exact_hsic(&e, sum, n, debiased, 3, 3, 0, hxy, hxx, hyy);
        mk_cka_from_sums(3, 3, hxy, hxx, hyy, cka);
        long_double_cka(x, p, 3, n, debiased, want);
        for (int k = 0; k < 9; k++) {
            double err = (double)fabsl((cka[k] - want[k]) / want[k]);
            worst = err > worst ? err : worst;
        }
        printf("exact CKA (%s), mean 1e4: largest relative error against long double %.3g\n",
               debiased ? "HSIC_1" : "HSIC_0", worst);
        ck_assert_msg(worst < 1e-15, "%s: relative error %.3g", debiased ? "HSIC_1" : "HSIC_0", worst);
    }
    free(sum), free(leaf), free(blk);
    for (int l = 0; l < 3; l++) free(x[l]);
    mk_exact_free(&e);
}
END_TEST

/* The jackknife against its definition, written out: leave each group out,
 * recompute CKA from the remaining groups' sums, scale the spread. */
START_TEST(jackknife_matches_definition)
{
    int nx = 2, ny = 3, len = nx * ny + nx + ny;
    int64_t G = 5;
    uint64_t st = 8;
    double groups[5 * 11], sums[11] = {0}, se[6];
    for (int64_t g = 0; g < G; g++)
        for (int k = 0; k < len; k++) {
            groups[g * len + k] = (k >= nx * ny ? 2.0 : 0.5) + 0.2 * tu_normal(&st);
            sums[k] += groups[g * len + k];
        }
    ck_assert_int_eq(mk_jackknife_stderr(nx, ny, sums, G, groups, se), MK_OK);
    for (int i = 0; i < nx; i++)
        for (int j = 0; j < ny; j++) {
            double theta[5], mean = 0.0, ss = 0.0;
            for (int64_t g = 0; g < G; g++) {
                double xy = 0.0, xx = 0.0, yy = 0.0;
                for (int64_t h = 0; h < G; h++) {
                    if (h == g) continue;
                    xy += groups[h * len + i * ny + j];
                    xx += groups[h * len + nx * ny + i];
                    yy += groups[h * len + nx * ny + nx + j];
                }
                theta[g] = xy / sqrt(xx * yy);
                mean += theta[g] / (double)G;
            }
            for (int64_t g = 0; g < G; g++) ss += (theta[g] - mean) * (theta[g] - mean);
            assert_rel(se[i * ny + j], sqrt((double)(G - 1) / (double)G * ss), 1e-9, "jackknife");
        }
}
END_TEST

/* One data set of B batches of m examples: x (4 features), y related with
 * weight w. Returns CKA and, through the code under test, its jackknife
 * standard error over G groups and its permutation p-value (R > 0). */
typedef struct {
    double cka, se, p;
} stat;

static stat one_dataset(uint64_t seed, int64_t B, int64_t m, double w, int64_t G, int64_t R, mk_estimator est)
{
    mk_hsic_opts o = {est, MK_KERNEL_LINEAR, 1.0};
    int64_t len = mk_row_len(est, m), base = 3;
    uint64_t st = seed;
    mk_plan plan;
    ck_assert_int_eq(mk_plan_init(&plan, B * m, m, 1, 0, seed), MK_OK);
    mk_hsic_ws ws;
    ck_assert_int_eq(mk_hsic_ws_init(&ws, m, 4, MK_PREC_FLOAT64, &o), MK_OK);
    double *vx = malloc((size_t)len * sizeof *vx), *vy = malloc((size_t)len * sizeof *vy);
    double *vp = malloc((size_t)len * sizeof *vp), *perm_sum = calloc((size_t)(R + 1), sizeof(double));
    double *groups = calloc((size_t)(G * base), sizeof(double)), sums[3] = {0};
    int64_t *perm = malloc((size_t)m * sizeof *perm);
    for (int64_t b = 0; b < B; b++) {
        double *x = make_data(m, 4, NULL, 1, 0.0, 0.0, &st), *y = make_data(m, 4, x, 4, w, 0.0, &st), h[3];
        ck_assert_int_eq(mk_layer_row(&ws, x, 0, m, 4, vx), -1);
        ck_assert_int_eq(mk_layer_row(&ws, y, 0, m, 4, vy), -1);
        mk_pairs(NULL, est, vx, 1, vy, 1, m, &h[0], &h[1], &h[2]);
        for (int k = 0; k < 3; k++) {
            sums[k] += h[k];
            groups[mk_plan_group(&plan, b, G) * base + k] += h[k];
        }
        for (int64_t r = 0; r < R; r++) {
            double hp;
            mk_plan_test_perm(&plan, b, r, m, perm);
            mk_permute_row(est, vy, m, perm, vp);
            mk_pairs(NULL, est, vx, 1, vp, 1, m, &hp, NULL, NULL);
            perm_sum[r] += hp;
        }
        free(x);
        free(y);
    }
    stat s = {sums[0] / sqrt(sums[1] * sums[2]), NAN, NAN};
    ck_assert_int_eq(mk_jackknife_stderr(1, 1, sums, G, groups, &s.se), MK_OK);
    if (R) mk_perm_pvalue(1, 1, &sums[0], R, perm_sum, &s.p);
    free(vx);
    free(vy);
    free(vp);
    free(perm_sum);
    free(groups);
    free(perm);
    mk_hsic_ws_free(&ws);
    return s;
}

/* Over independent data sets from one distribution, the typical jackknife
 * standard error matches the actual spread of the estimate (within 1.5x). */
START_TEST(jackknife_stderr_matches_spread)
{
    const int D = 300;
    for (int est = 0; est < 2; est++) {
        double sum = 0.0, sum2 = 0.0, se2 = 0.0;
        for (int d = 0; d < D; d++) {
            stat s = one_dataset(1000 + (uint64_t)d, 24, 16, 0.5, 12, 0, (mk_estimator)est);
            sum += s.cka;
            sum2 += s.cka * s.cka;
            se2 += s.se * s.se;
        }
        double spread = sqrt((sum2 - sum * sum / D) / (D - 1)), se = sqrt(se2 / D);
        printf("jackknife (%s): spread of CKA over %d data sets %.4f, RMS standard error %.4f, ratio %.3f\n",
               est ? "hsic0" : "hsic1", D, spread, se, se / spread);
        ck_assert_msg(se / spread > 1.0 / 1.5 && se / spread < 1.5, "standard error %.4g vs spread %.4g", se, spread);
    }
}
END_TEST

/* Independent layers: p-values uniform (Kolmogorov-Smirnov); related: small. */
START_TEST(pvalues_uniform_under_independence)
{
    const int D = 300;
    double p[300];
    for (int est = 0; est < 2; est++) {
        for (int d = 0; d < D; d++) p[d] = one_dataset(5000 + (uint64_t)d, 4, 12, 0.0, 2, 99, (mk_estimator)est).p;
        double ks = oracle_ks_uniform(p, D), pks = oracle_ks_pvalue(ks, D);
        printf("p-values under independence (%s): KS D = %.4f over %d data sets, p = %.3f\n",
               est ? "hsic0" : "hsic1", ks, D, pks);
        ck_assert_msg(pks > 0.01, "p-values are not uniform: KS D %.4f, p %.3g", ks, pks);
        for (int d = 0; d < 20; d++) {
            stat s = one_dataset(9000 + (uint64_t)d, 4, 12, 1.5, 2, 199, (mk_estimator)est);
            ck_assert_msg(s.p < 0.01, "related layers: p-value %.4f", s.p);
        }
    }
}
END_TEST

TU_MAIN("estimators", 0,
        TU_CASE("maths", NULL, NULL, 300, NULL, kernels_and_estimators_match_formulas, median_matches_numpy_rule,
                permuted_rows_are_kernels_of_permuted_examples, test_permutations_are_seeded_permutations,
                exact_matches_full_grams, exact_strips_match_full_grams, exact_accurate_on_offset_data,
                jackknife_matches_definition,
                jackknife_stderr_matches_spread, pvalues_uniform_under_independence))
