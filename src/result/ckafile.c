/* Reading cka.h5 back (format in docs/output.md; contract in ckafile.h). */
#include "mpicka/ckafile.h"

#include "mpicka/file.h"

#include <errno.h>
#include <hdf5.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define CKAFILE_MAX_LAYERS 10000000

/* ---- strings ------------------------------------------------------------ */

static char *dup_text(const char *s, size_t len, mk_err *err)
{
    char *copy = mk_malloc(len + 1, "a string from cka.h5", err);
    if (copy) {
        memcpy(copy, s, len);
        copy[len] = '\0';
    }
    return copy;
}

/* n strings of a string dataset, variable-length or fixed, into out[0..n). */
static mk_err read_vlen_strings(hid_t dset, hid_t ftype, int n, char **out)
{
    mk_err err = MK_OK;
    char **raw = mk_calloc((size_t)n, sizeof *raw, "layer names", &err);
    if (!raw) return err;
    hid_t space = H5Dget_space(dset);
    if (H5Dread(dset, ftype, H5S_ALL, H5S_ALL, H5P_DEFAULT, raw) < 0) {
        free(raw);
        H5Sclose(space);
        return MK_EIO;
    }
    for (int k = 0; k < n && !err; k++)
        out[k] = dup_text(raw[k] ? raw[k] : "", raw[k] ? strlen(raw[k]) : 0, &err);
    H5Dvlen_reclaim(ftype, space, H5P_DEFAULT, raw);
    H5Sclose(space);
    free(raw);
    return err;
}

static mk_err read_fixed_strings(hid_t dset, hid_t ftype, int n, char **out)
{
    mk_err err = MK_OK;
    size_t size = H5Tget_size(ftype);
    char *raw = mk_malloc((size_t)n * size, "layer names", &err);
    if (!raw) return err;
    if (H5Dread(dset, ftype, H5S_ALL, H5S_ALL, H5P_DEFAULT, raw) < 0) {
        free(raw);
        return MK_EIO;
    }
    for (int k = 0; k < n && !err; k++)
        out[k] = dup_text(raw + (size_t)k * size, strnlen(raw + (size_t)k * size, size), &err);
    free(raw);
    return err;
}

static void free_names(char **names, int n)
{
    for (int k = 0; names && k < n; k++) free(names[k]);
    free(names);
}

/* ---- datasets ----------------------------------------------------------- */

static mk_err open_dataset(hid_t fid, const char *path, const char *name, const char *what, hid_t *dset)
{
    if (H5Lexists(fid, name, H5P_DEFAULT) <= 0)
        return mk_fail(MK_EINPUT, "'%s': not an mpicka result: no dataset /%s (%s)", path, name, what);
    *dset = H5Dopen2(fid, name, H5P_DEFAULT);
    if (*dset < 0) return mk_fail(MK_EINPUT, "'%s': /%s (%s) is not a dataset", path, name, what);
    return MK_OK;
}

/* The dimensions of dset (rank must be `rank`, at most 3), as ints in
 * [lo, CKAFILE_MAX_LAYERS] (lo: 0 or 1). */
static mk_err dataset_dims_from(hid_t dset, const char *path, const char *name, int rank, int lo, int *dims)
{
    hid_t space = H5Dget_space(dset);
    hsize_t d[3] = {0, 0, 0};
    int got = space >= 0 ? H5Sget_simple_extent_ndims(space) : -1;
    if (got == rank) H5Sget_simple_extent_dims(space, d, NULL);
    if (space >= 0) H5Sclose(space);
    if (got != rank)
        return mk_fail(MK_EINPUT, "'%s': /%s has %d dimension(s), expected %d", path, name, got, rank);
    for (int k = 0; k < rank; k++) {
        if (d[k] < (hsize_t)lo || d[k] > CKAFILE_MAX_LAYERS)
            return mk_fail(MK_EINPUT, "'%s': /%s has %llu layers along dimension %d, expected %d to %d", path,
                           name, (unsigned long long)d[k], k + 1, lo, CKAFILE_MAX_LAYERS);
        dims[k] = (int)d[k];
    }
    return MK_OK;
}

static mk_err dataset_dims(hid_t dset, const char *path, const char *name, int rank, int *dims)
{
    return dataset_dims_from(dset, path, name, rank, 1, dims);
}

/* The shape of /name must be /cka's when expect (nx, ny) is given. */
static mk_err check_shape(const char *path, const char *name, const int *dims, const int *expect)
{
    if (expect && (dims[0] != expect[0] || dims[1] != expect[1]))
        return mk_fail(MK_EINPUT, "'%s': /%s is %d by %d but /cka is %d by %d", path, name, dims[0], dims[1],
                       expect[0], expect[1]);
    return MK_OK;
}

