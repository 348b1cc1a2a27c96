#include "mpicka/output.h"

#include "mpicka/ckafile.h"
#include "mpicka/csv.h"
#include "mpicka/h5write.h"
#include "mpicka/log.h"
#include "mpicka/gram_measures.h"
#include "mpicka/measure_sums.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <hdf5.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#ifndef MPICKA_VERSION
#define MPICKA_VERSION "unknown"
#endif

/* Remembers a folder made now, so that a failed run can remove it again. */
static mk_err remember(mk_outdir *od, const char *path)
{
    char **grown = realloc(od->created, (size_t)(od->ncreated + 1) * sizeof *grown);
    char *copy = strdup(path);
    if (grown) od->created = grown;
    if (!grown || !copy) {
        free(copy);
        return mk_fail(MK_ENOMEM, "out of memory");
    }
    od->created[od->ncreated++] = copy;
    return MK_OK;
}

static mk_err make_dirs(mk_outdir *od, const char *dir)
{
    char path[4096];
    if (snprintf(path, sizeof path, "%s", dir) >= (int)sizeof path)
        return mk_fail(MK_ECONFIG, "output folder name is too long: '%s'", dir);
    for (char *s = path + 1;; s++) {
        if (*s && *s != '/') continue;
        char end = *s;
        *s = '\0';
        if (mkdir(path, 0777) == 0) MK_TRY(remember(od, path));
        else if (errno != EEXIST) return mk_fail(MK_EIO, "cannot create output folder '%s': %s", path, strerror(errno));
        if (!end) return MK_OK;
        *s = '/';
    }
}

/* Whoever holds the lock wrote "host pid" into it. */
static void lock_holder(int fd, char *who, size_t size)
{
    ssize_t n = pread(fd, who, size - 1, 0);
    who[n > 0 ? n : 0] = '\0';
    who[strcspn(who, "\n")] = '\0';
    if (!*who) snprintf(who, size, "unknown");
}

/* Whether fd is still the file that path names. A run that ends unlinks the
 * lock file before it lets go, so a lock taken meanwhile on the old, unlinked
 * file guards nothing: the taker must try again on the file the path names. */
static int still_named(int fd, const char *path)
{
    struct stat held, named;
    return fstat(fd, &held) == 0 && stat(path, &named) == 0 && held.st_dev == named.st_dev &&
           held.st_ino == named.st_ino;
}

/* Opens and locks path into od->lock; on refusal od->lock is closed (-1), so
 * that mk_output_release never removes the lock file of another run. */
static mk_err take_lock(mk_outdir *od, const char *dir, const char *path)
{
    char who[256];
    for (int tries = 0; tries < 100; tries++) {
        od->lock = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0666);
        if (od->lock < 0) return mk_fail(MK_EIO, "cannot create the lock '%s': %s", path, strerror(errno));
        struct flock fl = {.l_type = F_WRLCK, .l_whence = SEEK_SET};
        if (fcntl(od->lock, F_SETLK, &fl) != 0) {
            lock_holder(od->lock, who, sizeof who);
            close(od->lock);
            od->lock = -1;
            return mk_fail(MK_ECONFIG, "output folder '%s' is in use by another mpicka run (%s, per %s); wait for "
                           "it to end or choose another output folder", dir, who, path);
        }
        if (still_named(od->lock, path)) return MK_OK;
        close(od->lock); /* the run that held it has just ended: lock the new file */
        od->lock = -1;
    }
    return mk_fail(MK_EIO, "cannot take the lock '%s': it is replaced again and again", path);
}

/* One run per output folder: a POSIX record lock on OUTPUT/.mpicka.lock,
 * which the system drops when the process ends, however it ends (a lock file
 * left by a killed run is taken over); a run that ends removes it. */
static mk_err lock_folder(mk_outdir *od, const char *dir)
{
    char path[4200], who[256];
    snprintf(path, sizeof path, "%s/.mpicka.lock", dir);
    MK_TRY(take_lock(od, dir, path));
    char host[128] = "?";
    gethostname(host, sizeof host - 1);
    int len = snprintf(who, sizeof who, "host %s, process %ld\n", host, (long)getpid());
    if (ftruncate(od->lock, 0) != 0 || pwrite(od->lock, who, (size_t)len, 0) != len)
        return mk_fail(MK_EIO, "cannot write the lock '%s': %s", path, strerror(errno));
    return MK_OK;
}

/* The temporary files of an earlier run that was killed while writing: with
 * the lock held, nothing else writes them. */
