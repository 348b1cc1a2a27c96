/* src/measures/gram_measures.c against a naive float64 implementation
 * written here from the formulas on the values themselves (not on Grams):
 * RDMs from the examples' differences and row-centred features, ranks by
 * counting, neighbours by a full selection sort of each example's cosines,
 * CKNNA from the dense masked matrices; the mean and jackknife of values
 * added batch by batch. Plus the edges: ties between distances and between
 * neighbours, a constant layer, a batch too small for k. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "mpicka/gram_measures.h"
#include "testutil.h"

#define M 24
#define P 7

typedef struct {
    double v[M][P];
} layer;

/* Correlated features with an offset, from a shared base. */
static void make(layer *l, uint64_t *st, const double base[M][2], double offset)
{
    for (int f = 0; f < P; f++) {
        double w0 = tu_normal(st), w1 = tu_normal(st);
        for (int i = 0; i < M; i++) l->v[i][f] = offset + w0 * base[i][0] + w1 * base[i][1] + 0.4 * tu_normal(st);
    }
}

/* What the batch step hands over: the centred block, the means, the Gram. */
static void prepare(const mk_gram_spec *s, mk_gram_work *w, mk_gram_layer *gl, const layer *l, int m)
{
    static double x[M * P], mean[P], g[M * M];
    for (int f = 0; f < P; f++) {
        mean[f] = 0.0;
        for (int i = 0; i < m; i++) mean[f] += l->v[i][f];
        mean[f] /= m;
    }
    for (int i = 0; i < m; i++)
        for (int f = 0; f < P; f++) x[i * P + f] = l->v[i][f] - mean[f];
    for (int i = 0; i < m; i++)
        for (int j = 0; j < m; j++) {
            g[i * m + j] = 0.0;
            for (int f = 0; f < P; f++) g[i * m + j] += x[i * P + f] * x[j * P + f];
        }
    int constant = 1;
    for (int i = 1; i < m; i++)
        for (int f = 0; f < P; f++) constant &= l->v[i][f] == l->v[0][f];
    mk_gram_layer_put(gl, s, w, g, x, mean, MK_PREC_FLOAT64, m, P, constant);
}

/* ---- the oracle ---- */

static int naive_rdm(const layer *l, int m, int correlation, double *d)
{
    int q = 0;
    for (int i = 0; i < m; i++)
        for (int j = i + 1; j < m; j++, q++) {
            double s = 0.0, a[P], b[P], ma = 0.0, mb = 0.0, na = 0.0, nb = 0.0;
            for (int f = 0; f < P; f++) s += (l->v[i][f] - l->v[j][f]) * (l->v[i][f] - l->v[j][f]);
            for (int f = 0; f < P; f++) ma += l->v[i][f] / P, mb += l->v[j][f] / P;
            for (int f = 0; f < P; f++) a[f] = l->v[i][f] - ma, b[f] = l->v[j][f] - mb, na += a[f] * a[f], nb += b[f] * b[f];
            double dot = 0.0;
            for (int f = 0; f < P; f++) dot += a[f] * b[f];
            d[q] = correlation ? 1.0 - dot / sqrt(na * nb) : s / P;
        }
    return q;
}

/* Average ranks by counting: 1 + (values below) + (ties - 1) / 2. */
static void naive_ranks(double *d, int t)
{
    double *r = malloc((size_t)t * sizeof *r);
    for (int q = 0; q < t; q++) {
        int below = 0, same = 0;
        for (int u = 0; u < t; u++) below += d[u] < d[q], same += d[u] == d[q];
        r[q] = 1.0 + below + (same - 1) / 2.0;
    }
    memcpy(d, r, (size_t)t * sizeof *r);
    free(r);
}

static double pearson(const double *a, const double *b, int t)
{
    double ma = 0.0, mb = 0.0, ab = 0.0, aa = 0.0, bb = 0.0;
    for (int q = 0; q < t; q++) ma += a[q] / t, mb += b[q] / t;
    for (int q = 0; q < t; q++) ab += (a[q] - ma) * (b[q] - mb), aa += (a[q] - ma) * (a[q] - ma), bb += (b[q] - mb) * (b[q] - mb);
    return ab / sqrt(aa * bb);
}

