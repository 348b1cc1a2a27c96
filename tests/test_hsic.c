/* The maths on one minibatch against the naive formula in oracle.c. */
#include <check.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mpicka/hsic.h"
#include "oracle.h"
#include "testutil.h"

/* Layer l = shared signal z (weight w_l) + own noise, + offset; rounded to
 * float so that the float and double paths see identical inputs. */
static double *make_layer(int64_t m, int64_t p, double w, double offset, uint64_t seed, const double *z)
{
    uint64_t st = seed;
    double *x = malloc((size_t)(m * p) * sizeof *x);
    for (int64_t i = 0; i < m; i++)
        for (int64_t f = 0; f < p; f++)
            x[i * p + f] = (float)(offset + w * z[i * 4 + f % 4] * (1.0 + 0.1 * (double)(f % 7)) + tu_normal(&st));
    return x;
}

static double *make_latent(int64_t m, uint64_t seed)
{
    uint64_t st = seed;
    double *z = malloc((size_t)(m * 4) * sizeof *z);
    for (int64_t i = 0; i < m * 4; i++) z[i] = tu_normal(&st);
    return z;
}

/* HSIC_1 of every pair of the given layers through the code under test. */
static void code_hsic(double **layers, const int64_t *p, int L, int64_t m, mk_precision prec, double *hxy)
{
    int64_t pmax = 1, t = mk_tri_len(m);
    for (int l = 0; l < L; l++) pmax = p[l] > pmax ? p[l] : pmax;
    mk_hsic_ws ws;
    ck_assert_int_eq(mk_hsic_ws_init(&ws, m, pmax, prec, NULL), MK_OK);
    double *v = malloc((size_t)(L * t) * sizeof *v), hxx[16], hyy[16];
    float *in32 = malloc((size_t)(m * pmax) * sizeof *in32);
    for (int l = 0; l < L; l++) {
        for (int64_t k = 0; k < m * p[l]; k++) in32[k] = (float)layers[l][k];
        int f32 = prec == MK_PREC_FLOAT32 && l % 2 == 0; /* both input types, same values */
        ck_assert_int_eq(mk_layer_row(&ws, f32 ? (void *)in32 : (void *)layers[l], f32, m, p[l], v + l * t), -1);
    }
    mk_pairs(NULL, MK_EST_HSIC1, v, L, NULL, L, m, hxy, hxx, hyy);
    for (int l = 0; l < L; l++) ck_assert(hxx[l] == hxy[l * L + l]);
    free(v);
    free(in32);
    mk_hsic_ws_free(&ws);
}

static void oracle_matrix(double **layers, const int64_t *p, int L, int64_t m, double *h)
{
    double **c = malloc((size_t)L * sizeof *c);
    for (int l = 0; l < L; l++) {
        c[l] = malloc((size_t)(m * p[l]) * sizeof(double));
        oracle_centre(layers[l], m, p[l], c[l]);
    }
    for (int a = 0; a < L; a++)
        for (int b = 0; b < L; b++) h[a * L + b] = oracle_hsic1(c[a], p[a], c[b], p[b], m);
    for (int l = 0; l < L; l++) free(c[l]);
    free(c);
}

static void to_cka(const double *h, int L, double *cka)
{
    double d[16];
    for (int l = 0; l < L; l++) d[l] = h[l * L + l];
    mk_cka_from_sums(L, L, h, d, d, cka);
}

/* max |a-b| / scale */
static double max_rel(const double *a, const double *b, int n, double scale)
{
    double worst = 0.0;
    for (int i = 0; i < n; i++) worst = fmax(worst, fabs(a[i] - b[i]) / scale);
    return worst;
}

