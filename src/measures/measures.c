/* The measures from a pair's centred cross-products (mpicka/measures.h).
 * Every measure is a function of M = Vx^T Cxy Vy, the cross-products in
 * the bases of the two layers' principal directions, and of the eigenvalues:
 * whitening is a division by sqrt(lam), a truncation drops rows or columns,
 * and the nuclear and Frobenius norms do not see the bases. So each layer
 * is decomposed once for all its pairs, and a pair costs two products and
 * one SVD. */
#include "mpicka/measures.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "mpicka/blas.h"

/* LAPACK's Fortran symbols, as OpenBLAS exports them (Debian ships no
 * lapacke.h with it); the hidden lengths of the character arguments last. */
extern void dsyevd_(const char *jobz, const char *uplo, const int *n, double *a, const int *lda, double *w,
                    double *work, const int *lwork, int *iwork, const int *liwork, int *info, size_t, size_t);
extern void dgesdd_(const char *jobz, const int *m, const int *n, double *a, const int *lda, double *s, double *u,
                    const int *ldu, double *vt, const int *ldvt, double *work, const int *lwork, int *iwork,
                    int *info, size_t);

const char *const mk_measure_names[] = {"cka", "cca", "svcca", "pwcca", "procrustes", "shape", "regression", "rsa",
                                        "mutual_knn", "cknna", "jaccard", NULL};
_Static_assert(sizeof mk_measure_names / sizeof *mk_measure_names == MK_MEASURE_KINDS + 1, "one name per kind");

int mk_measure_outputs(mk_measure_kind kind, const char *names[2])
{
    switch (kind) {
    case MK_MEASURE_CKA: return 0;
    case MK_MEASURE_CCA: names[0] = "cca_mean", names[1] = "cca_r2"; return 2;
    case MK_MEASURE_REGRESSION: names[0] = "regression_y_from_x", names[1] = "regression_x_from_y"; return 2;
    default: names[0] = mk_measure_names[kind]; return 1;
    }
}

/* ---- one layer ---- */

void mk_mlayer_free(mk_mlayer *l)
{
    free(l->lam);
    free(l->v);
    memset(l, 0, sizeof *l);
}

/* dsyevd on a (p by p, overwritten by the eigenvectors, one per column in
 * Fortran's order, that is one per row of a), eigenvalues ascending into w. */
static mk_err eigen(int p, double *a, double *w)
{
    int info = 0, lwork = -1, liwork = -1, iq;
    double q;
    dsyevd_("V", "U", &p, a, &p, w, &q, &lwork, &iq, &liwork, &info, 1, 1);
    lwork = (int)q;
    liwork = iq;
    mk_err err = MK_OK;
    double *work = mk_malloc((size_t)lwork * sizeof *work, "LAPACK's workspace", &err);
    int *iwork = err ? NULL : mk_malloc((size_t)liwork * sizeof *iwork, "LAPACK's workspace", &err);
    if (!err) dsyevd_("V", "U", &p, a, &p, w, work, &lwork, iwork, &liwork, &info, 1, 1);
    free(work);
    free(iwork);
    if (!err && info != 0) err = mk_fail(MK_EDATA, "a layer's covariance has no eigendecomposition (LAPACK dsyevd: %d)", info);
    return err;
}

mk_err mk_mlayer_init(mk_mlayer *l, int64_t p, const double *cov, double squares)
{
    mk_err err = MK_OK;
    memset(l, 0, sizeof *l);
    l->p = p;
    l->unit = 1.0;
    double *a = mk_malloc((size_t)(p * p) * sizeof *a, "a layer's covariance", &err);
    double *w = err ? NULL : mk_malloc((size_t)p * sizeof *w, "eigenvalues", &err);
    if (!err) l->lam = mk_malloc((size_t)p * sizeof *l->lam, "eigenvalues", &err);
    if (!err) l->v = mk_malloc((size_t)(p * p) * sizeof *l->v, "eigenvectors", &err);
    if (!err) {
        memcpy(a, cov, (size_t)(p * p) * sizeof *a);
        err = eigen((int)p, a, w);
    }
    for (int64_t i = 0; !err && i < p; i++) { /* largest first */
        l->lam[i] = w[p - 1 - i];
        for (int64_t f = 0; f < p; f++) l->v[f * p + i] = a[(p - 1 - i) * p + f];
        l->trace += cov[i * p + i];
    }
    int constant = !err && (l->lam[0] <= 0.0 || l->lam[0] <= MK_MEASURE_CONSTANT * squares);
    for (int64_t i = 0; !err && !constant && i < p; i++) l->rank += l->lam[i] > MK_MEASURE_EPS * l->lam[0];
    free(a);
    free(w);
    if (err) mk_mlayer_free(l);
    return err;
}

/* ---- singular values ---- */

