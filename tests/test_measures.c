/* src/measures against a naive float64 implementation written here from the
 * formulas: covariances summed from the data, symmetric matrices
 * diagonalised by cyclic Jacobi rotations (no LAPACK), canonical
 * correlations as the square roots of the eigenvalues of Cxx^-1/2 Cxy Cyy^-1
 * Cyx Cxx^-1/2, nuclear norms as the sum of sqrt(eig(A^T A)), R^2 from an
 * explicit inverse (Gauss-Jordan). Plus the edges: a duplicated feature, a
 * constant layer; and the shares of the pairs the ranks compute. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "mpicka/hsic.h"
#include "mpicka/measure_sums.h"
#include "mpicka/measures.h"
#include "testutil.h"

#define NMAX 64
#define PMAX 8

typedef struct {
    int n, p;
    double a[NMAX][PMAX];
} data;

/* Correlated features with an offset, from a shared base. */
static void make(data *d, int n, int p, uint64_t *st, const double base[NMAX][3])
{
    d->n = n, d->p = p;
    for (int j = 0; j < p; j++) {
        double w[3] = {tu_normal(st), tu_normal(st), tu_normal(st)};
        for (int i = 0; i < n; i++)
            d->a[i][j] = 10.0 + w[0] * base[i][0] + w[1] * base[i][1] + w[2] * base[i][2] + 0.5 * tu_normal(st);
    }
}

static void cov(const data *x, const data *y, double *c)
{
    double mx[PMAX] = {0}, my[PMAX] = {0};
    for (int i = 0; i < x->n; i++) {
        for (int f = 0; f < x->p; f++) mx[f] += x->a[i][f] / x->n;
        for (int g = 0; g < y->p; g++) my[g] += y->a[i][g] / y->n;
    }
    for (int f = 0; f < x->p; f++)
        for (int g = 0; g < y->p; g++) {
            double s = 0.0;
            for (int i = 0; i < x->n; i++) s += (x->a[i][f] - mx[f]) * (y->a[i][g] - my[g]);
            c[f * y->p + g] = s;
        }
}

/* Cyclic Jacobi: a (n by n, symmetric) -> eigenvalues w, eigenvectors as the columns of v. */
static void jacobi(int n, const double *a0, double *w, double *v)
{
    double a[PMAX * PMAX];
    for (int k = 0; k < n * n; k++) a[k] = a0[k], v[k] = (k / n == k % n);
    for (int sweep = 0; sweep < 100; sweep++) {
        double off = 0.0;
        for (int p = 0; p < n; p++)
            for (int q = p + 1; q < n; q++) off += a[p * n + q] * a[p * n + q];
        if (off < 1e-300) break;
        for (int p = 0; p < n; p++)
            for (int q = p + 1; q < n; q++) {
                if (a[p * n + q] == 0.0) continue;
                double th = (a[q * n + q] - a[p * n + p]) / (2.0 * a[p * n + q]);
                double t = (th >= 0 ? 1.0 : -1.0) / (fabs(th) + sqrt(th * th + 1.0)), c = 1.0 / sqrt(t * t + 1.0),
                       s = t * c;
                for (int k = 0; k < n; k++) { /* columns p, q */
                    double akp = a[k * n + p], akq = a[k * n + q];
                    a[k * n + p] = c * akp - s * akq, a[k * n + q] = s * akp + c * akq;
                }
                for (int k = 0; k < n; k++) { /* rows p, q */
                    double apk = a[p * n + k], aqk = a[q * n + k];
                    a[p * n + k] = c * apk - s * aqk, a[q * n + k] = s * apk + c * aqk;
                }
                for (int k = 0; k < n; k++) {
                    double vkp = v[k * n + p], vkq = v[k * n + q];
                    v[k * n + p] = c * vkp - s * vkq, v[k * n + q] = s * vkp + c * vkq;
                }
            }
    }
    for (int k = 0; k < n; k++) w[k] = a[k * n + k];
}

/* out = V diag(f(lam)) V^T of the symmetric c, f = lam^e. */
static void power(int n, const double *c, double e, double *out)
{
    double w[PMAX], v[PMAX * PMAX];
    jacobi(n, c, w, v);
    for (int i = 0; i < n; i++)
        for (int j = 0; j < n; j++) {
            double s = 0.0;
            for (int k = 0; k < n; k++) s += v[i * n + k] * pow(w[k], e) * v[j * n + k];
            out[i * n + j] = s;
        }
}