static void check_case(int64_t m, double offset, mk_precision prec, double tol_cka)
{
    enum { L = 4 };
    int64_t p[L] = {1, 7, 33, 64};
    double w[L] = {2.0, 1.0, 0.5, 0.0};
    double *z = make_latent(m, 99 + (uint64_t)m), *layers[L];
    for (int l = 0; l < L; l++) layers[l] = make_layer(m, p[l], w[l], offset, 1000 + (uint64_t)l, z);
    double h[L * L], ho[L * L], cka[L * L], ckao[L * L];
    code_hsic(layers, p, L, m, prec, h);
    oracle_matrix(layers, p, L, m, ho);
    double scale = 0.0;
    for (int l = 0; l < L; l++) scale = fmax(scale, fabs(ho[l * L + l]));
    double tol_hsic = prec == MK_PREC_FLOAT64 ? 1e-11 : 1e-5;
    ck_assert_double_le(max_rel(h, ho, L * L, scale), tol_hsic);
    to_cka(h, L, cka);
    to_cka(ho, L, ckao);
    double err = max_rel(cka, ckao, L * L, 1.0);
    if (getenv("MK_TEST_VERBOSE")) printf("m=%lld offset=%g prec=%d: hsic %.3g cka %.3g\n", (long long)m, offset, (int)prec, max_rel(h, ho, L * L, scale), err);
    ck_assert_msg(err <= tol_cka, "m=%lld offset=%g prec=%d: CKA off by %g", (long long)m, offset, (int)prec, err);
    for (int l = 0; l < L; l++) free(layers[l]);
    free(z);
}

START_TEST(float64_matches_formula)
{
    int64_t ms[] = {4, 5, 9, 32, 61};
    for (int i = 0; i < 5; i++) {
        check_case(ms[i], 0.0, MK_PREC_FLOAT64, 1e-12);
        check_case(ms[i], 1e3, MK_PREC_FLOAT64, 1e-9);
    }
}
END_TEST

START_TEST(float32_within_1e6_of_float64_oracle)
{
    int64_t ms[] = {4, 9, 32, 61};
    for (int i = 0; i < 4; i++) {
        check_case(ms[i], 0.0, MK_PREC_FLOAT32, 1e-6);
        check_case(ms[i], 1e3, MK_PREC_FLOAT32, 1e-6);
    }
}
END_TEST

/* The oracle itself: HSIC_1 is invariant to a shift of the features, which
 * is what lets the oracle centre each batch. */
START_TEST(oracle_translation_invariance)
{
    int64_t m = 12, p = 5;
    double *z = make_latent(m, 5), *x = make_layer(m, p, 1.0, 0.0, 6, z), *y = make_layer(m, p, 1.0, 0.0, 7, z);
    double *xs = malloc((size_t)(m * p) * sizeof *xs);
    for (int64_t k = 0; k < m * p; k++) xs[k] = x[k] + 3.0 + (double)(k % p);
    double a = oracle_hsic1(x, p, y, p, m), b = oracle_hsic1(xs, p, y, p, m);
    ck_assert_double_eq_tol(a, b, 1e-10 * fabs(a));
    ck_assert(a > 0.0);
    free(z), free(x), free(y), free(xs);
}
END_TEST

START_TEST(x_vs_y_equals_self_pairs)
{
    enum { L = 3 };
    int64_t m = 16, p = 8, t = mk_tri_len(m);
    double *z = make_latent(m, 11), *layers[L];
    mk_hsic_ws ws;
    ck_assert_int_eq(mk_hsic_ws_init(&ws, m, p, MK_PREC_FLOAT64, NULL), MK_OK);
    double *v = malloc((size_t)(L * t) * sizeof *v);
    for (int l = 0; l < L; l++) {
        layers[l] = make_layer(m, p, 1.0 / (l + 1), 0.0, 20 + (uint64_t)l, z);
        ck_assert_int_eq(mk_layer_row(&ws, layers[l], 0, m, p, v + l * t), -1);
    }
    double self[L * L], cross[L * L], sx[L], sy[L], cx[L], cy[L];
    mk_pairs(NULL, MK_EST_HSIC1, v, L, NULL, L, m, self, sx, sy);
    mk_pairs(NULL, MK_EST_HSIC1, v, L, v, L, m, cross, cx, cy);
    for (int i = 0; i < L; i++) {
        ck_assert_double_eq_tol(cx[i], sx[i], 1e-12 * fabs(sx[i]));
        ck_assert_double_eq_tol(cy[i], sy[i], 1e-12 * fabs(sy[i]));
        for (int j = 0; j < L; j++) {
            ck_assert(self[i * L + j] == self[j * L + i]);
            ck_assert_double_eq_tol(cross[i * L + j], self[i * L + j], 1e-12 * fabs(sx[i]));
        }
    }
    for (int l = 0; l < L; l++) free(layers[l]);
    free(z), free(v);
    mk_hsic_ws_free(&ws);
}
END_TEST

