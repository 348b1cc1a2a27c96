/* Views of a models result (contract in mpicka/ckafile.h): one block of the
 * grid, or one layer across every model, as an ordinary mk_ckafile, so that
 * plot and show need no second code path. Not MPI, no HDF5: made from what
 * mk_ckafile_read has read and checked. */
#include "mpicka/ckafile.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define VIEW_LIST_MAX 1200 /* bytes of names listed in a message */

static char *copy_text(const char *s, mk_err *err)
{
    char *c = mk_malloc(strlen(s) + 1, "a name", err);
    if (c) strcpy(c, s);
    return c;
}

/* n names (or n times the same one when from is NULL and one is given). */
static char **copy_names(char *const *from, const char *one, int n, mk_err *err)
{
    char **out = mk_calloc((size_t)n, sizeof *out, "the layer names", err);
    for (int k = 0; out && k < n && !*err; k++) out[k] = copy_text(from ? from[k] : one, err);
    return out;
}

static mk_attr *copy_attrs(const mk_attr *from, int n, mk_err *err)
{
    mk_attr *out = n ? mk_calloc((size_t)n, sizeof *out, "the attributes", err) : NULL;
    for (int k = 0; out && k < n && !*err; k++) {
        out[k] = from[k];
        out[k].name = out[k].text = NULL;
        out[k].name = copy_text(from[k].name, err);
        if (from[k].kind == MK_ATTR_TEXT && !*err) out[k].text = copy_text(from[k].text, err);
    }
    return out;
}

/* The root attributes of a view: f's, without `models` (a view is a
 * two-model result), with the names, files and `self` of the view. */
static mk_err view_attrs(const mk_ckafile *f, mk_ckafile *out, const char *const set[4], int self)
{
    static const char *const keys[4] = {"x_name", "y_name", "x_file", "y_file"};
    mk_err err = MK_OK;
    out->attrs = copy_attrs(f->attrs, f->nattrs, &err);
    out->nattrs = out->attrs ? f->nattrs : 0;
    if (err) return err;
    for (int k = 0; k < out->nattrs; k++) {
        mk_attr *a = &out->attrs[k];
        for (int s = 0; s < 4; s++)
            if (set[s] && strcmp(a->name, keys[s]) == 0) {
                free(a->text);
                a->kind = MK_ATTR_TEXT;
                if ((a->text = copy_text(set[s], &err)) == NULL) return err;
            }
        if (strcmp(a->name, "self") == 0) {
            a->kind = MK_ATTR_INT;
            a->i = self;
        }
        if (strcmp(a->name, "models") == 0) { /* kept in name order: the rest moves up */
            free(a->name);
            free(a->text);
            memmove(a, a + 1, (size_t)(out->nattrs - k - 1) * sizeof *a);
            out->nattrs--;
            k--;
        }
    }
    out->meta = copy_attrs(f->meta, f->nmeta, &err);
    out->nmeta = out->meta ? f->nmeta : 0;
    return err;
}

/* A view of a measure (mk_ckafile_measure) is of that measure. */
static mk_err view_measure(const mk_ckafile *f, mk_ckafile *out)
{
    mk_err err = MK_OK;
    if (!f->measure) return MK_OK;
    out->measure = copy_text(f->measure, &err);
    out->measure_attrs = err ? NULL : copy_attrs(f->measure_attrs, f->nmeasure_attrs, &err);
    out->nmeasure_attrs = out->measure_attrs ? f->nmeasure_attrs : 0;
    return err;
}

/* "a, b, c" (cut with "..." past VIEW_LIST_MAX bytes) into buf. */
static void list_names(char *const *names, int n, char *buf, size_t size)
{
    size_t used = 0;
    buf[0] = '\0';
    for (int k = 0; k < n; k++) {
        size_t len = strlen(names[k]);
        if (used + len + 8 > size) {
            snprintf(buf + used, size - used, "%s...", k ? ", " : "");
            return;
        }
        used += (size_t)snprintf(buf + used, size - used, "%s%s", k ? ", " : "", names[k]);
    }
}

static mk_err need_models(const mk_ckafile *f, const char *path, const char *option)
{
    if (f->nmodels > 0) return MK_OK;
    return mk_fail(MK_EUSAGE,
                   "%s needs the result of a run with models: (a list of models), and '%s' compares %s with %s",
                   option, path, mk_ckafile_text(f, "x_name"), mk_ckafile_text(f, "y_name"));
}

static int model_index(const mk_ckafile *f, const char *name)
{
    for (int k = 0; k < f->nmodels; k++)
        if (strcmp(f->model_names[k], name) == 0) return k;
    return -1;
}

static mk_err find_model(const mk_ckafile *f, const char *path, const char *name, int *k)
{
    char list[VIEW_LIST_MAX];
    if ((*k = model_index(f, name)) >= 0) return MK_OK;
    list_names(f->model_names, f->nmodels, list, sizeof list);
    return mk_fail(MK_EUSAGE, "--pair: '%s' has no model '%s' (its models: %s)", path, name, list);
}