/* The float dataset /name of rank 2 or 3 into *out (malloc'd), its
 * dimensions in dims; the shape is checked (shape_ok) before anything is
 * allocated. */
static mk_err read_floats_shaped(hid_t fid, const char *path, const char *name, const char *what, int rank,
                                 mk_err (*shape_ok)(const char *, const char *, const int *, const int *),
                                 const int *expect, int *dims, double **out)
{
    hid_t dset = -1, type = -1;
    mk_err err;
    MK_TRY(open_dataset(fid, path, name, what, &dset));
    type = H5Dget_type(dset);
    if (H5Tget_class(type) != H5T_FLOAT) {
        err = mk_fail(MK_EINPUT, "'%s': /%s is not a floating-point dataset", path, name);
        goto done;
    }
    MK_GOTO(dataset_dims(dset, path, name, rank, dims), done);
    MK_GOTO(shape_ok(path, name, dims, expect), done);
    size_t count = (size_t)dims[0] * (size_t)dims[1] * (rank == 3 ? (size_t)dims[2] : 1);
    *out = mk_malloc(count * sizeof **out, what, &err);
    if (!err && H5Dread(dset, H5T_NATIVE_DOUBLE, H5S_ALL, H5S_ALL, H5P_DEFAULT, *out) < 0)
        err = mk_fail(MK_EIO, "'%s': cannot read /%s", path, name);
done:
    if (type >= 0) H5Tclose(type);
    H5Dclose(dset);
    return err;
}

/* The 2-D float dataset /name; of the shape expect unless that is NULL. */
static mk_err read_floats(hid_t fid, const char *path, const char *name, const char *what, const int *expect,
                          int *dims, double **out)
{
    return read_floats_shaped(fid, path, name, what, 2, check_shape, expect, dims, out);
}

static mk_err read_matrix(hid_t fid, const char *path, mk_ckafile *f)
{
    int dims[2] = {0, 0};
    MK_TRY(read_floats(fid, path, "cka", "the CKA matrix", NULL, dims, &f->cka));
    f->nx = dims[0];
    f->ny = dims[1];
    return MK_OK;
}

/* /cka_stderr or /cka_pvalue, when there (newer results). */
static mk_err read_extra(hid_t fid, const char *path, const mk_ckafile *f, mk_matrix m, double **out)
{
    const char *name = mk_matrix_dataset(m);
    int dims[2] = {0, 0}, expect[2] = {f->nx, f->ny};
    if (H5Lexists(fid, name, H5P_DEFAULT) <= 0) return MK_OK;
    return read_floats(fid, path, name, mk_matrix_what(m), expect, dims, out);
}

/* The 1-D string dataset /name (at least lo entries) into *out, *n of them. */
static mk_err read_strings(hid_t fid, const char *path, const char *name, const char *what, int lo, int *n,
                           char ***out)
{
    hid_t dset = -1, type = -1;
    mk_err err;
    MK_TRY(open_dataset(fid, path, name, what, &dset));
    type = H5Dget_type(dset);
    if (H5Tget_class(type) != H5T_STRING) {
        err = mk_fail(MK_EINPUT, "'%s': /%s is not a dataset of strings", path, name);
        goto done;
    }
    MK_GOTO(dataset_dims_from(dset, path, name, 1, lo, n), done);
    err = MK_OK;
    *out = mk_calloc((size_t)*n + 1, sizeof **out, what, &err);
    if (!err && *n > 0)
        err = H5Tis_variable_str(type) > 0 ? read_vlen_strings(dset, type, *n, *out)
                                           : read_fixed_strings(dset, type, *n, *out);
    if (err == MK_EIO) err = mk_fail(MK_EIO, "'%s': cannot read /%s", path, name);
done:
    if (type >= 0) H5Tclose(type);
    H5Dclose(dset);
    return err;
}

static mk_err read_names(hid_t fid, const char *path, const char *name, int expect, const char *axis,
                         char ***out)
{
    int n = 0;
    MK_TRY(read_strings(fid, path, name, "layer names", 1, &n, out));
    if (n != expect) {
        free_names(*out, n); /* the caller frees expect names */
        *out = NULL;
        return mk_fail(MK_EINPUT, "'%s': /%s has %d names but /cka has %d %s", path, name, n, expect, axis);
    }
    return MK_OK;
}

/* ---- attributes --------------------------------------------------------- */

struct attr_list {
    const char *path, *where; /* where: "" for the root, " of /meta" */
    mk_attr *items;
    int n, cap;
    mk_err err;
};