START_TEST(non_finite_values_are_found)
{
    int64_t m = 8, p = 3;
    mk_hsic_ws ws;
    ck_assert_int_eq(mk_hsic_ws_init(&ws, m, p, MK_PREC_FLOAT32, NULL), MK_OK);
    double x[24] = {0};
    for (int k = 0; k < 24; k++) x[k] = k;
    x[5 * p + 2] = NAN;
    ck_assert_int_eq(mk_centre(x, 0, m, p, ws.prec, ws.colmean, ws.x, NULL), 5);
    x[5 * p + 2] = 1.0;
    x[0] = -INFINITY;
    ck_assert_int_eq(mk_centre(x, 0, m, p, ws.prec, ws.colmean, ws.x, NULL), 0);
    float xf[24];
    for (int k = 0; k < 24; k++) xf[k] = (float)k;
    xf[7 * p] = INFINITY;
    ck_assert_int_eq(mk_centre(xf, 1, m, p, ws.prec, ws.colmean, ws.x, NULL), 7);
    xf[7 * p] = 2.0f;
    ck_assert_int_eq(mk_centre(xf, 1, m, p, ws.prec, ws.colmean, ws.x, NULL), -1);
    mk_hsic_ws_free(&ws);
}
END_TEST

START_TEST(dead_layers_give_nan_and_negatives_are_kept)
{
    double hxy[4] = {2.0, -0.01, 0.5, 0.0}, hxx[2] = {2.0, 0.0}, hyy[2] = {1.0, 4.0}, cka[4];
    mk_cka_from_sums(2, 2, hxy, hxx, hyy, cka);
    ck_assert_double_eq_tol(cka[0], 2.0 / sqrt(2.0), 1e-15);
    ck_assert(cka[1] < 0.0);
    ck_assert_double_eq_tol(cka[1], -0.01 / sqrt(8.0), 1e-15);
    ck_assert(isnan(cka[2]) && isnan(cka[3]));
}
END_TEST

/* A constant layer has a zero U-centred Gram: HSIC_1 with anything is 0. */
START_TEST(constant_layer_has_zero_hsic)
{
    int64_t m = 10, p = 4, t = mk_tri_len(m);
    double x[40];
    for (int k = 0; k < 40; k++) x[k] = 7.0;
    mk_hsic_ws ws;
    ck_assert_int_eq(mk_hsic_ws_init(&ws, m, p, MK_PREC_FLOAT64, NULL), MK_OK);
    double *v = malloc((size_t)t * sizeof *v), h, hx, hy;
    ck_assert_int_eq(mk_layer_row(&ws, x, 0, m, p, v), -1);
    mk_pairs(NULL, MK_EST_HSIC1, v, 1, NULL, 1, m, &h, &hx, &hy);
    ck_assert(h == 0.0);
    free(v);
    mk_hsic_ws_free(&ws);
}
END_TEST


/* Finite values whose column sum overflows: the centring must still write
 * every output value (it once returned early and left stale data). */