/* The singular values of a (rows by cols, row-major, at least 1 by 1),
 * largest first, into s; with u, also the left singular vectors (u[f * k +
 * i] component f of vector i, k = min) and with vr the right ones likewise. */
static mk_err svd(const double *a, int rows, int cols, double *s, double *u, double *vr)
{
    /* Row-major a is Fortran's a^T (cols by rows): its left vectors are a's
     * right ones, and its right ones a's left ones. */
    int m = cols, n = rows, k = rows < cols ? rows : cols, info = 0, lwork = -1;
    const char *job = u || vr ? "S" : "N";
    mk_err err = MK_OK;
    double q, *at = mk_malloc((size_t)rows * (size_t)cols * sizeof *at, "an SVD's matrix", &err);
    double *fu = err || !(u || vr) ? NULL : mk_malloc((size_t)m * (size_t)k * sizeof *fu, "singular vectors", &err);
    double *fvt = err || !(u || vr) ? NULL : mk_malloc((size_t)k * (size_t)n * sizeof *fvt, "singular vectors", &err);
    int *iwork = err ? NULL : mk_malloc((size_t)(8 * k) * sizeof *iwork, "LAPACK's workspace", &err);
    double *work = NULL;
    if (!err) {
        memcpy(at, a, (size_t)rows * (size_t)cols * sizeof *at);
        dgesdd_(job, &m, &n, at, &m, s, fu, &m, fvt, &k, &q, &lwork, iwork, &info, 1);
        lwork = (int)q;
        work = mk_malloc((size_t)lwork * sizeof *work, "LAPACK's workspace", &err);
    }
    if (!err) dgesdd_(job, &m, &n, at, &m, s, fu, &m, fvt, &k, work, &lwork, iwork, &info, 1);
    if (!err && info != 0) err = mk_fail(MK_EDATA, "a pair's SVD did not converge (LAPACK dgesdd: %d)", info);
    for (int i = 0; !err && u && i < k; i++) /* fvt[i + j k]: row i of Fortran's V^T, column j */
        for (int j = 0; j < rows; j++) u[(size_t)j * k + i] = fvt[i + (size_t)j * k];
    for (int i = 0; !err && vr && i < k; i++)
        for (int f = 0; f < cols; f++) vr[(size_t)f * k + i] = fu[f + (size_t)i * m];
    free(at), free(fu), free(fvt), free(iwork), free(work);
    return err;
}

/* ---- the pair ---- */

typedef struct {
    const mk_mlayer *x, *y;
    double *M;      /* x->p by y->p: Vx^T Cxy Vy */
} pair;

/* The whitened block: T_ij = M_ij / sqrt(lam_x_i lam_y_j), i < kx, j < ky. */
static double *whitened(const pair *pr, int64_t kx, int64_t ky, mk_err *err)
{
    double *t = mk_malloc((size_t)(kx * ky) * sizeof *t, "a whitened block", err);
    for (int64_t i = 0; t && i < kx; i++)
        for (int64_t j = 0; j < ky; j++)
            t[i * ky + j] = pr->M[i * pr->y->p + j] / sqrt(pr->x->lam[i] * pr->y->lam[j]);
    return t;
}

/* The canonical correlations of the leading kx and ky directions, into rho
 * (min(kx, ky) of them, largest first). */
static mk_err canonical(const pair *pr, int64_t kx, int64_t ky, double *rho)
{
    mk_err err = MK_OK;
    double *t = whitened(pr, kx, ky, &err);
    if (!err) err = svd(t, (int)kx, (int)ky, rho, NULL, NULL);
    free(t);
    return err;
}

/* Mean canonical correlation and mean squared one (Kornblith et al. 2019's
 * rho-bar and R^2_CCA, over min(rx, ry) correlations) of the leading kx, ky. */
static mk_err cca(const pair *pr, int64_t kx, int64_t ky, double *mean, double *r2)
{
    int64_t k = kx < ky ? kx : ky;
    mk_err err = MK_OK;
    double *rho = mk_malloc((size_t)k * sizeof *rho, "canonical correlations", &err), s = 0.0, s2 = 0.0;
    if (!err) err = canonical(pr, kx, ky, rho);
    for (int64_t i = 0; !err && i < k; i++) s += rho[i], s2 += rho[i] * rho[i];
    *mean = s / (double)k;
    if (r2) *r2 = s2 / (double)k;
    free(rho);
    return err;
}

/* SVCCA's principal components of a layer: m->k, or the fewest whose
 * eigenvalues sum to at least m->keep of the trace; never beyond the rank. */
static int64_t svcca_keep(const mk_measure *m, const mk_mlayer *l)
{
    int64_t k = m->k;
    if (!k) {
        double total = 0.0, run = 0.0;
        for (int64_t i = 0; i < l->rank; i++) total += l->lam[i];
        for (k = 0; k < l->rank && run < m->keep * total; k++) run += l->lam[k];
    }
    return k < l->rank ? k : l->rank;
}