static mk_err read_text_attr(hid_t attr, hid_t type, mk_attr *a)
{
    mk_err err = MK_OK;
    if (H5Tis_variable_str(type) > 0) {
        char *value = NULL;
        if (H5Aread(attr, type, &value) < 0) return MK_EIO;
        a->text = dup_text(value ? value : "", value ? strlen(value) : 0, &err);
        H5free_memory(value);
        return err;
    }
    size_t size = H5Tget_size(type);
    char *raw = mk_calloc(size + 1, 1, "an attribute", &err);
    if (raw && H5Aread(attr, type, raw) < 0) err = MK_EIO;
    if (!err) a->text = dup_text(raw, strnlen(raw, size), &err);
    free(raw);
    return err;
}

/* Reads a scalar numeric or string attribute; *kept is 0 for other kinds. */
static mk_err read_attr_value(hid_t attr, mk_attr *a, int *kept)
{
    hid_t type = H5Aget_type(attr), space = H5Aget_space(attr);
    H5T_class_t cls = H5Tget_class(type);
    mk_err err = MK_OK;
    *kept = H5Sget_simple_extent_npoints(space) == 1;
    if (*kept && cls == H5T_INTEGER && H5Tget_sign(type) == H5T_SGN_NONE) {
        a->kind = MK_ATTR_UINT;
        if (H5Aread(attr, H5T_NATIVE_UINT64, &a->u) < 0) err = MK_EIO;
    } else if (*kept && cls == H5T_INTEGER) {
        a->kind = MK_ATTR_INT;
        if (H5Aread(attr, H5T_NATIVE_INT64, &a->i) < 0) err = MK_EIO;
    } else if (*kept && cls == H5T_FLOAT) {
        a->kind = MK_ATTR_REAL;
        if (H5Aread(attr, H5T_NATIVE_DOUBLE, &a->r) < 0) err = MK_EIO;
    } else if (*kept && cls == H5T_STRING) {
        a->kind = MK_ATTR_TEXT;
        err = read_text_attr(attr, type, a);
    } else {
        *kept = 0;
    }
    H5Sclose(space);
    H5Tclose(type);
    return err;
}

static mk_err grow(struct attr_list *l)
{
    if (l->n < l->cap) return MK_OK;
    int cap = l->cap ? 2 * l->cap : 32;
    mk_attr *items = realloc(l->items, (size_t)cap * sizeof *items);
    if (!items) return mk_fail(MK_ENOMEM, "cannot allocate the attributes%s of '%s'", l->where, l->path);
    l->items = items;
    l->cap = cap;
    return MK_OK;
}

static herr_t attr_visit(hid_t loc, const char *name, const H5A_info_t *info, void *data)
{
    struct attr_list *l = data;
    if ((l->err = grow(l)) != MK_OK) return -1;
    mk_attr *a = &l->items[l->n];
    memset(a, 0, sizeof *a);
    hid_t attr = H5Aopen(loc, name, H5P_DEFAULT);
    int kept = 0;
    l->err = attr < 0 ? MK_EIO : read_attr_value(attr, a, &kept);
    if (attr >= 0) H5Aclose(attr);
    if (l->err == MK_EIO)
        l->err = mk_fail(MK_EIO, "'%s': cannot read attribute '%s'%s", l->path, name, l->where);
    if (!l->err && kept) a->name = dup_text(name, strlen(name), &l->err);
    if (a->name)
        l->n++;
    else
        free(a->text);
    return l->err ? -1 : 0;
}

/* The scalar attributes of loc (the file or /meta), in name order. */
static mk_err read_attrs(hid_t loc, const char *path, const char *where, mk_attr **items, int *n)
{
    struct attr_list l = {path, where, NULL, 0, 0, MK_OK};
    herr_t status = H5Aiterate2(loc, H5_INDEX_NAME, H5_ITER_INC, NULL, attr_visit, &l);
    *items = l.items;
    *n = l.n;
    if (l.err) return l.err;
    if (status < 0) return mk_fail(MK_EIO, "'%s': cannot list the attributes%s", path, where);
    return MK_OK;
}

/* The group /meta, when there (newer results). */
static mk_err read_meta(hid_t fid, const char *path, mk_ckafile *f)
{
    if (H5Lexists(fid, "meta", H5P_DEFAULT) <= 0) return MK_OK;
    hid_t group = H5Gopen2(fid, "meta", H5P_DEFAULT); /* fails on a dataset */
    if (group < 0)
        return mk_fail(MK_EINPUT, "'%s': /meta is not a group (of attributes saying how /cka was made)", path);
    mk_err err = read_attrs(group, path, " of /meta", &f->meta, &f->nmeta);
    H5Gclose(group);
    return err;
}