START_TEST(centring_of_huge_finite_values_writes_everything)
{
    int64_t m = 6, p = 2;
    double x[12] = {1.7e308, 1.0, 1.6e308, 2.0, 1.5e308, 3.0, 1.7e308, 4.0, 1.6e308, 5.0, 1.5e308, 6.0};
    double mean[6], out[12]; /* 3p: mk_centre's scratch */
    for (int k = 0; k < 12; k++) out[k] = NAN;
    mk_centring how = {.scale = 1.0};
    ck_assert_int_eq(mk_centre(x, 0, m, p, MK_PREC_FLOAT64, mean, out, &how), -1);
    ck_assert_double_eq_tol(mean[0], 1.6e308, 1e293);
    ck_assert_double_eq_tol(mean[1], 3.5, 1e-15);
    for (int k = 0; k < 12; k++) ck_assert_msg(isfinite(out[k]), "out[%d] = %g", k, out[k]);
    ck_assert_double_eq_tol(out[0], 0.1e308, 1e293);
    ck_assert_double_eq_tol(how.amax, 0.1e308, 1e293);
    ck_assert(!how.constant);
    /* Scaled by a power of two the values are exact multiples: the same centring. */
    how.scale = 0x1p-1000;
    ck_assert_int_eq(mk_centre(x, 0, m, p, MK_PREC_FLOAT32, mean, out, &how), -1);
    ck_assert(how.amax < 1e9 && how.amax > 1e-9);
}
END_TEST

/* A constant block is centred to exact zeros (the mean of 0.1s computed by
 * summing is not 0.1), so a dead layer never yields rounding noise. */
START_TEST(constant_block_centres_to_exact_zero)
{
    int64_t m = 7, p = 3;
    float xf[21];
    double x[21], mean[9], out[21];
    for (int k = 0; k < 21; k++) x[k] = xf[k] = 0.1f * (float)(k % 3 + 1);
    mk_centring how = {.scale = 1.0};
    for (int f32 = 0; f32 < 2; f32++) {
        ck_assert_int_eq(mk_centre(f32 ? (void *)xf : (void *)x, f32, m, p, MK_PREC_FLOAT64, mean, out, &how), -1);
        ck_assert(how.constant);
        ck_assert(how.amax == 0.0);
        for (int k = 0; k < 21; k++) ck_assert(out[k] == 0.0);
        ck_assert(mean[1] == (f32 ? (double)xf[1] : x[1]));
    }
    x[20] += 1e-12;
    ck_assert_int_eq(mk_centre(x, 0, m, p, MK_PREC_FLOAT64, mean, out, &how), -1);
    ck_assert(!how.constant && how.amax > 0.0);
}
END_TEST

/* Scales are powers of two, 1 for data in range, and bring extreme data
 * near 1; CKA is unchanged by them (a layer scaled by 2^k against the same
 * layer unscaled). */