/* c = a (r by m) b (m by q), with a or b transposed as asked. */
static void mul(int r, int m, int q, const double *a, int ta, const double *b, int tb, double *c)
{
    for (int i = 0; i < r; i++)
        for (int j = 0; j < q; j++) {
            double s = 0.0;
            for (int k = 0; k < m; k++) s += (ta ? a[k * r + i] : a[i * m + k]) * (tb ? b[j * m + k] : b[k * q + j]);
            c[i * q + j] = s;
        }
}

/* Sum of the singular values of a (r by q, r <= q): sqrt(eig(a a^T)), the
 * smaller Gram (the larger one's zero eigenvalues would come back as
 * sqrt(rounding), 1e-8). */
static double nuclear(int r, int q, const double *a)
{
    double aat[PMAX * PMAX] = {0}, w[PMAX], v[PMAX * PMAX], s = 0.0;
    mul(r, q, r, a, 0, a, 1, aat);
    jacobi(r, aat, w, v);
    for (int k = 0; k < r; k++) s += sqrt(fmax(w[k], 0.0));
    return s;
}

static double trace(int n, const double *a)
{
    double t = 0.0;
    for (int k = 0; k < n; k++) t += a[k * n + k];
    return t;
}

/* The squared canonical correlations, the eigenvalues of Cxx^-1/2 Cxy Cyy^-1 Cyx Cxx^-1/2 (px of them, the
 * last px - py zero when px > py), with their eigenvectors u (columns). */
static void canonical(int px, int py, const double *cxx, const double *cyy, const double *cxy, double *rho2, double *u)
{
    double xh[PMAX * PMAX], yi[PMAX * PMAX], t1[PMAX * PMAX], t2[PMAX * PMAX], t3[PMAX * PMAX], m[PMAX * PMAX] = {0};
    power(px, cxx, -0.5, xh);
    power(py, cyy, -1.0, yi);
    mul(px, px, py, xh, 0, cxy, 0, t1);  /* Cxx^-1/2 Cxy */
    mul(px, py, py, t1, 0, yi, 0, t2);   /* ... Cyy^-1 */
    mul(px, py, px, t2, 0, t1, 1, t3);   /* ... Cyx Cxx^-1/2 */
    for (int k = 0; k < px * px; k++) m[k] = t3[k];
    jacobi(px, m, rho2, u);
}

/* Descending order of w's first n, as indices. */
static void order(int n, const double *w, int *idx)
{
    for (int i = 0; i < n; i++) idx[i] = i;
    for (int i = 0; i < n; i++)
        for (int j = i + 1; j < n; j++)
            if (w[idx[j]] > w[idx[i]]) {
                int t = idx[i];
                idx[i] = idx[j], idx[j] = t;
            }
}

typedef struct {
    double cca_mean, cca_r2, pwcca, procrustes, shape, y_from_x, x_from_y;
} naive;