static mk_err require_attrs(const char *path, const mk_ckafile *f)
{
    static const char *const texts[] = {"x_name", "y_name"};
    for (int k = 0; k < 2; k++)
        if (!mk_ckafile_text(f, texts[k]))
            return mk_fail(MK_EINPUT, "'%s': not an mpicka result: no string attribute '%s' (a model's name)",
                           path, texts[k]);
    const mk_attr *self = mk_ckafile_attr(f, "self");
    if (self && self->kind != MK_ATTR_INT && self->kind != MK_ATTR_UINT)
        return mk_fail(MK_EINPUT, "'%s': attribute 'self' is not an integer", path);
    return MK_OK;
}

/* ---- a models result ----------------------------------------------------- */

static mk_err models_count(const char *path, const mk_ckafile *f, int *n)
{
    const mk_attr *a = mk_ckafile_attr(f, "models");
    *n = 0;
    if (!a) return MK_OK;
    if (a->kind != MK_ATTR_INT && a->kind != MK_ATTR_UINT)
        return mk_fail(MK_EINPUT, "'%s': attribute 'models' is not an integer", path);
    long long v = a->kind == MK_ATTR_INT ? (long long)a->i : a->u > LLONG_MAX ? LLONG_MAX : (long long)a->u;
    if (f->nx != f->ny)
        return mk_fail(MK_EINPUT, "'%s': attribute 'models' marks a models result, but /cka is %d by %d, not square",
                       path, f->nx, f->ny);
    if (v < 1 || v > f->nx)
        return mk_fail(MK_EINPUT, "'%s': attribute 'models' is %lld, expected 1 to %d (the layers of /cka)", path,
                       v, f->nx);
    *n = (int)v;
    return MK_OK;
}

static mk_err require_dataset(hid_t fid, const char *path, const char *name, const char *what, int n)
{
    if (H5Lexists(fid, name, H5P_DEFAULT) > 0) return MK_OK;
    return mk_fail(MK_EINPUT, "'%s': a models result (attribute 'models' = %d) without the dataset /%s (%s)", path,
                   n, name, what);
}

/* /name: exactly n strings (model names or files). */
static mk_err read_model_strings(hid_t fid, const char *path, const char *name, const char *what, int n,
                                 char ***out)
{
    int got = 0;
    MK_TRY(require_dataset(fid, path, name, what, n));
    MK_TRY(read_strings(fid, path, name, what, 1, &got, out));
    if (got == n) return MK_OK;
    free_names(*out, got);
    *out = NULL;
    return mk_fail(MK_EINPUT, "'%s': /%s has %d entries but attribute 'models' is %d", path, name, got, n);
}