static double naive_rsa(const layer *x, const layer *y, int m, int spearman, int correlation)
{
    static double a[M * M], b[M * M];
    int t = naive_rdm(x, m, correlation, a);
    naive_rdm(y, m, correlation, b);
    if (spearman) naive_ranks(a, t), naive_ranks(b, t);
    return pearson(a, b, t);
}

static void naive_cos(const layer *l, int m, double c[M][M])
{
    for (int i = 0; i < m; i++)
        for (int j = 0; j < m; j++) {
            double ij = 0.0, ii = 0.0, jj = 0.0;
            for (int f = 0; f < P; f++) ij += l->v[i][f] * l->v[j][f], ii += l->v[i][f] * l->v[i][f], jj += l->v[j][f] * l->v[j][f];
            c[i][j] = ij / sqrt(ii * jj);
        }
}

/* in[i][j]: j is among i's k nearest (selection: the highest cosine, the lowest index first). */
static void naive_knn(const layer *l, int m, int k, int in[M][M])
{
    double c[M][M];
    naive_cos(l, m, c);
    for (int i = 0; i < m; i++) {
        memset(in[i], 0, sizeof in[i]);
        for (int n = 0; n < k; n++) {
            int best = -1;
            for (int j = 0; j < m; j++)
                if (j != i && !in[i][j] && (best < 0 || c[i][j] > c[i][best])) best = j;
            in[i][best] = 1;
        }
    }
}

static double naive_overlap(const layer *x, const layer *y, int m, int k, int jaccard)
{
    int a[M][M], b[M][M];
    naive_knn(x, m, k, a);
    naive_knn(y, m, k, b);
    double sum = 0.0;
    for (int i = 0; i < m; i++) {
        int both = 0, either = 0;
        for (int j = 0; j < m; j++) both += a[i][j] && b[i][j], either += a[i][j] || b[i][j];
        sum += jaccard ? (double)both / either : (double)both / k;
    }
    return sum / m;
}

/* Song et al.'s unbiased HSIC of dense A, B (zero diagonals), as platonic-rep. */
static double hsic_u(double A[M][M], double B[M][M], int m)
{
    double tr = 0.0, sa = 0.0, sb = 0.0, ab = 0.0;
    for (int i = 0; i < m; i++)
        for (int j = 0; j < m; j++) {
            tr += A[i][j] * B[j][i], sa += A[i][j], sb += B[i][j];
            for (int u = 0; u < m; u++) ab += A[i][u] * B[u][j];
        }
    return (tr + sa * sb / ((m - 1.0) * (m - 2.0)) - 2.0 * ab / (m - 2.0)) / (m * (m - 3.0));
}

static double naive_cknna(const layer *x, const layer *y, int m, int k)
{
    static double kx[M][M], ky[M][M], A[M][M], B[M][M], C[M][M], D[M][M];
    int a[M][M], b[M][M];
    naive_cos(x, m, kx);
    naive_cos(y, m, ky);
    naive_knn(x, m, k, a);
    naive_knn(y, m, k, b);
    for (int i = 0; i < m; i++)
        for (int j = 0; j < m; j++) {
            A[i][j] = a[i][j] && b[i][j] ? kx[i][j] : 0.0, B[i][j] = a[i][j] && b[i][j] ? ky[i][j] : 0.0;
            C[i][j] = a[i][j] ? kx[i][j] : 0.0, D[i][j] = b[i][j] ? ky[i][j] : 0.0;
        }
    double xy = hsic_u(A, B, m), xx = hsic_u(C, C, m), yy = hsic_u(D, D, m);
    return xy / sqrt(xx * yy);
}

/* ---- the tests ---- */

static void three_layers(layer l[3], uint64_t seed)
{
    uint64_t st = seed;
    double base[M][2];
    for (int i = 0; i < M; i++) base[i][0] = tu_normal(&st), base[i][1] = tu_normal(&st);
    make(&l[0], &st, base, 3.0);
    make(&l[1], &st, base, -1.0);
    make(&l[2], &st, base, 0.0);
}