/* PWCCA (Morcos et al. 2018): the canonical correlations weighted by how
 * much of the layer each canonical variate accounts for, alpha_i = sum_j
 * |<h_i, z_j>| over the layer's centred features z_j, the variates h_i of
 * unit norm; the layer is x unless y has the smaller rank. <h_i, z_j> =
 * (V diag(sqrt lam) u_i)_j with u_i the singular vector on that side. */
static mk_err pwcca(const pair *pr, double *out)
{
    int64_t rx = pr->x->rank, ry = pr->y->rank, k = rx < ry ? rx : ry;
    int onx = rx <= ry;
    const mk_mlayer *l = onx ? pr->x : pr->y;
    mk_err err = MK_OK;
    double *t = whitened(pr, rx, ry, &err);
    double *rho = err ? NULL : mk_malloc((size_t)k * sizeof *rho, "canonical correlations", &err);
    double *u = err ? NULL : mk_malloc((size_t)(l->rank * k) * sizeof *u, "canonical directions", &err);
    if (!err) err = svd(t, (int)rx, (int)ry, rho, onx ? u : NULL, onx ? NULL : u);
    /* H = V_r diag(sqrt lam) U_k (p by k): column i holds <h_i, z_j> over j */
    int64_t p = l->p, r = l->rank;
    double *g = err ? NULL : mk_malloc((size_t)(p * r) * sizeof *g, "canonical loadings", &err);
    double *h = err ? NULL : mk_malloc((size_t)(p * k) * sizeof *h, "canonical loadings", &err);
    for (int64_t f = 0; !err && f < p; f++)
        for (int64_t j = 0; j < r; j++) g[f * r + j] = l->v[f * p + j] * sqrt(l->lam[j]);
    if (!err)
        cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)p, (int)k, (int)r, 1.0, g, (int)r, u, (int)k, 0.0,
                    h, (int)k);
    double num = 0.0, den = 0.0;
    for (int64_t i = 0; !err && i < k; i++) {
        double alpha = 0.0;
        for (int64_t f = 0; f < p; f++) alpha += fabs(h[f * k + i]);
        num += alpha * rho[i];
        den += alpha;
    }
    *out = num / den;
    free(t), free(rho), free(u), free(g), free(h);
    return err;
}

/* The weight of direction i of a layer in the partial whitening: alpha + (1
 * - alpha) lam_i^(-1/2), the second term 0 beyond the rank. With the layer
 * multiplied by u (l->unit), lam_i is u^2 times the data's: the weight of
 * the data is alpha + (1 - alpha) u / sqrt(lam_i), and the cosine, a ratio,
 * takes M and lam as they are. */
static double shape_weight(const mk_mlayer *l, int64_t i, double alpha)
{
    return alpha + (i < l->rank ? (1.0 - alpha) * l->unit / sqrt(l->lam[i]) : 0.0);
}

/* The nuclear norm of diag(dx) M diag(dy) over tr(Zx Cxx Zx) tr(Zy Cyy Zy)'s
 * square root, Z = V diag(d) V^T: with alpha 1 (d = 1) the cosine of the
 * angular Procrustes distance, with alpha 0 the sum of canonical
 * correlations over sqrt(rx ry). */
/* Every direction's weight, divided by the largest: the cosine does not see
 * a common factor, and u / sqrt(lam) of a layer scaled up by u = 2^256
 * would otherwise overflow its squares. */
static double *weights(const mk_mlayer *l, double alpha, mk_err *err)
{
    double *w = mk_malloc((size_t)l->p * sizeof *w, "whitening weights", err), most = 0.0;
    for (int64_t i = 0; w && i < l->p; i++) {
        w[i] = shape_weight(l, i, alpha);
        most = w[i] > most ? w[i] : most;
    }
    for (int64_t i = 0; w && i < l->p; i++) w[i] /= most;
    return w;
}

static mk_err shape_cosine(const pair *pr, double alpha, double *cosine)
{
    int64_t px = pr->x->p, py = pr->y->p, k = px < py ? px : py;
    mk_err err = MK_OK;
    double *b = mk_malloc((size_t)(px * py) * sizeof *b, "a whitened block", &err);
    double *s = err ? NULL : mk_malloc((size_t)k * sizeof *s, "singular values", &err);
    double *dx = err ? NULL : weights(pr->x, alpha, &err), *dy = err ? NULL : weights(pr->y, alpha, &err);
    double nuc = 0.0, vx = 0.0, vy = 0.0;
    for (int64_t i = 0; !err && i < px; i++) {
        vx += dx[i] * dx[i] * fmax(pr->x->lam[i], 0.0);
        for (int64_t j = 0; j < py; j++) b[i * py + j] = dx[i] * pr->M[i * py + j] * dy[j];
    }
    for (int64_t j = 0; !err && j < py; j++) vy += dy[j] * dy[j] * fmax(pr->y->lam[j], 0.0);
    if (!err) err = svd(b, (int)px, (int)py, s, NULL, NULL);
    for (int64_t i = 0; !err && i < k; i++) nuc += s[i];
    *cosine = nuc / (sqrt(vx) * sqrt(vy));
    free(b), free(s), free(dx), free(dy);
    return err;
}