static int compare_text(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Names pick blocks on the command line: none empty, none twice (sorted
 * copy: a hostile file may hold millions). */
static mk_err check_model_names(const char *path, char **names, int n)
{
    mk_err err = MK_OK;
    for (int k = 0; k < n; k++)
        if (!names[k][0]) return mk_fail(MK_EINPUT, "'%s': /model_names: name %d of %d is empty", path, k + 1, n);
    char **sorted = mk_malloc((size_t)n * sizeof *sorted, "the model names", &err);
    if (!sorted) return err;
    memcpy(sorted, names, (size_t)n * sizeof *sorted);
    qsort(sorted, (size_t)n, sizeof *sorted, compare_text);
    for (int k = 1; k < n && !err; k++)
        if (strcmp(sorted[k - 1], sorted[k]) == 0)
            err = mk_fail(MK_EINPUT, "'%s': /model_names holds '%s' twice (names must be unique)", path, sorted[k]);
    free(sorted);
    return err;
}

static mk_err check_offsets(const char *path, const int64_t *off, int n, int layers)
{
    if (off[0] != 0)
        return mk_fail(MK_EINPUT, "'%s': /model_offsets starts at %lld, expected 0", path, (long long)off[0]);
    for (int k = 1; k <= n; k++)
        if (off[k] <= off[k - 1])
            return mk_fail(MK_EINPUT,
                           "'%s': /model_offsets is not strictly increasing: value %d is %lld after %lld "
                           "(every model has at least one layer)",
                           path, k + 1, (long long)off[k], (long long)off[k - 1]);
    if (off[n] != layers)
        return mk_fail(MK_EINPUT, "'%s': /model_offsets ends at %lld but /cka has %d layers", path,
                       (long long)off[n], layers);
    return MK_OK;
}

static mk_err read_offsets(hid_t fid, const char *path, mk_ckafile *f)
{
    hid_t dset = -1, type = -1;
    int n = 0;
    int64_t *off = NULL;
    mk_err err;
    MK_TRY(require_dataset(fid, path, "model_offsets", "where each model's layers start", f->nmodels));
    MK_TRY(open_dataset(fid, path, "model_offsets", "where each model's layers start", &dset));
    type = H5Dget_type(dset);
    if (H5Tget_class(type) != H5T_INTEGER) {
        err = mk_fail(MK_EINPUT, "'%s': /model_offsets is not an integer dataset", path);
        goto done;
    }
    MK_GOTO(dataset_dims(dset, path, "model_offsets", 1, &n), done);
    if (n != f->nmodels + 1) {
        err = mk_fail(MK_EINPUT, "'%s': /model_offsets has %d values, expected %d (attribute 'models' + 1)", path,
                      n, f->nmodels + 1);
        goto done;
    }
    err = MK_OK;
    off = mk_malloc((size_t)n * sizeof *off, "the model offsets", &err);
    f->model_offsets = mk_malloc((size_t)n * sizeof *f->model_offsets, "the model offsets", &err);
    if (err) goto done;
    if (H5Dread(dset, H5T_NATIVE_INT64, H5S_ALL, H5S_ALL, H5P_DEFAULT, off) < 0) {
        err = mk_fail(MK_EIO, "'%s': cannot read /model_offsets", path);
        goto done;
    }
    MK_GOTO(check_offsets(path, off, f->nmodels, f->nx), done);
    for (int k = 0; k < n; k++) f->model_offsets[k] = (int)off[k];
done:
    free(off);
    if (type >= 0) H5Tclose(type);
    H5Dclose(dset);
    return err;
}

static mk_err check_cube(const char *path, const char *name, const int *dims, const int *expect)
{
    if (dims[0] != expect[0] || dims[1] != expect[1] || dims[2] != expect[2])
        return mk_fail(MK_EINPUT,
                       "'%s': /%s is %d by %d by %d, expected %d by %d by %d (/matched_layers by /model_names "
                       "by /model_names)",
                       path, name, dims[0], dims[1], dims[2], expect[0], expect[1], expect[2]);
    return MK_OK;
}

/* /matched_layers and, when it holds any, /cka_matched and its companions. */
static mk_err read_matched(hid_t fid, const char *path, mk_ckafile *f)
{
    static const char *const names[MK_MATRIX_COUNT] = {"cka_matched", "cka_matched_stderr", "cka_matched_pvalue"};
    double **outs[MK_MATRIX_COUNT] = {&f->cka_matched, &f->cka_matched_stderr, &f->cka_matched_pvalue};
    int smallest = f->nx, dims[3], expect[3] = {0, f->nmodels, f->nmodels};
    MK_TRY(require_dataset(fid, path, "matched_layers", "the layers every model has", f->nmodels));
    MK_TRY(read_strings(fid, path, "matched_layers", "the layers every model has", 0, &f->nmatched,
                        &f->matched_layers));
    for (int k = 0; k < f->nmodels; k++)
        if (f->model_offsets[k + 1] - f->model_offsets[k] < smallest)
            smallest = f->model_offsets[k + 1] - f->model_offsets[k];
    if (f->nmatched > smallest)
        return mk_fail(MK_EINPUT, "'%s': /matched_layers has %d layers, more than the smallest model has (%d)",
                       path, f->nmatched, smallest);
    if (f->nmatched == 0) return MK_OK;
    expect[0] = f->nmatched;
    MK_TRY(require_dataset(fid, path, names[0], "each matched layer's model-by-model CKA", f->nmodels));
    for (int m = 0; m < MK_MATRIX_COUNT; m++)
        if (m == 0 || H5Lexists(fid, names[m], H5P_DEFAULT) > 0)
            MK_TRY(read_floats_shaped(fid, path, names[m], "the matched layers' matrices", 3, check_cube, expect,
                                      dims, outs[m]));
    return MK_OK;
}

static mk_err read_models(hid_t fid, const char *path, mk_ckafile *f)
{
    int n;
    MK_TRY(models_count(path, f, &n));
    if (n == 0) return MK_OK;
    f->nmodels = n;
    MK_TRY(read_model_strings(fid, path, "model_names", "the models' names", n, &f->model_names));
    MK_TRY(check_model_names(path, f->model_names, n));
    MK_TRY(read_model_strings(fid, path, "model_files", "the models' files", n, &f->model_files));
    MK_TRY(read_offsets(fid, path, f));
    return read_matched(fid, path, f);
}

/* ---- public ------------------------------------------------------------- */

static mk_err open_file(const char *path, hid_t *fid)
{
    if (access(path, R_OK) != 0) return mk_fail(MK_EINPUT, "cannot open '%s': %s", path, strerror(errno));
    MK_TRY(mk_check_regular(path, "the result", MK_EINPUT)); /* HDF5 would wait forever on a FIFO */
    H5Eset_auto2(H5E_DEFAULT, NULL, NULL); /* our messages name the file */
    if (H5Fis_hdf5(path) <= 0)
        return mk_fail(MK_EINPUT, "'%s' is not an HDF5 file (expected a cka.h5 written by mpicka run)", path);
    *fid = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT);
    if (*fid < 0) return mk_fail(MK_EIO, "cannot open the HDF5 file '%s'", path);
    return MK_OK;
}