/* Every measure of a 3 by 3 self comparison, for batches of m examples. */
static void check_batch(const mk_measure *ms, int nms, const layer l[3], int m)
{
    mk_gram_spec s;
    mk_gram_spec_init(&s, ms, nms, M);
    mk_gram_work w;
    mk_gram_layer gl[3];
    ck_assert_int_eq(mk_gram_work_init(&w, &s), MK_OK);
    for (int k = 0; k < 3; k++) {
        ck_assert_int_eq(mk_gram_layer_init(&gl[k], &s), MK_OK);
        prepare(&s, &w, &gl[k], &l[k], m);
    }
    double out[4 * 9];
    ck_assert_int_eq(mk_gram_pairs(&s, NULL, gl, 3, gl, 3, 1, out), MK_OK);
    for (int q = 0, o = 0; q < nms; q++, o++)
        for (int i = 0; i < 3; i++)
            for (int j = 0; j < 3; j++) {
                const mk_measure *me = &ms[q];
                double want = me->kind == MK_MEASURE_RSA ? naive_rsa(&l[i], &l[j], m, me->spearman, me->correlation)
                              : me->kind == MK_MEASURE_CKNNA ? naive_cknna(&l[i], &l[j], m, (int)me->k)
                              : naive_overlap(&l[i], &l[j], m, (int)me->k, me->kind == MK_MEASURE_JACCARD);
                double got = out[o * 9 + i * 3 + j];
                ck_assert_msg(fabs(got - want) <= 1e-12, "%s (%d, %d), m %d: %.17g, want %.17g",
                              mk_measure_names[me->kind], i, j, m, got, want);
            }
    for (int k = 0; k < 3; k++) mk_gram_layer_free(&gl[k]);
    mk_gram_work_free(&w);
}

START_TEST(every_measure_matches_the_naive_formulas)
{
    layer l[3];
    three_layers(l, 7);
    for (int sp = 0; sp < 2; sp++)
        for (int corr = 0; corr < 2; corr++) {
            mk_measure ms[4] = {{.kind = MK_MEASURE_RSA, .spearman = sp, .correlation = corr},
                                {.kind = MK_MEASURE_MUTUAL_KNN, .k = 4},
                                {.kind = MK_MEASURE_CKNNA, .k = 6},
                                {.kind = MK_MEASURE_JACCARD, .k = 3}};
            check_batch(ms, 4, l, M);
            check_batch(ms, 4, l, 9); /* a tail batch: the same lists cut short */
        }
}
END_TEST

/* Small integers of column mean 0 (each example's negation is the example
 * 12 on): many distances tie exactly (average ranks) and many cosines
 * (the lower index first). */
START_TEST(ties_get_average_ranks_and_the_lower_index)
{
    layer l[3];
    uint64_t st = 3;
    for (int k = 0; k < 3; k++)
        for (int i = 0; i < M / 2; i++)
            for (int f = 0; f < P; f++) {
                l[k].v[i][f] = (double)(int)(3.0 * tu_uniform(&st)) - 1.0;
                l[k].v[i + M / 2][f] = -l[k].v[i][f];
            }
    mk_measure ms[4] = {{.kind = MK_MEASURE_RSA, .spearman = 1},
                        {.kind = MK_MEASURE_MUTUAL_KNN, .k = 5},
                        {.kind = MK_MEASURE_CKNNA, .k = 5},
                        {.kind = MK_MEASURE_JACCARD, .k = 5}};
    check_batch(ms, 4, l, M);
}
END_TEST

START_TEST(a_constant_layer_and_a_short_batch_give_nan)
{
    layer l[3];
    three_layers(l, 9);
    for (int i = 0; i < M; i++)
        for (int f = 0; f < P; f++) l[2].v[i][f] = 0.5;
    mk_measure ms[2] = {{.kind = MK_MEASURE_RSA}, {.kind = MK_MEASURE_JACCARD, .k = 10}};
    mk_gram_spec s;
    mk_gram_spec_init(&s, ms, 2, M);
    mk_gram_work w;
    mk_gram_layer gl[3];
    ck_assert_int_eq(mk_gram_work_init(&w, &s), MK_OK);
    double out[2 * 9];
    for (int m = M; m >= 10; m -= 14) { /* 24, then 10: too few for k = 10 */
        for (int k = 0; k < 3; k++) {
            ck_assert_int_eq(mk_gram_layer_init(&gl[k], &s), MK_OK);
            prepare(&s, &w, &gl[k], &l[k], m);
        }
        ck_assert_int_eq(mk_gram_pairs(&s, NULL, gl, 3, gl, 3, 1, out), MK_OK);
        for (int i = 0; i < 3; i++)
            for (int j = 0; j < 3; j++) {
                ck_assert(isnan(out[i * 3 + j]) == (i == 2 || j == 2));
                ck_assert(isnan(out[9 + i * 3 + j]) == (i == 2 || j == 2 || m == 10));
            }
        for (int k = 0; k < 3; k++) mk_gram_layer_free(&gl[k]);
    }
    ck_assert_int_eq(mk_gram_short_batch(&s, 10), 1);
    ck_assert_int_eq(mk_gram_short_batch(&s, 11), -1);
    mk_gram_work_free(&w);
}
END_TEST

