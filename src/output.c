#include "mpicka/output.h"

#include "h5write.h"

#include <errno.h>
#include <hdf5.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#ifndef MPICKA_VERSION
#define MPICKA_VERSION "unknown"
#endif

static mk_err make_dirs(const char *dir, int *created)
{
    char path[4096];
    if (snprintf(path, sizeof path, "%s", dir) >= (int)sizeof path)
        return mk_fail(MK_ECONFIG, "output folder name is too long: '%s'", dir);
    for (char *s = path + 1; *s; s++) {
        if (*s != '/') continue;
        *s = '\0';
        if (mkdir(path, 0777) != 0 && errno != EEXIST)
            return mk_fail(MK_EIO, "cannot create output folder '%s': %s", path, strerror(errno));
        *s = '/';
    }
    if (mkdir(path, 0777) == 0)
        *created = 1;
    else if (errno != EEXIST)
        return mk_fail(MK_EIO, "cannot create output folder '%s': %s", dir, strerror(errno));
    return MK_OK;
}

mk_err mk_output_prepare(const char *dir, int *created)
{
    struct stat st;
    *created = 0;
    MK_TRY(make_dirs(dir, created));
    if (stat(dir, &st) != 0 || !S_ISDIR(st.st_mode))
        return mk_fail(MK_EIO, "output '%s' exists and is not a folder", dir);
    if (access(dir, W_OK | X_OK) != 0)
        return mk_fail(MK_EIO, "output folder '%s' is not writable: %s", dir, strerror(errno));
    return MK_OK;
}

/* ---- cka.h5 ---- */

static void write_matrix(mk_h5w *h, const char *name, const double *v, int rows, int cols)
{
    hsize_t dims[2] = {(hsize_t)rows, (hsize_t)cols};
    mk_h5w_dataset(h, name, H5T_IEEE_F64LE, H5T_NATIVE_DOUBLE, cols ? 2 : 1, dims, v);
}

static void write_names(mk_h5w *h, const char *name, const mk_model *model)
{
    const char **names = malloc((size_t)model->nlayers * sizeof *names);
    if (!names) {
        if (!h->err) h->err = mk_fail(MK_ENOMEM, "cannot list layer names");
        return;
    }
    for (int l = 0; l < model->nlayers; l++) names[l] = model->layers[l].path;
    hsize_t dim = (hsize_t)model->nlayers;
    hid_t type = mk_h5w_utf8_type();
    mk_h5w_dataset(h, name, type, type, 1, &dim, names);
    H5Tclose(type);
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
    mk_h5w g = {gid, h->path, h->err}; /* the attributes go to the group */
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
    mk_h5w_attr(h, "seed", H5T_STD_U64LE, H5T_NATIVE_UINT64, &p->seed);
    attr_int(h, "self", r->y == r->x);
    attr_int(h, "ranks", r->nranks);
    attr_int(h, "blas_threads", r->blas_threads);
    mk_h5w_attr(h, "seconds", H5T_IEEE_F64LE, H5T_NATIVE_DOUBLE, &r->seconds);
    mk_h5w_attr_str(h, "precision", r->cfg->precision == MK_PREC_FLOAT32 ? "float32" : "float64");
    char text[256];
    mk_output_describe(r->cfg, r->groups, text, sizeof text);
    mk_h5w_attr_str(h, "estimator", text);
    mk_h5w_attr_str(h, "version", MPICKA_VERSION);
    mk_h5w_attr_str(h, "config", r->cfg->resolved);
    mk_h5w_attr_str(h, "x_name", r->x->name);
    mk_h5w_attr_str(h, "y_name", r->y->name);
    mk_h5w_attr_str(h, "x_file", r->x->file);
    mk_h5w_attr_str(h, "y_file", r->y->file);
}

static mk_err write_h5(const mk_result *r, const char *path)
{
    int nx = r->x->nlayers, ny = r->y->nlayers;
    H5Eset_auto2(H5E_DEFAULT, NULL, NULL); /* our messages name the file */
    mk_h5w h = {H5Fcreate(path, H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT), path, MK_OK};
    if (h.fid < 0) return mk_fail(MK_EIO, "cannot create '%s'", path);
    write_matrix(&h, "cka", r->cka, nx, ny);
    write_matrix(&h, "hsic_xy", r->hxy, nx, ny);
    write_matrix(&h, "hsic_xx", r->hxx, nx, 0);
    write_matrix(&h, "hsic_yy", r->hyy, ny, 0);
    if (r->stderr_) write_matrix(&h, "cka_stderr", r->stderr_, nx, ny);
    if (r->pvalue) write_matrix(&h, "cka_pvalue", r->pvalue, nx, ny);
    write_meta(&h, r);
    write_names(&h, "x_layers", r->x);
    write_names(&h, "y_layers", r->y);
    write_attrs(&h, r);
    if (H5Fclose(h.fid) < 0 && !h.err) h.err = mk_fail(MK_EIO, "cannot close '%s'", path);
    return h.err;
}