mk_err mk_ckafile_read(const char *path, mk_ckafile *f)
{
    hid_t fid = -1;
    mk_err err;
    memset(f, 0, sizeof *f);
    MK_TRY(open_file(path, &fid));
    MK_GOTO(read_matrix(fid, path, f), done);
    MK_GOTO(read_names(fid, path, "x_layers", f->nx, "rows", &f->x_layers), done);
    MK_GOTO(read_names(fid, path, "y_layers", f->ny, "columns", &f->y_layers), done);
    MK_GOTO(read_attrs(fid, path, "", &f->attrs, &f->nattrs), done);
    MK_GOTO(require_attrs(path, f), done);
    MK_GOTO(read_extra(fid, path, f, MK_MATRIX_STDERR, &f->cka_stderr), done);
    MK_GOTO(read_extra(fid, path, f, MK_MATRIX_PVALUE, &f->cka_pvalue), done);
    MK_GOTO(read_meta(fid, path, f), done);
    err = read_models(fid, path, f);
done:
    H5Fclose(fid);
    return err;
}

/* The names under /measures, ", "-joined into buf ("none" without any). */
static void measure_list(hid_t fid, char *buf, size_t size)
{
    hsize_t n = 0;
    hid_t gid = H5Lexists(fid, "measures", H5P_DEFAULT) > 0 ? H5Gopen2(fid, "measures", H5P_DEFAULT) : -1;
    snprintf(buf, size, "none");
    if (gid >= 0 && H5Gget_num_objs(gid, &n) >= 0)
        for (hsize_t k = 0, used = 0; k < n && used < size; k++) {
            char name[64];
            if (H5Gget_objname_by_idx(gid, k, name, sizeof name) < 0) break;
            used += (hsize_t)snprintf(buf + used, size - used, "%s%s", k ? ", " : "", name);
        }
    if (gid >= 0) H5Gclose(gid);
}

static void free_attrs(mk_attr *attrs, int n);

/* The scalar attributes of the dataset key (a measure's parameters). */
static mk_err read_measure_attrs(hid_t fid, const char *path, const char *key, mk_attr **attrs, int *n)
{
    hid_t did = H5Dopen2(fid, key, H5P_DEFAULT);
    if (did < 0) return mk_fail(MK_EINPUT, "'%s': cannot open /%s", path, key);
    char where[160];
    snprintf(where, sizeof where, " of /%s", key);
    mk_err err = read_attrs(did, path, where, attrs, n);
    H5Dclose(did);
    return err;
}

const mk_attr *mk_ckafile_measure_attr(const mk_ckafile *f, const char *name)
{
    for (int k = 0; k < f->nmeasure_attrs; k++)
        if (strcmp(f->measure_attrs[k].name, name) == 0) return &f->measure_attrs[k];
    return NULL;
}

/* The names under the group gid, in its index's order (by name). */
static mk_err list_group(hid_t gid, const char *path, char ***names, int *n)
{
    hsize_t count = 0;
    mk_err err = MK_OK;
    if (H5Gget_num_objs(gid, &count) < 0) return mk_fail(MK_EINPUT, "'%s': cannot list /measures", path);
    *names = count ? mk_malloc((size_t)count * sizeof **names, "the measures' names", &err) : NULL;
    for (hsize_t k = 0; !err && k < count; k++) {
        char name[256];
        ssize_t len = H5Gget_objname_by_idx(gid, k, name, sizeof name);
        if (len < 0 || (size_t)len >= sizeof name)
            err = mk_fail(MK_EINPUT, "'%s': cannot read the name of member %d of /measures", path, (int)k);
        else if (((*names)[*n] = dup_text(name, (size_t)len, &err)) != NULL)
            (*n)++;
    }
    return err;
}

mk_err mk_ckafile_measure_names(const char *path, char ***names, int *n)
{
    hid_t fid = -1;
    *names = NULL;
    *n = 0;
    MK_TRY(open_file(path, &fid));
    mk_err err = MK_OK;
    hid_t gid = H5Lexists(fid, "measures", H5P_DEFAULT) > 0 ? H5Gopen2(fid, "measures", H5P_DEFAULT) : -1;
    if (gid >= 0) err = list_group(gid, path, names, n);
    if (gid >= 0) H5Gclose(gid);
    H5Fclose(fid);
    if (err) {
        mk_ckafile_names_free(*names, *n);
        *names = NULL;
        *n = 0;
    }
    return err;
}