static naive naive_measures(const data *x, const data *y, double alpha)
{
    int px = x->p, py = y->p, k = px < py ? px : py, idx[PMAX];
    double cxx[PMAX * PMAX], cyy[PMAX * PMAX], cxy[PMAX * PMAX], rho2[PMAX], u[PMAX * PMAX];
    cov(x, x, cxx), cov(y, y, cyy), cov(x, y, cxy);
    naive r = {0};
    canonical(px, py, cxx, cyy, cxy, rho2, u);
    order(px, rho2, idx);
    double xr[PMAX * PMAX], num = 0.0, den = 0.0;
    power(px, cxx, 0.5, xr);
    for (int q = 0; q < k; q++) {
        double rho = sqrt(rho2[idx[q]]), a = 0.0;
        r.cca_mean += rho / k, r.cca_r2 += rho * rho / k;
        for (int f = 0; f < px; f++) { /* <h, x_f> = (Cxx a)_f = (Cxx^1/2 u)_f */
            double h = 0.0;
            for (int g = 0; g < px; g++) h += xr[f * px + g] * u[g * px + idx[q]];
            a += fabs(h);
        }
        num += a * rho, den += a;
    }
    r.pwcca = num / den;
    r.procrustes = 2.0 - 2.0 * nuclear(px, py, cxy) / sqrt(trace(px, cxx) * trace(py, cyy));
    double zx[PMAX * PMAX], zy[PMAX * PMAX], hx[PMAX * PMAX], hy[PMAX * PMAX], t[PMAX * PMAX], b[PMAX * PMAX] = {0};
    power(px, cxx, -0.5, hx), power(py, cyy, -0.5, hy);
    for (int i = 0; i < px * px; i++) zx[i] = (1.0 - alpha) * hx[i] + alpha * (i / px == i % px);
    for (int i = 0; i < py * py; i++) zy[i] = (1.0 - alpha) * hy[i] + alpha * (i / py == i % py);
    mul(px, px, py, zx, 0, cxy, 0, t), mul(px, py, py, t, 0, zy, 0, b);
    double vx[PMAX * PMAX], vy[PMAX * PMAX];
    mul(px, px, px, zx, 0, cxx, 0, t), mul(px, px, px, t, 0, zx, 0, vx);
    mul(py, py, py, zy, 0, cyy, 0, t), mul(py, py, py, t, 0, zy, 0, vy);
    r.shape = acos(fmin(1.0, nuclear(px, py, b) / sqrt(trace(px, vx) * trace(py, vy))));
    double xi[PMAX * PMAX], yi[PMAX * PMAX], t2[PMAX * PMAX];
    power(px, cxx, -1.0, xi), power(py, cyy, -1.0, yi);
    mul(py, px, px, cxy, 1, xi, 0, t), mul(py, px, py, t, 0, cxy, 0, t2);
    r.y_from_x = trace(py, t2) / trace(py, cyy);
    mul(px, py, py, cxy, 0, yi, 0, t), mul(px, py, px, t, 0, cxy, 1, t2);
    r.x_from_y = trace(px, t2) / trace(px, cxx);
    return r;
}

static double squares(const data *d)
{
    double s = 0.0;
    for (int i = 0; i < d->n; i++)
        for (int f = 0; f < d->p; f++) s += d->a[i][f] * d->a[i][f];
    return s;
}

/* Every measure of mpicka for (x, y), in the order of the naive struct. */
static void mpicka_measures(const data *x, const data *y, double alpha, naive *r, int64_t *rx)
{
    double cxx[PMAX * PMAX], cyy[PMAX * PMAX], cxy[PMAX * PMAX], out[2];
    cov(x, x, cxx), cov(y, y, cyy), cov(x, y, cxy);
    mk_mlayer lx, ly;
    ck_assert_int_eq(mk_mlayer_init(&lx, x->p, cxx, squares(x)), MK_OK);
    ck_assert_int_eq(mk_mlayer_init(&ly, y->p, cyy, squares(y)), MK_OK);
    *rx = lx.rank;
    mk_measure m = {.kind = MK_MEASURE_CCA, .alpha = alpha};
    ck_assert_int_eq(mk_measure_pair(&m, 1, &lx, &ly, cxy, out), MK_OK);
    r->cca_mean = out[0], r->cca_r2 = out[1];
    m.kind = MK_MEASURE_PWCCA;
    ck_assert_int_eq(mk_measure_pair(&m, 1, &lx, &ly, cxy, &r->pwcca), MK_OK);
    m.kind = MK_MEASURE_PROCRUSTES;
    ck_assert_int_eq(mk_measure_pair(&m, 1, &lx, &ly, cxy, &r->procrustes), MK_OK);
    m.kind = MK_MEASURE_SHAPE;
    ck_assert_int_eq(mk_measure_pair(&m, 1, &lx, &ly, cxy, &r->shape), MK_OK);
    m.kind = MK_MEASURE_REGRESSION;
    ck_assert_int_eq(mk_measure_pair(&m, 1, &lx, &ly, cxy, out), MK_OK);
    r->y_from_x = out[0], r->x_from_y = out[1];
    mk_mlayer_free(&lx);
    mk_mlayer_free(&ly);
}

static void assert_close(const naive *a, const naive *b, double tol)
{
    const double *pa = &a->cca_mean, *pb = &b->cca_mean;
    for (int k = 0; k < 7; k++) ck_assert_msg(fabs(pa[k] - pb[k]) <= tol, "measure %d: %.17g vs %.17g", k, pa[k], pb[k]);
}

static void base(uint64_t *st, double b[NMAX][3])
{
    for (int i = 0; i < NMAX; i++)
        for (int k = 0; k < 3; k++) b[i][k] = tu_normal(st);
}