/* 7 batches in 3 groups (2, 2, 3 batches as mk_plan_group deals them), one
 * value NaN: the mean of the finite ones, the jackknife over the groups. */
START_TEST(means_and_jackknife_over_the_groups)
{
    double v[7] = {0.3, 0.5, NAN, 0.9, 0.2, 0.4, 0.8};
    int group[7] = {0, 0, 0, 1, 1, 2, 2};
    double slots[3 * 2] = {0}, mean, se;
    for (int b = 0; b < 7; b++) mk_gram_add(&v[b], 1, slots + group[b] * 2);
    mk_gram_finish(1, 3, slots, &mean, &se);
    double sum = 0.0, theta[3], avg = 0.0, ss = 0.0;
    for (int b = 0; b < 7; b++) sum += isnan(v[b]) ? 0.0 : v[b];
    ck_assert(fabs(mean - sum / 6.0) < 1e-15);
    for (int g = 0; g < 3; g++) {
        double s = 0.0;
        int n = 0;
        for (int b = 0; b < 7; b++)
            if (group[b] != g && !isnan(v[b])) s += v[b], n++;
        theta[g] = s / n, avg += theta[g] / 3.0;
    }
    for (int g = 0; g < 3; g++) ss += (theta[g] - avg) * (theta[g] - avg);
    ck_assert(fabs(se - sqrt(2.0 / 3.0 * ss)) < 1e-15);
    double none[2] = {0};
    mk_gram_finish(1, 0, none, &mean, NULL); /* no finite value, no groups */
    ck_assert(isnan(mean));
}
END_TEST

/* Three threads share out the rows and the pairs: the bits of one. */
START_TEST(threads_give_the_bits_of_one)
{
    layer l[3];
    three_layers(l, 11);
    mk_measure ms[4] = {{.kind = MK_MEASURE_RSA, .spearman = 1, .correlation = 1},
                        {.kind = MK_MEASURE_MUTUAL_KNN, .k = 4},
                        {.kind = MK_MEASURE_CKNNA, .k = 6},
                        {.kind = MK_MEASURE_JACCARD, .k = 3}};
    mk_gram_spec s;
    mk_gram_spec_init(&s, ms, 4, M);
    mk_par *par;
    ck_assert_int_eq(mk_par_create(3, &par), MK_OK);
    double out[2][4 * 4];
    for (int run = 0; run < 2; run++) {
        mk_gram_work w;
        mk_gram_layer gl[3];
        ck_assert_int_eq(mk_gram_work_init(&w, &s), MK_OK);
        w.par = run ? par : NULL;
        for (int k = 0; k < 3; k++) {
            ck_assert_int_eq(mk_gram_layer_init(&gl[k], &s), MK_OK);
            prepare(&s, &w, &gl[k], &l[k], M);
        }
        ck_assert_int_eq(mk_gram_pairs(&s, run ? par : NULL, gl, 2, gl + 1, 2, 0, out[run]), MK_OK);
        for (int k = 0; k < 3; k++) mk_gram_layer_free(&gl[k]);
        mk_gram_work_free(&w);
    }
    ck_assert(memcmp(out[0], out[1], sizeof out[0]) == 0);
    mk_par_free(par);
}
END_TEST

TU_MAIN("gram_measures", 0,
        TU_CASE("gram_measures", NULL, NULL, 0, NULL, every_measure_matches_the_naive_formulas,
                ties_get_average_ranks_and_the_lower_index, a_constant_layer_and_a_short_batch_give_nan,
                means_and_jackknife_over_the_groups, threads_give_the_bits_of_one))