static void remove_stale(const char *dir, const char *plot_file)
{
    char plot_tmp[300], many_tmp[320];
    const char *file = plot_file ? plot_file : "", *dot = strrchr(file, '.');
    int stem = dot && dot != file ? (int)(dot - file) : (int)strlen(file);
    snprintf(plot_tmp, sizeof plot_tmp, ".%s.tmp.", file);
    /* and the measures' small multiples beside it: cka.png, cka_measures.png */
    snprintf(many_tmp, sizeof many_tmp, ".%.*s_measures%s.tmp.", stem, file, file + stem);
    const char *prefixes[] = {".cka.h5.tmp.",       ".cka.csv.tmp.", ".measures.csv.tmp.",
                              "checkpoint.h5.tmp.", plot_tmp,        many_tmp};
    DIR *d = opendir(dir);
    struct dirent *e;
    int removed = 0;
    while (d && (e = readdir(d)) != NULL) {
        for (size_t i = 0; i < sizeof prefixes / sizeof *prefixes; i++) {
            size_t n = strlen(prefixes[i]);
            if (strncmp(e->d_name, prefixes[i], n) || strspn(e->d_name + n, "0123456789") != strlen(e->d_name + n))
                continue;
            char path[4600];
            snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
            removed += unlink(path) == 0;
            break;
        }
    }
    if (d) closedir(d);
    if (removed) mk_warn("removed %d temporary file(s) that an interrupted run left in '%s'", removed, dir);
}

mk_err mk_output_prepare(const char *dir, const char *plot_file, mk_outdir *od)
{
    struct stat st;
    memset(od, 0, sizeof *od);
    od->lock = -1;
    MK_TRY(make_dirs(od, dir));
    if (stat(dir, &st) != 0 || !S_ISDIR(st.st_mode))
        return mk_fail(MK_EIO, "output '%s' exists and is not a folder", dir);
    if (access(dir, W_OK | X_OK) != 0)
        return mk_fail(MK_EIO, "output folder '%s' is not writable: %s", dir, strerror(errno));
    MK_TRY(lock_folder(od, dir));
    remove_stale(dir, plot_file);
    return MK_OK;
}

void mk_output_release(mk_outdir *od, const char *dir, int failed)
{
    if (od->lock >= 0) { /* unlinked while still held: see still_named */
        char path[4200];
        snprintf(path, sizeof path, "%s/.mpicka.lock", dir);
        unlink(path);
        close(od->lock);
    }
    for (int i = od->ncreated - 1; i >= 0; i--) {
        if (failed) rmdir(od->created[i]); /* only when empty: never a file of anyone's */
        free(od->created[i]);
    }
    free(od->created);
    memset(od, 0, sizeof *od);
    od->lock = -1;
}

/* ---- cka.h5 ---- */

static void write_matrix(mk_h5w *h, const char *name, const double *v, int rows, int cols)
{
    hsize_t dims[2] = {(hsize_t)rows, (hsize_t)cols};
    mk_h5w_dataset(h, name, H5T_IEEE_F64LE, H5T_NATIVE_DOUBLE, cols ? 2 : 1, dims, v);
}

static void write_strings(mk_h5w *h, const char *name, const char *const *s, int count)
{
    hsize_t dim = (hsize_t)count;
    hid_t type = mk_h5w_utf8_type();
    mk_h5w_dataset(h, name, type, type, 1, &dim, s);
    H5Tclose(type);
}

static void *h5w_alloc(mk_h5w *h, size_t count, size_t size)
{
    void *p = calloc(count ? count : 1, size);
    if (!p && !h->err) h->err = mk_fail(MK_ENOMEM, "out of memory writing '%s'", h->path);
    return p;
}

/* The layer paths of flat layers first .. first+count-1. */
static const char **layer_paths(const mk_lineup *lu, int first, int count)
{
    const char **names = malloc((size_t)(count ? count : 1) * sizeof *names);
    for (int l = 0; names && l < count; l++) names[l] = mk_lineup_layer(lu, first + l, NULL)->path;
    return names;
}

static void write_names(mk_h5w *h, const char *name, const mk_lineup *lu, int first, int count)
{
    const char **names = layer_paths(lu, first, count);
    if (!names && !h->err) h->err = mk_fail(MK_ENOMEM, "cannot list layer names");
    if (names) write_strings(h, name, names, count);
    free(names);
}

static void attr_int(mk_h5w *h, const char *name, int64_t v)
{
    mk_h5w_attr(h, name, H5T_STD_I64LE, H5T_NATIVE_INT64, &v);
}