START_TEST(every_measure_matches_the_naive_formulas)
{
    uint64_t st = 11;
    double b[NMAX][3];
    base(&st, b);
    for (int trial = 0; trial < 4; trial++) {
        data x, y;
        make(&x, 40, 4 + trial % 2, &st, b);
        make(&y, 40, 6, &st, b);
        int64_t rx;
        for (int a = 0; a < 3; a++) {
            naive got, want = naive_measures(&x, &y, a * 0.4);
            mpicka_measures(&x, &y, a * 0.4, &got, &rx);
            assert_close(&got, &want, 1e-11);
            ck_assert_int_eq(rx, x.p);
        }
    }
}
END_TEST

/* A duplicated feature is dropped by the rank cut: every measure but the
 * two that see the feature's weight (Procrustes, shape with alpha > 0)
 * equals the layer's without it. */
START_TEST(a_duplicated_feature_counts_once)
{
    uint64_t st = 3;
    double b[NMAX][3];
    base(&st, b);
    data x, y, dup;
    make(&x, 30, 4, &st, b);
    make(&y, 30, 5, &st, b);
    dup = x;
    dup.p = 5;
    for (int i = 0; i < x.n; i++) dup.a[i][4] = x.a[i][1];
    naive got, want = naive_measures(&x, &y, 0.0);
    int64_t rank;
    mpicka_measures(&dup, &y, 0.0, &got, &rank);
    ck_assert_int_eq(rank, 4);
    ck_assert(fabs(got.cca_mean - want.cca_mean) < 1e-11 && fabs(got.cca_r2 - want.cca_r2) < 1e-11);
    ck_assert(fabs(got.y_from_x - want.y_from_x) < 1e-11 && fabs(got.shape - want.shape) < 1e-11);
}
END_TEST

START_TEST(a_constant_layer_gives_nan)
{
    uint64_t st = 5;
    double b[NMAX][3];
    base(&st, b);
    data x, y;
    make(&x, 20, 3, &st, b);
    make(&y, 20, 2, &st, b);
    for (int i = 0; i < y.n; i++) y.a[i][0] = 0.1, y.a[i][1] = 0.3; /* means off by rounding */
    naive got;
    int64_t rank;
    mpicka_measures(&x, &y, 1.0, &got, &rank);
    const double *v = &got.cca_mean;
    for (int k = 0; k < 7; k++) ck_assert_msg(isnan(v[k]), "measure %d is %g", k, v[k]);
}
END_TEST

START_TEST(names_and_outputs)
{
    const char *names[2];
    ck_assert_int_eq(mk_measure_outputs(MK_MEASURE_CKA, names), 0);
    ck_assert_int_eq(mk_measure_outputs(MK_MEASURE_CCA, names), 2);
    ck_assert_str_eq(names[1], "cca_r2");
    ck_assert_int_eq(mk_measure_outputs(MK_MEASURE_SHAPE, names), 1);
    ck_assert_str_eq(names[0], "shape");
    ck_assert_str_eq(mk_measure_names[MK_MEASURE_REGRESSION], "regression");
    ck_assert_ptr_null(mk_measure_names[MK_MEASURE_KINDS]);
}
END_TEST

/* The exact sums of 4 layers of 40 examples, x against itself. */
static double *four_layers(mk_exact *e, uint64_t *st)
{
    int64_t n = 40, p[4] = {5, 4, 6, 3};
    ck_assert_int_eq(mk_exact_init(e, 4, p, 0, n, MK_PREC_FLOAT64), MK_OK);
    double x[40 * 6], blk[40 * 6], mean[3 * 6];
    for (int l = 0; l < 4; l++) {
        for (int k = 0; k < n * p[l]; k++) x[k] = tu_uniform(st) + (k % p[l] ? 0.5 * x[k - 1] : 0.0) + l;
        mk_centre(x, 0, n, p[l], MK_PREC_FLOAT64, mean, blk, NULL);
        mk_exact_put(e, l, blk, mean, n);
    }
    double *sums = malloc((size_t)mk_exact_len(e) * sizeof *sums);
    mk_exact_batch(e, n, sums);
    return sums;
}

/* Rank r of 3 computes the pairs k = r, r + 3, ...: its cells and no
 * other, and the three shares together give the bits of one. */