/* ---- cka.csv ---- */

static void csv_field(FILE *f, const char *s)
{
    if (!strpbrk(s, ",\"\n\r")) {
        fputs(s, f);
        return;
    }
    fputc('"', f);
    for (; *s; s++) {
        if (*s == '"') fputc('"', f);
        fputc(*s, f);
    }
    fputc('"', f);
}

static mk_err write_csv(const mk_result *r, const char *path)
{
    FILE *f = fopen(path, "w");
    if (!f) return mk_fail(MK_EIO, "cannot create '%s': %s", path, strerror(errno));
    int nx = r->x->nlayers, ny = r->y->nlayers;
    csv_field(f, "layer");
    for (int j = 0; j < ny; j++) {
        fputc(',', f);
        csv_field(f, r->y->layers[j].path);
    }
    fputc('\n', f);
    for (int i = 0; i < nx; i++) {
        csv_field(f, r->x->layers[i].path);
        for (int j = 0; j < ny; j++) fprintf(f, ",%.17g", r->cka[i * ny + j]);
        fputc('\n', f);
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
    if (!err) {
        snprintf(h5, len, "%s/cka.h5", dir);
        snprintf(csv, len, "%s/cka.csv", dir);
        snprintf(h5tmp, len, "%s/.cka.h5.tmp.%ld", dir, (long)getpid());
        snprintf(csvtmp, len, "%s/.cka.csv.tmp.%ld", dir, (long)getpid());
        err = write_h5(r, h5tmp);
    }
    if (!err) err = write_csv(r, csvtmp);
    if (!err && (rename(h5tmp, h5) != 0 || rename(csvtmp, csv) != 0))
        err = mk_fail(MK_EIO, "cannot move the results into '%s': %s", dir, strerror(errno));
    if (err && h5tmp) unlink(h5tmp);
    if (err && csvtmp) unlink(csvtmp);
    free(h5);
    free(h5tmp);
    free(csv);
    free(csvtmp);
    return err;
}

/* ---- summary ---- */

#define MK_SUMMARY_MAX_COLS 12

/* s in exactly `width` columns, padded on the left (right-aligned) or the
 * right; a longer s keeps its start and ends in an ellipsis ("model…"), so
 * the cut never hides how a label begins. Counts UTF-8 characters. */
static void fit(FILE *out, const char *s, int width, int right)
{
    int chars = 0, cut = 0;
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) chars += (*p & 0xc0) != 0x80;
    if (chars > width) { /* the bytes of the first width - 1 characters */
        int seen = 0;
        for (const unsigned char *p = (const unsigned char *)s; *p; p++, cut++)
            if ((*p & 0xc0) != 0x80 && seen++ == width - 1) break;
    }
    int pad = chars > width ? 0 : width - chars;
    if (right) fprintf(out, "%*s", pad, "");
    if (chars > width) fprintf(out, "%.*s\u2026", cut, s);
    else fputs(s, out);
    if (!right) fprintf(out, "%*s", pad, "");
}

void mk_output_summary(FILE *out, const mk_result *r)
{
    const mk_plan *p = r->plan;
    int nx = r->x->nlayers, ny = r->y->nlayers;
    fprintf(out, "mpicka: CKA of %s (%d layers) vs %s (%d layers)\n", r->x->name, nx, r->y->name, ny);
    fprintf(out, "  n=%lld, batch_size=%lld, %lld batches over %lld epoch(s), %d rank(s), %s, %.3f s\n",
            (long long)p->n, (long long)p->m, (long long)p->total, (long long)p->epochs, r->nranks,
            r->cfg->precision == MK_PREC_FLOAT32 ? "float32" : "float64", r->seconds);
    char text[256];
    mk_output_describe(r->cfg, r->groups, text, sizeof text);
    fprintf(out, "  %s\n", text);
    if (ny <= MK_SUMMARY_MAX_COLS) {
        fprintf(out, "  %-24s", "");
        for (int j = 0; j < ny; j++) {
            fputc(' ', out);
            fit(out, r->y->layers[j].path, 6, 1);
        }
        fputc('\n', out);
        for (int i = 0; i < nx; i++) {
            fputs("  ", out);
            fit(out, r->x->layers[i].path, 24, 0);
            for (int j = 0; j < ny; j++) fprintf(out, " %6.3f", r->cka[i * ny + j]);
            fputc('\n', out);
        }
    }
    fprintf(out, "  wrote %s/cka.h5 and %s/cka.csv\n", r->cfg->output, r->cfg->output);
}