START_TEST(safe_scales_are_powers_of_two_and_keep_cka)
{
    ck_assert(mk_safe_scale(3.0, 1024, MK_PREC_FLOAT32) == 1.0);
    ck_assert(mk_safe_scale(1e-3, 10, MK_PREC_FLOAT64) == 1.0);
    ck_assert(mk_safe_scale(0.0, 10, MK_PREC_FLOAT32) == 1.0);
    double cases[][2] = {{1e300, 1000}, {1e150, 64}, {1e20, 4096}, {1e-25, 3}, {1e-100, 50}, {3e306, 1}};
    for (int c = 0; c < 6; c++) {
        for (int prec = 0; prec < 2; prec++) {
            double s = mk_safe_scale(cases[c][0], (int64_t)cases[c][1], (mk_precision)prec);
            int e;
            ck_assert_double_eq(frexp(s, &e), 0.5);
            double g = cases[c][1] * (cases[c][0] * s) * (cases[c][0] * s);
            ck_assert_msg(s == 1.0 || (g > 1e-3 && g < 1e3), "case %d prec %d: p*amax^2 = %g after scale %a", c,
                          prec, g, s);
            ck_assert_msg(g > (prec ? 1e-140 : 1e-30), "case %d prec %d: p*amax^2 = %g", c, prec, g);
            ck_assert(!mk_block_overflows(cases[c][0] * s, (int64_t)cases[c][1], (mk_precision)prec));
        }
    }
    ck_assert(mk_block_overflows(1e20, 1000, MK_PREC_FLOAT32));
    ck_assert(mk_block_overflows(1e80, 1000, MK_PREC_FLOAT64));
    ck_assert(mk_block_overflows(INFINITY, 1, MK_PREC_FLOAT64));
    /* CKA of a layer scaled by 2^-900 against the oracle on the unscaled one. */
    int64_t m = 24, p = 5, q = 3;
    double *x = malloc((size_t)(m * p) * sizeof *x), *y = malloc((size_t)(m * q) * sizeof *y);
    double *xs = malloc((size_t)(m * p) * sizeof *xs);
    uint64_t st = 11;
    for (int64_t k = 0; k < m * p; k++) x[k] = tu_normal(&st), xs[k] = ldexp(x[k], 900);
    for (int64_t k = 0; k < m * q; k++) y[k] = x[k % (m * p)] + tu_normal(&st);
    double s = mk_safe_scale(ldexp(4.0, 900), p, MK_PREC_FLOAT64);
    ck_assert(s != 1.0);
    mk_hsic_ws ws;
    ck_assert_int_eq(mk_hsic_ws_init(&ws, m, p, MK_PREC_FLOAT64, NULL), MK_OK);
    int64_t t = mk_tri_len(m);
    double *v = malloc((size_t)(2 * t) * sizeof *v), mean[15], h, hx, hy;
    mk_centring how = {.scale = s};
    ck_assert_int_eq(mk_centre(xs, 0, m, p, MK_PREC_FLOAT64, mean, ws.x, &how), -1);
    ck_assert_int_eq(mk_gram(&ws, ws.x, m, p), 0);
    mk_kernel_row(&ws, m, v);
    ck_assert_int_eq(mk_layer_row(&ws, y, 0, m, q, v + t), -1);
    mk_pairs(NULL, MK_EST_HSIC1, v, 1, v + t, 1, m, &h, &hx, &hy);
    double cx[120], cy[72];
    oracle_centre(x, m, p, cx);
    oracle_centre(y, m, q, cy);
    double ref = oracle_hsic1(cx, p, cy, q, m) / sqrt(oracle_hsic1(cx, p, cx, p, m) * oracle_hsic1(cy, q, cy, q, m));
    ck_assert_double_eq_tol(h / sqrt(hx * hy), ref, 1e-12);
    /* Unscaled, the Gram overflows and says so. */
    how.scale = 1.0;
    ck_assert_int_eq(mk_centre(xs, 0, m, p, MK_PREC_FLOAT64, mean, ws.x, &how), -1);
    ck_assert(mk_block_overflows(how.amax, p, MK_PREC_FLOAT64));
    for (int64_t k = 0; k < m * p; k++) xs[k] = ldexp(x[k], 600);
    ck_assert_int_eq(mk_centre(xs, 0, m, p, MK_PREC_FLOAT64, mean, ws.x, &how), -1);
    ck_assert_int_eq(mk_gram(&ws, ws.x, m, p), 1);
    free(x), free(y), free(xs), free(v);
    mk_hsic_ws_free(&ws);
}
END_TEST

/* The rows of layers 0..L-1: Gram then kernel, the kernel in the background
 * (mk_kernel_start) when background is set, with the pool par. */
static void kernel_rows(double **layers, const int64_t *p, int L, int64_t m, mk_precision prec,
                        const mk_hsic_opts *opts, mk_par *par, int background, double *v)
{
    int64_t pmax = 1, len = mk_row_len(opts->est, m);
    for (int l = 0; l < L; l++) pmax = p[l] > pmax ? p[l] : pmax;
    mk_hsic_ws ws;
    double mean[3 * 64];
    ck_assert_int_eq(mk_hsic_ws_init(&ws, m, pmax, prec, opts), MK_OK);
    ws.par = par;
    for (int l = 0; l < L; l++) {
        ck_assert_int_eq(mk_centre(layers[l], 0, m, p[l], prec, mean, ws.x, NULL), -1);
        ck_assert_int_eq(mk_gram(&ws, ws.x, m, p[l]), 0);
        if (background)
            mk_kernel_start(&ws, m, v + l * len);
        else
            mk_kernel_row(&ws, m, v + l * len);
    }
    mk_kernel_wait(&ws);
    mk_hsic_ws_free(&ws);
}