START_TEST(three_shares_give_the_bits_of_one)
{
    uint64_t st = 11;
    mk_exact e;
    double *sums = four_layers(&e, &st);
    mk_measure ms[3] = {{.kind = MK_MEASURE_CCA}, {.kind = MK_MEASURE_PWCCA}, {.kind = MK_MEASURE_PROCRUSTES}};
    enum { OUTS = 4, CELLS = 16 };
    double one[OUTS * CELLS], three[OUTS * CELLS], part[OUTS * CELLS];
    int64_t ranks[4], pairs = 0;
    mk_measure_tally t;
    mk_measure_share all = {4, 4, 0, 0, 1};
    ck_assert_int_eq(mk_measures_from_exact(&e, sums, 40, NULL, &all, ms, 3, NULL, one, ranks, &t), MK_OK);
    ck_assert(t.pairs == 16 && t.layers == 4 && t.failed == -1);
    mk_measures_mirror(ms, 3, 4, 4, one);
    for (int r = 0; r < 3; r++) {
        mk_measure_share sh = {4, 4, 0, r, 3};
        for (int k = 0; k < OUTS * CELLS; k++) part[k] = -7.0;
        ck_assert_int_eq(mk_measures_from_exact(&e, sums, 40, NULL, &sh, ms, 3, NULL, part, ranks, &t), MK_OK);
        ck_assert_int_eq(mk_measure_share_pairs(&sh), r == 0 ? 6 : 5);
        pairs += t.pairs;
        for (int o = 0; o < OUTS; o++)
            for (int k = 0; k < CELLS; k++) {
                int mine = k % 3 == r, below = k / 4 > k % 4, symmetric = o != 2; /* pwcca is not */
                if (!mine || (below && symmetric)) ck_assert_msg(part[o * CELLS + k] == -7.0, "share %d wrote cell %d", r, k);
                else three[o * CELLS + k] = part[o * CELLS + k];
            }
    }
    ck_assert_int_eq(pairs, 16);
    mk_measures_mirror(ms, 3, 4, 4, three);
    ck_assert(memcmp(one, three, sizeof one) == 0);
    /* only symmetric measures: a pair below the diagonal gives nothing, and is not counted */
    ck_assert_int_eq(mk_measures_from_exact(&e, sums, 40, NULL, &all, ms, 1, NULL, one, ranks, &t), MK_OK);
    ck_assert_int_eq(t.pairs, 10);
    mk_measure_share last = {4, 4, 0, 15, 16}; /* the pair (3, 3) alone: layer 3 alone */
    ck_assert_int_eq(mk_measures_from_exact(&e, sums, 40, NULL, &last, ms, 1, NULL, one, ranks, &t), MK_OK);
    ck_assert(t.pairs == 1 && t.layers == 1 && ranks[3] > 0 && ranks[0] == -1);
    free(sums);
    mk_exact_free(&e);
}
END_TEST

/* A failure is the first failed task as one process would meet them:
 * layer l is l, pair k is 4 + k. */
START_TEST(a_failure_names_its_task)
{
    uint64_t st = 12;
    mk_exact e;
    double *sums = four_layers(&e, &st);
    mk_measure ms[1] = {{.kind = MK_MEASURE_CCA}};
    double values[2 * 16];
    int64_t ranks[4];
    mk_measure_tally t;
    sums[(e.off[2] * (2 * e.P - e.off[2] + 1)) / 2] = NAN; /* S's first diagonal entry of layer 2 */
    mk_measure_share all = {4, 4, 0, 0, 1}, share = {4, 4, 0, 1, 3}; /* 1, 4, 7, 10, 13: layer 2 in (2, 2) */
    ck_assert_int_eq(mk_measures_from_exact(&e, sums, 40, NULL, &all, ms, 1, NULL, values, ranks, &t), MK_EDATA);
    ck_assert_int_eq(t.failed, 2);
    mk_measure_share none = {4, 4, 0, 0, 16}; /* the pair (0, 0) alone never meets layer 2 */
    ck_assert_int_eq(mk_measures_from_exact(&e, sums, 40, NULL, &none, ms, 1, NULL, values, ranks, &t), MK_OK);
    ck_assert_int_eq(mk_measures_from_exact(&e, sums, 40, NULL, &share, ms, 1, NULL, values, ranks, &t), MK_EDATA);
    ck_assert_int_eq(t.failed, 2);
    free(sums);
    mk_exact_free(&e);
}
END_TEST

TU_MAIN("measures", 0,
        TU_CASE("measures", NULL, NULL, 0, NULL, every_measure_matches_the_naive_formulas,
                a_duplicated_feature_counts_once, a_constant_layer_gives_nan, names_and_outputs,
                three_shares_give_the_bits_of_one, a_failure_names_its_task))