/* Rows r0.. and columns c0.. of the L by L matrix src, rows by cols. */
static double *slice(const double *src, int L, int r0, int c0, int rows, int cols, mk_err *err)
{
    if (!src || *err) return NULL;
    double *out = mk_malloc((size_t)rows * (size_t)cols * sizeof *out, "a block of the matrix", err);
    for (int i = 0; out && i < rows; i++)
        memcpy(out + (size_t)i * cols, src + (size_t)(r0 + i) * L + c0, (size_t)cols * sizeof *out);
    return out;
}

mk_err mk_ckafile_pair(const mk_ckafile *f, const char *path, const char *a, const char *b, mk_ckafile *out)
{
    int ka, kb;
    mk_err err = MK_OK;
    memset(out, 0, sizeof *out);
    MK_TRY(need_models(f, path, "--pair"));
    MK_TRY(find_model(f, path, a, &ka));
    MK_TRY(find_model(f, path, b, &kb));
    int r0 = f->model_offsets[ka], c0 = f->model_offsets[kb], L = f->nx;
    out->nx = f->model_offsets[ka + 1] - r0;
    out->ny = f->model_offsets[kb + 1] - c0;
    out->shown = MK_MATRIX_CKA; /* the caller chooses (mk_ckafile_choose) */
    out->cka = slice(f->cka, L, r0, c0, out->nx, out->ny, &err);
    out->cka_stderr = slice(f->cka_stderr, L, r0, c0, out->nx, out->ny, &err);
    out->cka_pvalue = slice(f->cka_pvalue, L, r0, c0, out->nx, out->ny, &err);
    if (!err) out->x_layers = copy_names(f->x_layers + r0, NULL, out->nx, &err);
    if (!err) out->y_layers = copy_names(f->y_layers + c0, NULL, out->ny, &err);
    if (err) return err;
    const char *set[4] = {f->model_names[ka], f->model_names[kb], f->model_files[ka], f->model_files[kb]};
    MK_TRY(view_measure(f, out));
    return view_attrs(f, out, set, ka == kb);
}

mk_err mk_ckafile_pair_spec(const mk_ckafile *f, const char *path, const char *cmd, const char *spec,
                            mk_ckafile *out)
{
    const char *comma = strchr(spec, ',');
    memset(out, 0, sizeof *out);
    if (!comma || comma == spec || !comma[1])
        return mk_fail(MK_EUSAGE, "%s: --pair '%s': expected A,B (two model names and a comma)", cmd, spec);
    MK_TRY(need_models(f, path, "--pair"));
    /* a name may hold a comma: take the split whose two sides are models */
    for (const char *c = comma; c; c = strchr(c + 1, ',')) {
        size_t len = (size_t)(c - spec);
        for (int k = 0; k < f->nmodels; k++)
            if (strlen(f->model_names[k]) == len && strncmp(f->model_names[k], spec, len) == 0 &&
                model_index(f, c + 1) >= 0)
                return mk_ckafile_pair(f, path, f->model_names[k], c + 1, out);
    }
    mk_err err = MK_OK;
    char *a = mk_malloc((size_t)(comma - spec) + 1, "a model name", &err);
    if (!a) return err;
    memcpy(a, spec, (size_t)(comma - spec));
    a[comma - spec] = '\0';
    err = mk_ckafile_pair(f, path, a, comma + 1, out);
    free(a);
    return err;
}

mk_err mk_ckafile_matched(const mk_ckafile *f, const char *path, const char *layer, mk_ckafile *out)
{
    char list[VIEW_LIST_MAX];
    int k = -1, n = f->nmodels;
    mk_err err = MK_OK;
    memset(out, 0, sizeof *out);
    MK_TRY(need_models(f, path, "--matched"));
    for (int m = 0; m < f->nmatched && k < 0; m++)
        if (strcmp(f->matched_layers[m], layer) == 0) k = m;
    if (k < 0 && f->nmatched == 0)
        return mk_fail(MK_EUSAGE, "--matched '%s': no layer of '%s' is shared by every model", layer, path);
    if (k < 0) {
        list_names(f->matched_layers, f->nmatched, list, sizeof list);
        return mk_fail(MK_EUSAGE, "--matched '%s': not a layer every model of '%s' has (those are: %s)", layer,
                       path, list);
    }
    size_t nn = (size_t)n * (size_t)n, at = (size_t)k * nn;
    const double *from[MK_MATRIX_COUNT] = {f->cka_matched, f->cka_matched_stderr, f->cka_matched_pvalue};
    double **to[MK_MATRIX_COUNT] = {&out->cka, &out->cka_stderr, &out->cka_pvalue};
    out->nx = out->ny = n;
    out->matched = 1;
    out->shown = MK_MATRIX_CKA; /* the caller chooses (mk_ckafile_choose) */
    for (int m = 0; m < MK_MATRIX_COUNT && !err; m++)
        if (from[m]) {
            *to[m] = mk_malloc(nn * sizeof **to[m], "a matched layer's matrix", &err);
            if (*to[m]) memcpy(*to[m], from[m] + at, nn * sizeof **to[m]);
        }
    if (!err) out->x_layers = copy_names(f->model_names, NULL, n, &err);
    if (!err) out->y_layers = copy_names(f->model_names, NULL, n, &err);
    if (err) return err;
    const char *set[4] = {layer, layer, NULL, NULL};
    MK_TRY(view_measure(f, out));
    return view_attrs(f, out, set, 1);
}