void mk_output_describe(const mk_config *cfg, int64_t groups, char *buf, size_t size)
{
    static const char *const what[] = {"minibatch CKA, unbiased HSIC_1", "minibatch CKA, biased HSIC_0",
                                       "exact CKA of all examples"};
    int off = snprintf(buf, size, "%s", what[cfg->estimator]);
    if (cfg->estimator == MK_EST_EXACT)
        off += snprintf(buf + off, size - (size_t)off, ", %s", cfg->debiased ? "unbiased HSIC_1 (debiased)"
                                                                          : "biased HSIC_0 (Kornblith et al.)");
    if (cfg->kernel == MK_KERNEL_RBF)
        off += snprintf(buf + off, size - (size_t)off, ", RBF kernel (bandwidth %g x median distance)",
                        cfg->rbf_threshold);
    else
        off += snprintf(buf + off, size - (size_t)off, ", linear kernel");
    if (groups) off += snprintf(buf + off, size - (size_t)off, "; jackknife over %lld groups", (long long)groups);
    if (cfg->permutations)
        snprintf(buf + off, size - (size_t)off, "; %lld permutations", (long long)cfg->permutations);
}

/* /meta: how the matrix was made, as attributes of a group. */
static void write_meta(mk_h5w *h, const mk_result *r)
{
    static const char *const estimators[] = {"hsic1", "hsic0", "exact"};
    const mk_config *cfg = r->cfg;
    char text[256];
    mk_output_describe(cfg, r->groups, text, sizeof text);
    hid_t gid = H5Gcreate2(h->fid, "meta", H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    mk_h5w_check(h, gid, "/meta");
    if (gid < 0) return;
    mk_h5w g = {gid, h->path, h->err, NULL}; /* the attributes go to the group */
    mk_h5w_attr_str(&g, "estimator", estimators[cfg->estimator]);
    mk_h5w_attr_str(&g, "kernel", cfg->kernel == MK_KERNEL_RBF ? "rbf" : "linear");
    mk_h5w_attr(&g, "rbf_threshold", H5T_IEEE_F64LE, H5T_NATIVE_DOUBLE, &cfg->rbf_threshold);
    int64_t debiased = cfg->debiased, perms = cfg->permutations;
    attr_int(&g, "debiased", debiased);
    attr_int(&g, "jackknife_groups", r->groups);
    attr_int(&g, "permutations", perms);
    mk_h5w_attr_str(&g, "description", text);
    h->err = g.err;
    H5Gclose(gid);
}

/* The models' names (or files) joined by ", " (malloc'd). */
static char *joined(const mk_lineup *lu, int files)
{
    size_t len = 1;
    for (int k = 0; k < lu->nmodels; k++) len += strlen(files ? lu->models[k].file : lu->models[k].name) + 2;
    char *s = malloc(len);
    for (int k = 0, off = 0; s && k < lu->nmodels; k++)
        off += snprintf(s + off, len - (size_t)off, "%s%s", k ? ", " : "", files ? lu->models[k].file : lu->models[k].name);
    return s;
}

static void write_attrs(mk_h5w *h, const mk_result *r)
{
    const mk_plan *p = r->plan;
    attr_int(h, "n", p->n);
    attr_int(h, "batch_size", p->m);
    attr_int(h, "batches", p->total);
    attr_int(h, "batches_per_epoch", p->per_epoch);
    attr_int(h, "dropped_per_epoch", p->dropped);
    attr_int(h, "epochs", p->epochs);
    attr_int(h, "shuffle", p->shuffle);
    attr_int(h, "shuffle_block", p->block);
    mk_h5w_attr(h, "seed", H5T_STD_U64LE, H5T_NATIVE_UINT64, &p->seed);
    attr_int(h, "self", !r->lu->cross);
    attr_int(h, "ranks", r->nranks);
    attr_int(h, "threads", r->threads);
    attr_int(h, "blas_threads", 1);
    mk_h5w_attr(h, "seconds", H5T_IEEE_F64LE, H5T_NATIVE_DOUBLE, &r->seconds);
    mk_h5w_attr(h, "seconds_total", H5T_IEEE_F64LE, H5T_NATIVE_DOUBLE, &r->seconds_total);
    attr_int(h, "segments", r->segments);
    mk_h5w_attr_str(h, "precision", r->cfg->precision == MK_PREC_FLOAT32 ? "float32" : "float64");
    char text[256];
    mk_output_describe(r->cfg, r->groups, text, sizeof text);
    mk_h5w_attr_str(h, "estimator", text);
    mk_h5w_attr_str(h, "version", MPICKA_VERSION);
    mk_h5w_attr_str(h, "config", r->cfg->resolved);
    const mk_lineup *lu = r->lu;
    const mk_model *y = &lu->models[lu->cross];
    char *names = lu->listed ? joined(lu, 0) : NULL, *files = lu->listed ? joined(lu, 1) : NULL;
    if (lu->listed && (!names || !files) && !h->err) h->err = mk_fail(MK_ENOMEM, "out of memory writing '%s'", h->path);
    mk_h5w_attr_str(h, "x_name", names ? names : lu->models[0].name);
    mk_h5w_attr_str(h, "y_name", names ? names : y->name);
    mk_h5w_attr_str(h, "x_file", files ? files : lu->models[0].file);
    mk_h5w_attr_str(h, "y_file", files ? files : y->file);
    free(names);
    free(files);
}

/* For each of the K layers every model has, the model-by-model matrix of
 * src (L by L) at that layer: K by N by N. */
static double *matched_cube(mk_h5w *h, const mk_lineup *lu, const double *src, int K, const int *index)
{
    double *cube = h5w_alloc(h, (size_t)K * lu->nmodels * lu->nmodels, sizeof *cube);
    if (cube) mk_lineup_matched_cube(lu, src, K, index, cube);
    return cube;
}

/* A models result: who the blocks are, and the same layer across the models. */
static void write_models(mk_h5w *h, const mk_result *r)
{
    const mk_lineup *lu = r->lu;
    int N = lu->nmodels, K = 0, *index = NULL;
    attr_int(h, "models", N);
    const char **names = h5w_alloc(h, (size_t)N, sizeof *names), **files = h5w_alloc(h, (size_t)N, sizeof *files);
    int64_t *offsets = h5w_alloc(h, (size_t)N + 1, sizeof *offsets);
    mk_err err = mk_lineup_matched(lu, &K, &index);
    if (err && !h->err) h->err = err;
    if (names && files && offsets && !err) {
        for (int k = 0; k < N; k++) names[k] = lu->models[k].name, files[k] = lu->models[k].file;
        for (int k = 0; k <= N; k++) offsets[k] = lu->offset[k];
        write_strings(h, "model_names", names, N);
        write_strings(h, "model_files", files, N);
        hsize_t dim = (hsize_t)N + 1, dims[3] = {(hsize_t)K, (hsize_t)N, (hsize_t)N};
        mk_h5w_dataset(h, "model_offsets", H5T_STD_I64LE, H5T_NATIVE_INT64, 1, &dim, offsets);
        const char **matched = h5w_alloc(h, (size_t)K, sizeof *matched);
        for (int k = 0; matched && k < K; k++) matched[k] = mk_lineup_layer(lu, index[k * N], NULL)->path;
        if (matched) write_strings(h, "matched_layers", matched, K);
        free(matched);
        const double *src[3] = {r->cka, r->stderr_, r->pvalue};
        const char *dset[3] = {"cka_matched", "cka_matched_stderr", "cka_matched_pvalue"};
        for (int m = 0; m < 3 && K > 0; m++) {
            double *cube = src[m] ? matched_cube(h, lu, src[m], K, index) : NULL;
            if (cube) mk_h5w_dataset(h, dset[m], H5T_IEEE_F64LE, H5T_NATIVE_DOUBLE, 3, dims, cube);
            free(cube);
        }
    }
    free(names);
    free(files);
    free(offsets);
    free(index);
}

/* ---- the measures beyond CKA ---- */

static const char *measure_text(const char *name)
{
    static const char *const text[][2] = {
        {"cca_mean", "mean canonical correlation over min(rank x, rank y) (rho-bar, Kornblith et al. 2019)"},
        {"cca_r2", "mean squared canonical correlation over min(rank x, rank y) (R^2_CCA, Kornblith et al. 2019)"},
        {"svcca", "SVCCA (Raghu et al. 2017): mean canonical correlation of each layer's leading principal "
                  "components"},
        {"pwcca", "PWCCA (Morcos et al. 2018): canonical correlations weighted by the projection of the layer's "
                  "features on each canonical variate (x's side unless y has the lower rank)"},
        {"procrustes", "Procrustes distance, 2 - 2 |X^T Y|_* / (|X|_F |Y|_F) (Ding et al. 2021): 0 = the same up to "
                       "rotation and scale, at most 2"},
        {"shape", "angular shape metric (Williams et al. 2021, netrep) with partial whitening alpha, in radians "
                  "from 0 to pi/2: a distance"},
        {"regression_y_from_x", "R^2 of the least-squares fit (with intercept) of y's features from x's"},
        {"regression_x_from_y", "R^2 of the least-squares fit (with intercept) of x's features from y's"},
        {"rsa", "RSA (rsatoolbox): correlation of the two layers' RDMs (upper triangles) in each minibatch, averaged "
                "over the minibatches: -1 to 1"},
        {"mutual_knn", "mutual k-NN alignment (Huh et al. 2024, platonic-rep): mean share of each example's k "
                       "nearest neighbours (cosine) common to both layers, per minibatch, averaged: 0 to 1"},
        {"cknna", "CKNNA (Huh et al. 2024, platonic-rep): CKA (unbiased HSIC) restricted to mutual k nearest "
                  "neighbours, per minibatch, averaged"},
        {"jaccard", "k-NN Jaccard similarity (Klabunde et al.): mean |N_x n N_y| / |N_x u N_y| of each example's "
                    "k nearest neighbours, per minibatch, averaged: 0 to 1"},
    };
    for (size_t k = 0; k < sizeof text / sizeof *text; k++)
        if (!strcmp(text[k][0], name)) return text[k][1];
    return "";
}

/* The parameters of a measure from the Grams. */
static void gram_attrs(mk_h5w *d, const mk_measure *ms)
{
    if (ms->kind == MK_MEASURE_RSA) {
        mk_h5w_attr_str(d, "method", ms->spearman ? "spearman" : "pearson");
        mk_h5w_attr_str(d, "distance", ms->correlation ? "correlation" : "euclidean");
    } else if (mk_gram_measure(ms->kind)) {
        attr_int(d, "k", ms->k);
    }
}

/* /measures/NAME_stderr: the jackknife standard errors of a Gram measure. */
static void write_stderr(mk_h5w *g, const char *name, const double *se, int nx, int ny, const mk_measure *ms)
{
    char key[128];
    snprintf(key, sizeof key, "%s_stderr", name);
    write_matrix(g, key, se, nx, ny);
    hid_t did = g->err ? -1 : H5Dopen2(g->fid, key, H5P_DEFAULT);
    mk_h5w_check(g, did, key);
    if (did < 0) return;
    mk_h5w d = {did, g->path, g->err, NULL};
    mk_h5w_attr_str(&d, "measure", mk_measure_names[ms->kind]);
    mk_h5w_attr_str(&d, "description", "jackknife standard error over the groups of minibatches (as cka_stderr)");
    gram_attrs(&d, ms);
    g->err = d.err;
    H5Dclose(did);
}

/* A models result: /measures/NAME_matched (and NAME_matched_stderr), the
 * same layer across the models as /cka_matched, from the grid's cell at. */
static void write_matched(mk_h5w *g, const mk_result *r, const char *name, size_t at, int se)
{
    const mk_lineup *lu = r->lu;
    int K = 0, *index = NULL, N = lu->nmodels;
    if (!lu->listed || g->err) return;
    mk_err err = mk_lineup_matched(lu, &K, &index);
    if (err) g->err = err;
    hsize_t dims[3] = {(hsize_t)K, (hsize_t)N, (hsize_t)N};
    const double *src[2] = {r->measures + at, se ? r->measures_stderr + at : NULL};
    for (int k = 0; k < 2 && !err && K > 0; k++) {
        double *cube = src[k] ? matched_cube(g, lu, src[k], K, index) : NULL;
        char key[128];
        snprintf(key, sizeof key, "%s_matched%s", name, k ? "_stderr" : "");
        if (cube) mk_h5w_dataset(g, key, H5T_IEEE_F64LE, H5T_NATIVE_DOUBLE, 3, dims, cube);
        free(cube);
    }
    free(index);
}

/* /measures/NAME, rows by cols, with the measure and its parameters as
 * attributes; /measures itself has the eigenvalue cut. */
static void write_measures(mk_h5w *h, const mk_result *r, int nx, int ny)
{
    const mk_config *cfg = r->cfg;
    hid_t gid = H5Gcreate2(h->fid, "measures", H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    mk_h5w_check(h, gid, "/measures");
    if (gid < 0) return;
    mk_h5w g = {gid, h->path, h->err, NULL};
    double eps = MK_MEASURE_EPS;
    mk_h5w_attr(&g, "eps", H5T_IEEE_F64LE, H5T_NATIVE_DOUBLE, &eps);
    for (int m = 0, o = 0; m < cfg->nmeasures; m++) {
        const mk_measure *ms = &cfg->measures[m];
        const char *names[2];
        int nout = mk_measure_outputs(ms->kind, names);
        for (int q = 0; q < nout; q++, o++) {
            write_matrix(&g, names[q], r->measures + (size_t)o * nx * ny, nx, ny);
            hid_t did = g.err ? -1 : H5Dopen2(gid, names[q], H5P_DEFAULT);
            mk_h5w_check(&g, did, names[q]);
            if (did < 0) continue;
            mk_h5w d = {did, h->path, g.err, NULL};
            mk_h5w_attr_str(&d, "measure", mk_measure_names[ms->kind]);
            mk_h5w_attr_str(&d, "description", measure_text(names[q]));
            if (ms->kind == MK_MEASURE_SVCCA) {
                mk_h5w_attr(&d, "keep", H5T_IEEE_F64LE, H5T_NATIVE_DOUBLE, &ms->keep);
                attr_int(&d, "k", ms->k);
            }
            if (ms->kind == MK_MEASURE_SHAPE) mk_h5w_attr(&d, "alpha", H5T_IEEE_F64LE, H5T_NATIVE_DOUBLE, &ms->alpha);
            gram_attrs(&d, ms);
            g.err = d.err;
            H5Dclose(did);
            int se = r->measures_stderr && mk_gram_measure(ms->kind); /* the others have none */
            if (se) write_stderr(&g, names[q], r->measures_stderr + (size_t)o * nx * ny, nx, ny, ms);
            write_matched(&g, r, names[q], (size_t)o * nx * ny, se);
        }
    }
    h->err = g.err;
    H5Gclose(gid);
}

static mk_err write_h5(const mk_result *r, const char *path)
{
    int nx = mk_lineup_rows(r->lu), ny = mk_lineup_cols(r->lu);
    mk_h5w h;
    MK_TRY(mk_h5w_create(&h, path, NULL));
    write_matrix(&h, "cka", r->cka, nx, ny);
    write_matrix(&h, "hsic_xy", r->hxy, nx, ny);
    write_matrix(&h, "hsic_xx", r->hxx, nx, 0);
    write_matrix(&h, "hsic_yy", r->hyy, ny, 0);
    if (r->stderr_) write_matrix(&h, "cka_stderr", r->stderr_, nx, ny);
    if (r->pvalue) write_matrix(&h, "cka_pvalue", r->pvalue, nx, ny);
    write_meta(&h, r);
    write_names(&h, "x_layers", r->lu, 0, nx);
    write_names(&h, "y_layers", r->lu, r->lu->cross ? nx : 0, ny);
    write_attrs(&h, r);
    if (r->lu->listed) write_models(&h, r);
    if (r->measures) write_measures(&h, r, nx, ny);
    return mk_h5w_finish(&h);
}

/* ---- cka.csv ---- */

static mk_err write_csv(const mk_result *r, const char *path)
{
    const mk_lineup *lu = r->lu;
    int nx = mk_lineup_rows(lu), ny = mk_lineup_cols(lu);
    const char **xl = layer_paths(lu, 0, nx), **yl = layer_paths(lu, lu->cross ? nx : 0, ny);
    const char **names = malloc((size_t)lu->nmodels * sizeof *names);
    FILE *f = xl && yl && names ? fopen(path, "w") : NULL;
    int failed = !f;
    if (f && lu->listed) {
        for (int k = 0; k < lu->nmodels; k++) names[k] = lu->models[k].name;
        mk_csv_models(f, lu->nmodels, names, lu->offset, xl, r->cka, r->stderr_, r->pvalue);
    } else if (f) {
        mk_csv_matrix(f, nx, ny, xl, yl, r->cka);
    }
    free(xl);
    free(yl);
    free(names);
    if (failed) return mk_fail(MK_EIO, "cannot create '%s': %s", path, strerror(errno));
    int bad = ferror(f);
    if (fclose(f) != 0 || bad) return mk_fail(MK_EIO, "cannot write '%s': %s", path, strerror(errno));
    return MK_OK;
}

/* measures.csv: one line per measure and pair of layers. */
static mk_err write_measures_csv(const mk_result *r, const char *path)
{
    const mk_lineup *lu = r->lu;
    const mk_config *cfg = r->cfg;
    int nx = mk_lineup_rows(lu), ny = mk_lineup_cols(lu), y_first = lu->cross ? nx : 0;
    FILE *f = fopen(path, "w");
    if (!f) return mk_fail(MK_EIO, "cannot create '%s': %s", path, strerror(errno));
    fputs(r->measures_stderr ? "measure,model_a,layer_a,model_b,layer_b,value,stderr\n"
                             : "measure,model_a,layer_a,model_b,layer_b,value\n", f);
    for (int m = 0, o = 0; m < cfg->nmeasures; m++) {
        const char *names[2];
        int nout = mk_measure_outputs(cfg->measures[m].kind, names);
        for (int q = 0; q < nout; q++, o++)
            for (int i = 0; i < nx; i++)
                for (int j = 0; j < ny; j++) {
                    int ka, kb;
                    const char *la = mk_lineup_layer(lu, i, &ka)->path, *lb = mk_lineup_layer(lu, y_first + j, &kb)->path;
                    const char *fields[5] = {names[q], lu->models[ka].name, la, lu->models[kb].name, lb};
                    for (int k = 0; k < 5; k++) {
                        if (k) fputc(',', f);
                        mk_csv_field(f, fields[k]);
                    }
                    fprintf(f, ",%.17g", r->measures[((size_t)o * nx + i) * ny + j]);
                    if (r->measures_stderr && mk_gram_measure(cfg->measures[m].kind))
                        fprintf(f, ",%.17g", r->measures_stderr[((size_t)o * nx + i) * ny + j]);
                    else if (r->measures_stderr)
                        fputc(',', f); /* a measure of the second moments: no standard error */
                    fputc('\n', f);
                }
    }
    int bad = ferror(f);
    if (fclose(f) != 0 || bad) return mk_fail(MK_EIO, "cannot write '%s': %s", path, strerror(errno));
    return MK_OK;
}

/* ---- both, atomically each ---- */

mk_err mk_output_write(const mk_result *r)
{
    const char *dir = r->cfg->output;
    size_t len = strlen(dir) + 64;
    mk_err err = MK_OK;
    char *h5 = mk_malloc(len, "a path", &err), *h5tmp = mk_malloc(len, "a path", &err);
    char *csv = mk_malloc(len, "a path", &err), *csvtmp = mk_malloc(len, "a path", &err);
    char *mcsv = mk_malloc(len, "a path", &err), *mcsvtmp = mk_malloc(len, "a path", &err);
    if (!err) {
        snprintf(mcsv, len, "%s/measures.csv", dir);
        snprintf(mcsvtmp, len, "%s/.measures.csv.tmp.%ld", dir, (long)getpid());
        snprintf(h5, len, "%s/cka.h5", dir);
        snprintf(csv, len, "%s/cka.csv", dir);
        snprintf(h5tmp, len, "%s/.cka.h5.tmp.%ld", dir, (long)getpid());
        snprintf(csvtmp, len, "%s/.cka.csv.tmp.%ld", dir, (long)getpid());
        err = write_h5(r, h5tmp);
    }
    if (!err) err = write_csv(r, csvtmp);
    if (!err && r->measures) err = write_measures_csv(r, mcsvtmp);
    if (!err && (rename(h5tmp, h5) != 0 || rename(csvtmp, csv) != 0 ||
                 (r->measures ? rename(mcsvtmp, mcsv) : unlink(mcsv) != 0 && errno != ENOENT)))
        err = mk_fail(MK_EIO, "cannot move the results into '%s': %s", dir, strerror(errno));
    if (err && h5tmp) unlink(h5tmp);
    if (err && csvtmp) unlink(csvtmp);
    if (err && mcsvtmp) unlink(mcsvtmp);
    free(mcsv);
    free(mcsvtmp);
    free(h5);
    free(h5tmp);
    free(csv);
    free(csvtmp);
    return err;
}

/* ---- summary ---- */

#define MK_SUMMARY_MAX_COLS 12

/* The bytes of s's first `chars` UTF-8 characters. */
static int utf8_prefix(const char *s, int chars)
{
    const unsigned char *p = (const unsigned char *)s;
    int seen = 0, bytes = 0;
    for (; p[bytes]; bytes++)
        if ((p[bytes] & 0xc0) != 0x80 && seen++ == chars) break;
    return bytes;
}

/* s in exactly `width` columns, padded on the left (right-aligned) or the
 * right; a longer s keeps its start and its end around an ellipsis
 * ("la…1.0"): layer names of one network share their start and differ at
 * their end, so neither alone tells the columns apart. Counts UTF-8
 * characters. */
static void fit(FILE *out, const char *s, int width, int right)
{
    int chars = 0;
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) chars += (*p & 0xc0) != 0x80;
    int pad = chars > width ? 0 : width - chars;
    if (right) fprintf(out, "%*s", pad, "");
    if (chars > width) {
        int head = (width - 1) / 2, tail = width - 1 - head;
        fprintf(out, "%.*s\u2026%s", utf8_prefix(s, head), s, s + utf8_prefix(s, chars - tail));
    } else {
        fputs(s, out);
    }
    if (!right) fprintf(out, "%*s", pad, "");
}

/* The head line: who is compared with whom. */
static void summary_head(FILE *out, const mk_lineup *lu)
{
    if (!lu->listed) {
        const mk_model *x = &lu->models[0], *y = &lu->models[lu->cross];
        fprintf(out, "mpicka: CKA of %s (%d layers) vs %s (%d layers)\n", x->name, x->nlayers, y->name, y->nlayers);
        return;
    }
    fprintf(out, "mpicka: CKA of %d models, %d layers in all, every layer against every other:", lu->nmodels,
            lu->nlayers);
    for (int k = 0; k < lu->nmodels; k++)
        fprintf(out, "%s %s (%d)", k ? "," : "", lu->models[k].name, lu->models[k].nlayers);
    fputc('\n', out);
}

/* A flat layer's label: its path, "model:path" in a models result. */
static const char *summary_label(const mk_lineup *lu, int f, char *buf, size_t size)
{
    int k;
    const char *path = mk_lineup_layer(lu, f, &k)->path;
    if (!lu->listed) return path;
    snprintf(buf, size, "%s:%s", lu->models[k].name, path);
    return buf;
}

void mk_output_summary(FILE *out, const mk_result *r)
{
    const mk_plan *p = r->plan;
    const mk_lineup *lu = r->lu;
    int nx = mk_lineup_rows(lu), ny = mk_lineup_cols(lu);
    summary_head(out, lu);
    char label[512];
    fprintf(out, "  n=%lld, batch_size=%lld, %lld batches over %lld epoch(s), %d rank(s) x %d thread(s), %s, %.3f s",
            (long long)p->n, (long long)p->m, (long long)p->total, (long long)p->epochs, r->nranks, r->threads,
            r->cfg->precision == MK_PREC_FLOAT32 ? "float32" : "float64", r->seconds);
    if (r->segments > 1) /* a resumed run: this segment, then the whole */
        fprintf(out, " (%.3f s over %lld segments)", r->seconds_total, (long long)r->segments);
    fputc('\n', out);
    char text[256];
    mk_output_describe(r->cfg, r->groups, text, sizeof text);
    fprintf(out, "  %s\n", text);
    if (ny > MK_SUMMARY_MAX_COLS) {
        fprintf(out, "  (%d columns, too many for this summary: see %s/cka.csv or `mpicka show %s/cka.h5`)\n", ny,
                r->cfg->output, r->cfg->output);
    } else {
        fprintf(out, "  %-24s", "");
        for (int j = 0; j < ny; j++) {
            fputc(' ', out);
            fit(out, summary_label(lu, (lu->cross ? nx : 0) + j, label, sizeof label), 6, 1);
        }
        fputc('\n', out);
        for (int i = 0; i < nx; i++) {
            fputs("  ", out);
            fit(out, summary_label(lu, i, label, sizeof label), 24, 0);
            for (int j = 0; j < ny; j++) fprintf(out, " %6.3f", r->cka[i * ny + j]);
            fputc('\n', out);
        }
    }
    if (r->measures)
        fprintf(out, "  wrote %s/cka.h5, %s/cka.csv and %s/measures.csv\n", r->cfg->output, r->cfg->output,
                r->cfg->output);
    else
        fprintf(out, "  wrote %s/cka.h5 and %s/cka.csv\n", r->cfg->output, r->cfg->output);
}

mk_err mk_output_refuse_other(const char *dir, const char *resolved, const char *how)
{
    size_t len = strlen(dir) + 16;
    char *path = malloc(len), a[512], b[512];
    if (!path) return mk_fail(MK_ENOMEM, "out of memory");
    snprintf(path, len, "%s/cka.h5", dir);
    mk_err err = MK_OK;
    if (access(path, F_OK) == 0) {
        mk_ckafile old;
        char why[1024];
        mk_err read = mk_ckafile_read(path, &old);
        const char *config = read == MK_OK ? mk_ckafile_text(&old, "config") : NULL;
        snprintf(why, sizeof why, "%s", read ? mk_errmsg() : "it stores none"); /* a FIFO, a folder, not HDF5 */
        if (!config)
            err = mk_fail(MK_ECONFIG, "output folder '%s' holds a cka.h5 whose configuration cannot be read (%s); "
                          "choose another output folder, or %s to overwrite it", dir, why, how);
        else if (mk_config_first_difference(config, resolved, a, b, sizeof a))
            err = mk_fail(MK_ECONFIG, "output folder '%s' holds the results of another configuration (it has '%s', "
                          "this run '%s'); choose another output folder, or %s to overwrite them", dir, a, b, how);
        mk_ckafile_free(&old);
    }
    free(path);
    return err;
}