void mk_ckafile_names_free(char **names, int n)
{
    for (int k = 0; k < n; k++) free(names[k]);
    free(names);
}

static mk_err replace_by_measure(mk_ckafile *f, const char *path, const char *name);

mk_err mk_ckafile_measure(mk_ckafile *f, const char *path, const char *name)
{
    return replace_by_measure(f, path, name);
}

mk_err mk_ckafile_measure_grid(mk_ckafile *f, const char *path, const char *name)
{
    return replace_by_measure(f, path, name);
}

/* /measures/NAME_SUFFIX into *out when the file has it (else NULL): the
 * measure's standard errors (rank 2) or a models result's matched view
 * (rank 3). */
static mk_err measure_extra(hid_t fid, const char *path, const mk_ckafile *f, const char *name, const char *suffix,
                            int rank, double **out)
{
    char key[160];
    int dims[3] = {0, 0, 0}, expect[3] = {rank == 2 ? f->nx : f->nmatched, rank == 2 ? f->ny : f->nmodels, f->nmodels};
    snprintf(key, sizeof key, "measures/%.100s%s", name, suffix);
    *out = NULL;
    if (H5Lexists(fid, key, H5P_DEFAULT) <= 0) return MK_OK;
    return rank == 2 ? read_floats(fid, path, key, "a measure's standard errors", expect, dims, out)
                     : read_floats_shaped(fid, path, key, "a measure's matched view", 3, check_cube, expect, dims,
                                          out);
}

/* The measure's companions: its standard errors and, of a models result,
 * its matched views (NULL where the file has none), into m[MK_MATRIX_STDERR]
 * and cubes[0..1]. */
static mk_err measure_extras(hid_t fid, const char *path, const mk_ckafile *f, const char *name, double *m[1],
                             double *cubes[2])
{
    cubes[0] = cubes[1] = NULL;
    MK_TRY(measure_extra(fid, path, f, name, "_stderr", 2, &m[0]));
    if (f->nmodels == 0 || f->nmatched == 0) return MK_OK;
    MK_TRY(measure_extra(fid, path, f, name, "_matched", 3, &cubes[0]));
    return measure_extra(fid, path, f, name, "_matched_stderr", 3, &cubes[1]);
}

static mk_err replace_by_measure(mk_ckafile *f, const char *path, const char *name)
{
    hid_t fid = -1;
    char key[128], list[512];
    int dims[2] = {0, 0}, expect[2] = {f->nx, f->ny};
    double *v = NULL, *se = NULL, *cubes[2] = {NULL, NULL};
    snprintf(key, sizeof key, "measures/%.100s", name);
    MK_TRY(open_file(path, &fid));
    mk_err err = MK_OK;
    if (strchr(name, '/') || H5Lexists(fid, "measures", H5P_DEFAULT) <= 0 || H5Lexists(fid, key, H5P_DEFAULT) <= 0) {
        measure_list(fid, list, sizeof list);
        err = mk_fail(MK_EINPUT, "'%s' has no measure '%s' (it has: %s; a run computes them with the config key "
                      "measures)", path, name, list);
    }
    if (!err) err = read_floats(fid, path, key, "a measure", expect, dims, &v);
    mk_attr *attrs = NULL;
    int nattrs = 0;
    if (!err) err = read_measure_attrs(fid, path, key, &attrs, &nattrs);
    if (!err) err = measure_extras(fid, path, f, name, &se, cubes);
    H5Fclose(fid);
    char *copy = err ? NULL : dup_text(name, strlen(name), &err);
    if (err) {
        free(v), free(se), free(cubes[0]), free(cubes[1]);
        free_attrs(attrs, nattrs);
        return err;
    }
    free(f->cka), free(f->cka_stderr), free(f->cka_pvalue), free(f->measure);
    free(f->cka_matched), free(f->cka_matched_stderr), free(f->cka_matched_pvalue);
    free_attrs(f->measure_attrs, f->nmeasure_attrs);
    f->measure_attrs = attrs, f->nmeasure_attrs = nattrs;
    f->cka = v, f->cka_stderr = se, f->cka_pvalue = NULL, f->measure = copy;
    f->cka_matched = cubes[0], f->cka_matched_stderr = cubes[1], f->cka_matched_pvalue = NULL;
    f->shown = MK_MATRIX_CKA;
    return MK_OK;
}