/* 2 - 2 |Cxy|_* / sqrt(tr Cxx tr Cyy): Ding et al. 2021's Procrustes
 * distance (squared) of the layers scaled to unit Frobenius norm. */
static mk_err procrustes(const pair *pr, double *out)
{
    int64_t px = pr->x->p, py = pr->y->p, k = px < py ? px : py;
    mk_err err = MK_OK;
    double *s = mk_malloc((size_t)k * sizeof *s, "singular values", &err), nuc = 0.0;
    if (!err) err = svd(pr->M, (int)px, (int)py, s, NULL, NULL);
    for (int64_t i = 0; !err && i < k; i++) nuc += s[i];
    *out = 2.0 - 2.0 * nuc / sqrt(pr->x->trace * pr->y->trace);
    free(s);
    return err;
}

/* R^2 of the least-squares fit (with intercept) of y from x: tr(Cyx Cxx^+
 * Cxy) / tr Cyy, and of x from y likewise. */
static void regression(const pair *pr, double *y_from_x, double *x_from_y)
{
    int64_t px = pr->x->p, py = pr->y->p;
    double a = 0.0, b = 0.0;
    for (int64_t i = 0; i < px; i++)
        for (int64_t j = 0; j < py; j++) {
            double m2 = pr->M[i * py + j] * pr->M[i * py + j];
            if (i < pr->x->rank) a += m2 / pr->x->lam[i];
            if (j < pr->y->rank) b += m2 / pr->y->lam[j];
        }
    *y_from_x = a / pr->y->trace;
    *x_from_y = b / pr->x->trace;
}

static mk_err measure(const mk_measure *m, const pair *pr, double *out)
{
    switch (m->kind) {
    case MK_MEASURE_CCA: return cca(pr, pr->x->rank, pr->y->rank, &out[0], &out[1]);
    case MK_MEASURE_SVCCA: return cca(pr, svcca_keep(m, pr->x), svcca_keep(m, pr->y), &out[0], NULL);
    case MK_MEASURE_PWCCA: return pwcca(pr, out);
    case MK_MEASURE_PROCRUSTES: return procrustes(pr, out);
    case MK_MEASURE_SHAPE: {
        double c;
        MK_TRY(shape_cosine(pr, m->alpha, &c));
        out[0] = acos(c < 1.0 ? c : 1.0); /* c above 1 only by rounding */
        return MK_OK;
    }
    case MK_MEASURE_REGRESSION: regression(pr, &out[0], &out[1]); return MK_OK;
    default: return MK_OK;
    }
}

int mk_measure_symmetric(mk_measure_kind kind)
{
    return kind != MK_MEASURE_PWCCA && kind != MK_MEASURE_REGRESSION && kind != MK_MEASURE_CKNNA;
}

mk_err mk_measure_pair(const mk_measure *ms, int nms, const mk_mlayer *x, const mk_mlayer *y, const double *cxy,
                       double *out)
{
    const char *names[2];
    int total = 0;
    for (int k = 0; k < nms; k++) total += mk_measure_outputs(ms[k].kind, names);
    for (int k = 0; k < total; k++) out[k] = NAN;
    if (!total || !x->rank || !y->rank) return MK_OK; /* a constant layer: nothing to compare */
    int64_t px = x->p, py = y->p;
    mk_err err = MK_OK;
    double *tmp = mk_malloc((size_t)(px * py) * sizeof *tmp, "a pair's cross-products", &err);
    pair pr = {x, y, err ? NULL : mk_malloc((size_t)(px * py) * sizeof *pr.M, "a pair's cross-products", &err)};
    if (!err) { /* M once for every measure */
        cblas_dgemm(CblasRowMajor, CblasTrans, CblasNoTrans, (int)px, (int)py, (int)px, 1.0, x->v, (int)px, cxy,
                    (int)py, 0.0, tmp, (int)py);
        cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)px, (int)py, (int)py, 1.0, tmp, (int)py, y->v,
                    (int)py, 0.0, pr.M, (int)py);
    }
    free(tmp);
    for (int k = 0, o = 0; !err && k < nms; o += mk_measure_outputs(ms[k].kind, names), k++)
        err = measure(&ms[k], &pr, out + o);
    free(pr.M);
    return err;
}