/* Computing each kernel on another thread, while the next Gram is made, is
 * only scheduling: the rows are the same bits as one after the other, for
 * every kernel and estimator, with no pool, 1, 2 or 3 threads; and their
 * HSICs match the formula. */
START_TEST(kernels_in_the_background_give_the_same_bits)
{
    enum { L = 5 };
    int64_t m = 300, p[L] = {1, 7, 33, 64, 20};
    double w[L] = {2.0, 1.0, 0.5, 0.0, 1.5};
    double *z = make_latent(m, 5), *layers[L];
    for (int l = 0; l < L; l++) layers[l] = make_layer(m, p[l], w[l], 3.0, 70 + (uint64_t)l, z);
    mk_hsic_opts opts[3] = {{MK_EST_HSIC1, MK_KERNEL_LINEAR, 1.0}, {MK_EST_HSIC0, MK_KERNEL_LINEAR, 1.0},
                            {MK_EST_HSIC1, MK_KERNEL_RBF, 0.5}};
    int64_t len = mk_row_len(MK_EST_HSIC0, m);
    double *ref = malloc((size_t)(L * len) * sizeof *ref), *got = malloc((size_t)(L * len) * sizeof *got);
    for (int o = 0; o < 3; o++)
        for (int prec = 0; prec < 2; prec++) {
            size_t bytes = (size_t)(L * mk_row_len(opts[o].est, m)) * sizeof *ref;
            kernel_rows(layers, p, L, m, (mk_precision)prec, &opts[o], NULL, 0, ref);
            for (int threads = 0; threads <= 3; threads++) {
                mk_par *par = NULL;
                if (threads) ck_assert_int_eq(mk_par_create(threads, &par), MK_OK);
                memset(got, 0, bytes);
                kernel_rows(layers, p, L, m, (mk_precision)prec, &opts[o], par, 1, got);
                ck_assert_msg(!memcmp(got, ref, bytes), "kernel %d, precision %d, %d thread(s): other bits", o,
                              prec, threads);
                mk_par_free(par);
            }
        }
    /* Linear HSIC_1 rows, made in the background, against the formula. */
    double h[L * L], ho[L * L], hxx[L], hyy[L], scale = 0.0;
    mk_par *par;
    ck_assert_int_eq(mk_par_create(2, &par), MK_OK);
    kernel_rows(layers, p, L, m, MK_PREC_FLOAT64, &opts[0], par, 1, got);
    mk_pairs(par, MK_EST_HSIC1, got, L, NULL, L, m, h, hxx, hyy);
    mk_par_free(par);
    oracle_matrix(layers, p, L, m, ho);
    for (int l = 0; l < L; l++) scale = fmax(scale, fabs(ho[l * L + l]));
    ck_assert_double_le(max_rel(h, ho, L * L, scale), 1e-11);
    for (int l = 0; l < L; l++) free(layers[l]);
    free(z), free(ref), free(got);
}
END_TEST

TU_MAIN("hsic", 0,
        TU_CASE("maths", NULL, NULL, 120, NULL, float64_matches_formula, float32_within_1e6_of_float64_oracle,
                oracle_translation_invariance, x_vs_y_equals_self_pairs, non_finite_values_are_found,
                dead_layers_give_nan_and_negatives_are_kept, constant_layer_has_zero_hsic,
                centring_of_huge_finite_values_writes_everything, constant_block_centres_to_exact_zero,
                safe_scales_are_powers_of_two_and_keep_cka, kernels_in_the_background_give_the_same_bits))