static void free_attrs(mk_attr *attrs, int n)
{
    for (int k = 0; k < n; k++) {
        free(attrs[k].name);
        free(attrs[k].text);
    }
    free(attrs);
}

void mk_ckafile_free(mk_ckafile *f)
{
    free(f->cka);
    free(f->cka_stderr);
    free(f->cka_pvalue);
    free_names(f->x_layers, f->nx);
    free_names(f->y_layers, f->ny);
    free_attrs(f->attrs, f->nattrs);
    free_attrs(f->meta, f->nmeta);
    free_names(f->model_names, f->nmodels);
    free_names(f->model_files, f->nmodels);
    free(f->model_offsets);
    free_names(f->matched_layers, f->nmatched);
    free(f->cka_matched);
    free(f->cka_matched_stderr);
    free(f->cka_matched_pvalue);
    free(f->measure);
    free_attrs(f->measure_attrs, f->nmeasure_attrs);
    memset(f, 0, sizeof *f);
}

static const mk_attr *find_attr(const mk_attr *attrs, int n, const char *name)
{
    for (int k = 0; k < n; k++)
        if (strcmp(attrs[k].name, name) == 0) return &attrs[k];
    return NULL;
}

static const char *text_of(const mk_attr *a) { return a && a->kind == MK_ATTR_TEXT ? a->text : NULL; }

const mk_attr *mk_ckafile_attr(const mk_ckafile *f, const char *name)
{
    return find_attr(f->attrs, f->nattrs, name);
}

const char *mk_ckafile_text(const mk_ckafile *f, const char *name) { return text_of(mk_ckafile_attr(f, name)); }

const mk_attr *mk_ckafile_meta(const mk_ckafile *f, const char *name)
{
    return find_attr(f->meta, f->nmeta, name);
}

const char *mk_ckafile_meta_text(const mk_ckafile *f, const char *name)
{
    return text_of(mk_ckafile_meta(f, name));
}

static int same_text(const char *a, const char *b) { return a && b && strcmp(a, b) == 0; }

int mk_ckafile_self(const mk_ckafile *f)
{
    const mk_attr *a = mk_ckafile_attr(f, "self");
    if (a && a->kind == MK_ATTR_INT) return a->i == 1;
    if (a && a->kind == MK_ATTR_UINT) return a->u == 1;
    if (f->nx != f->ny || !same_text(mk_ckafile_text(f, "x_name"), mk_ckafile_text(f, "y_name")) ||
        !same_text(mk_ckafile_text(f, "x_file"), mk_ckafile_text(f, "y_file")))
        return 0;
    for (int k = 0; k < f->nx; k++)
        if (strcmp(f->x_layers[k], f->y_layers[k]) != 0) return 0;
    return 1;
}

/* ---- the matrices --------------------------------------------------------- */

static const struct {
    const char *name, *dataset, *what, *how; /* how: the run setting that makes it */
} matrices[MK_MATRIX_COUNT] = {
    [MK_MATRIX_CKA] = {"cka", "cka", "CKA", ""},
    [MK_MATRIX_STDERR] = {"stderr", "cka_stderr", "standard error of CKA",
                          "run with jackknife: G (G >= 2 groups of batches; e.g. --set jackknife=20)"},
    [MK_MATRIX_PVALUE] = {"pvalue", "cka_pvalue", "p-value of CKA",
                          "run with permutations: R (e.g. --set permutations=1000)"},
};

const char *mk_matrix_name(mk_matrix m) { return matrices[m].name; }
const char *mk_matrix_dataset(mk_matrix m) { return matrices[m].dataset; }
const char *mk_matrix_what(mk_matrix m) { return matrices[m].what; }

mk_err mk_matrix_parse(const char *cmd, const char *s, mk_matrix *m)
{
    for (int k = 0; k < MK_MATRIX_COUNT; k++)
        if (strcmp(s, matrices[k].name) == 0) {
            *m = (mk_matrix)k;
            return MK_OK;
        }
    return mk_fail(MK_EUSAGE, "%s: --matrix '%s': expected cka, stderr or pvalue", cmd, s);
}

const double *mk_ckafile_matrix(const mk_ckafile *f, mk_matrix m)
{
    return m == MK_MATRIX_STDERR ? f->cka_stderr : m == MK_MATRIX_PVALUE ? f->cka_pvalue : f->cka;
}

mk_err mk_ckafile_choose(mk_ckafile *f, const char *path, mk_matrix m)
{
    if (!mk_ckafile_matrix(f, m))
        return mk_fail(MK_EINPUT, "'%s' has no /%s (%s): %s", path, matrices[m].dataset, matrices[m].what,
                       matrices[m].how);
    f->shown = m;
    return MK_OK;
}
