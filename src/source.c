#include "mpicka/source.h"

#include <errno.h>
#include <fnmatch.h>
#include <hdf5.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* HDF5 prints its own error stack by default; ours name the file and dataset. */
static void quiet_hdf5(void) { H5Eset_auto2(H5E_DEFAULT, NULL, NULL); }

static char *dupstr(const char *s, mk_err *err)
{
    char *d = mk_malloc(strlen(s) + 1, "a string", err);
    if (d) strcpy(d, s);
    return d;
}

int mk_natural_cmp(const char *a, const char *b)
{
    while (*a && *b) {
        if (*a >= '0' && *a <= '9' && *b >= '0' && *b <= '9') {
            while (*a == '0') a++;
            while (*b == '0') b++;
            size_t la = strspn(a, "0123456789"), lb = strspn(b, "0123456789");
            if (la != lb) return la < lb ? -1 : 1;
            int c = strncmp(a, b, la);
            if (c) return c;
            a += la;
            b += lb;
        } else {
            if (*a != *b) return (unsigned char)*a < (unsigned char)*b ? -1 : 1;
            a++;
            b++;
        }
    }
    return (*a != 0) - (*b != 0);
}

static mk_err open_file(const char *file, hid_t *fid)
{
    quiet_hdf5();
    struct stat st;
    if (access(file, R_OK) != 0 || stat(file, &st) != 0)
        return mk_fail(MK_EINPUT, "cannot open input '%s': %s", file, strerror(errno));
    if (!S_ISREG(st.st_mode)) /* a pipe would block HDF5's first read forever */
        return mk_fail(MK_EINPUT, "input '%s' is not a regular file (a folder, device or pipe?)", file);
    if (H5Fis_hdf5(file) <= 0) return mk_fail(MK_EINPUT, "input '%s' is not an HDF5 file", file);
    *fid = H5Fopen(file, H5F_ACC_RDONLY, H5P_DEFAULT);
    if (*fid < 0) return mk_fail(MK_EINPUT, "cannot open HDF5 file '%s' (damaged or truncated?)", file);
    return MK_OK;
}

/* ---- dataset description ---- */

static void dtype_name(hid_t type, H5T_class_t cls, char *out, size_t len)
{
    size_t bits = 8 * H5Tget_size(type);
    if (cls == H5T_FLOAT)
        snprintf(out, len, "float%zu", bits);
    else
        snprintf(out, len, "%sint%zu", H5Tget_sign(type) == H5T_SGN_NONE ? "u" : "", bits);
}

/* Exactly representable in float: at most 24 significant bits and an exponent
 * range within float's. */
static int exact_in_float(hid_t type, H5T_class_t cls)
{
    if (cls == H5T_INTEGER) return H5Tget_precision(type) <= 24;
    size_t spos, epos, esize, mpos, msize;
    if (H5Tget_fields(type, &spos, &epos, &esize, &mpos, &msize) < 0) return 0;
    return msize <= 23 && esize <= 8;
}

static mk_err describe(hid_t dset, const char *file, const char *path, mk_layer *layer)
{
    mk_err err = MK_OK;
    hid_t type = H5Dget_type(dset), space = H5Dget_space(dset);
    H5T_class_t cls = H5Tget_class(type);
    int rank = H5Sget_simple_extent_ndims(space);
    hsize_t dims[H5S_MAX_RANK];
    if (cls != H5T_INTEGER && cls != H5T_FLOAT) {
        err = mk_fail(MK_EINPUT, "%s: dataset '%s' is not numeric (HDF5 type class %d); layers must hold integers or floats",
                      file, path, (int)cls);
        goto done;
    }
    if (rank < 1) {
        err = mk_fail(MK_EINPUT, "%s: dataset '%s' is a scalar; a layer needs the example index as its first dimension",
                      file, path);
        goto done;
    }
    H5Sget_simple_extent_dims(space, dims, NULL);
    layer->n = (int64_t)dims[0];
    layer->p = 1;
    int wide = dims[0] > (hsize_t)INT64_MAX;
    int off = snprintf(layer->shape, sizeof layer->shape, "(%llu", (unsigned long long)dims[0]);
    for (int d = 1; d < rank; d++) {
        wide |= dims[d] > (hsize_t)INT64_MAX || __builtin_mul_overflow(layer->p, (int64_t)dims[d], &layer->p);
        off += snprintf(layer->shape + off, off < (int)sizeof layer->shape ? sizeof layer->shape - off : 0,
                        ", %llu", (unsigned long long)dims[d]);
    }
    if (off < (int)sizeof layer->shape) snprintf(layer->shape + off, sizeof layer->shape - off, ")");
    if (wide || layer->p > MK_MAX_FEATURES)
        err = mk_fail(MK_EINPUT, "%s: dataset '%s' has shape %s: more than %lld features (or examples) per layer, "
                      "which BLAS cannot take", file, path, layer->shape, (long long)MK_MAX_FEATURES);
    else if (layer->p == 0)
        err = mk_fail(MK_EINPUT, "%s: dataset '%s' has shape %s: a feature dimension is zero", file, path,
                      layer->shape);
    layer->in_f32 = exact_in_float(type, cls);
    dtype_name(type, cls, layer->dtype, sizeof layer->dtype);
done:
    H5Sclose(space);
    H5Tclose(type);
    return err;
}

/* A file named by a virtual dataset or external storage: absolute, or
 * relative to the folder of the file naming it (or the working folder). */
static int reachable(const char *from, const char *name)
{
    if (!strcmp(name, ".") || access(name, R_OK) == 0) return 1;
    if (name[0] == '/') return 0;
    char path[4200];
    const char *slash = strrchr(from, '/');
    snprintf(path, sizeof path, "%.*s/%s", slash ? (int)(slash - from) : 1, slash ? from : ".", name);
    return access(path, R_OK) == 0;
}

/* HDF5 reads the missing source of a virtual dataset as fill values, and
 * says nothing: every file a layer's data comes from must be there. */
static mk_err check_storage(hid_t dset, const char *file, const char *path)
{
    hid_t dcpl = H5Dget_create_plist(dset);
    mk_err err = MK_OK;
    char name[4096];
    if (dcpl < 0) return MK_OK;
    if (H5Pget_layout(dcpl) == H5D_VIRTUAL) {
        size_t count = 0;
        H5Pget_virtual_count(dcpl, &count);
        for (size_t i = 0; i < count && !err; i++)
            if (H5Pget_virtual_filename(dcpl, i, name, sizeof name) > 0 && !reachable(file, name))
                err = mk_fail(MK_EINPUT, "%s: dataset '%s' is virtual and its source file '%s' cannot be read: HDF5 "
                              "would read fill values in its place", file, path, name);
    }
    int external = H5Pget_external_count(dcpl);
    for (int i = 0; i < external && !err; i++) {
        off_t offset;
        hsize_t size;
        if (H5Pget_external(dcpl, (unsigned)i, sizeof name, name, &offset, &size) >= 0 && !reachable(file, name))
            err = mk_fail(MK_EINPUT, "%s: dataset '%s' stores its data in the external file '%s', which cannot be read",
                          file, path, name);
    }
    H5Pclose(dcpl);
    return err;
}

static mk_err add_layer(mk_model *model, hid_t fid, const char *path)
{
    mk_err err = MK_OK;
    while (*path == '/') path++;
    H5O_info_t info;
    if (H5Oget_info_by_name2(fid, path, &info, H5O_INFO_BASIC, H5P_DEFAULT) < 0)
        return mk_fail(MK_EINPUT, "%s: no dataset '%s'", model->file, path);
    if (info.type != H5O_TYPE_DATASET)
        return mk_fail(MK_EINPUT, "%s: '%s' is a group, not a dataset (use a pattern such as '%s/*')",
                       model->file, path, path);
    mk_layer *grown = realloc(model->layers, (size_t)(model->nlayers + 1) * sizeof *grown);
    if (!grown) return mk_fail(MK_ENOMEM, "cannot grow the layer list");
    model->layers = grown;
    mk_layer *layer = &model->layers[model->nlayers];
    memset(layer, 0, sizeof *layer);
    layer->path = dupstr(path, &err);
    if (err) return err;
    model->nlayers++;
    hid_t dset = H5Dopen2(fid, path, H5P_DEFAULT);
    if (dset < 0) return mk_fail(MK_EINPUT, "%s: cannot open dataset '%s'", model->file, path);
    err = describe(dset, model->file, path, layer);
    if (!err) err = check_storage(dset, model->file, path);
    H5Dclose(dset);
    return err;
}

/* ---- glob expansion ---- */

typedef struct {
    char **paths;
    int count, cap;
    mk_err err;
} path_list;

static herr_t collect_dataset(hid_t obj, const char *name, const H5O_info_t *info, void *data)
{
    path_list *list = data;
    if (info->type != H5O_TYPE_DATASET) return 0;
    if (list->count == list->cap) {
        int cap = list->cap ? 2 * list->cap : 64;
        char **grown = realloc(list->paths, (size_t)cap * sizeof *grown);
        if (!grown) {
            list->err = mk_fail(MK_ENOMEM, "cannot list datasets");
            return -1;
        }
        list->paths = grown;
        list->cap = cap;
    }
    list->paths[list->count] = dupstr(name, &list->err);
    if (list->err) return -1;
    list->count++;
    return 0;
}

static void free_paths(path_list *list)
{
    for (int i = 0; i < list->count; i++) free(list->paths[i]);
    free(list->paths);
    memset(list, 0, sizeof *list);
}

static int cmp_natural(const void *a, const void *b)
{
    return mk_natural_cmp(*(char *const *)a, *(char *const *)b);
}

static mk_err list_datasets(hid_t fid, const char *file, path_list *list)
{
    if (list->paths) return MK_OK;
    if (H5Ovisit2(fid, H5_INDEX_NAME, H5_ITER_INC, collect_dataset, list, H5O_INFO_BASIC) < 0)
        return list->err ? list->err : mk_fail(MK_EINPUT, "%s: cannot list the datasets of the file", file);
    qsort(list->paths, (size_t)list->count, sizeof *list->paths, cmp_natural);
    return MK_OK;
}

static mk_err expand(mk_model *model, hid_t fid, const char *pattern, path_list *all)
{
    while (*pattern == '/') pattern++;
    if (strpbrk(pattern, "*?[") == NULL) return add_layer(model, fid, pattern);
    MK_TRY(list_datasets(fid, model->file, all));
    int before = model->nlayers;
    for (int i = 0; i < all->count; i++)
        if (fnmatch(pattern, all->paths[i], FNM_PATHNAME) == 0) MK_TRY(add_layer(model, fid, all->paths[i]));
    if (model->nlayers == before)
        return mk_fail(MK_EINPUT, "%s: layer pattern '%s' matches no dataset", model->file, pattern);
    return MK_OK;
}

static mk_err check_examples(const mk_model *model)
{
    for (int l = 1; l < model->nlayers; l++)
        if (model->layers[l].n != model->layers[0].n)
            return mk_fail(MK_EINPUT, "%s: dataset '%s' has %lld examples but '%s' has %lld; every layer needs the same",
                           model->file, model->layers[l].path, (long long)model->layers[l].n,
                           model->layers[0].path, (long long)model->layers[0].n);
    return MK_OK;
}

mk_err mk_model_inspect(const mk_model_cfg *cfg, mk_model *model)
{
    mk_err err = MK_OK;
    hid_t fid = -1;
    path_list all = {0};
    memset(model, 0, sizeof *model);
    model->file = dupstr(cfg->file, &err);
    if (!err) model->name = dupstr(cfg->name, &err);
    MK_GOTO(err, fail);
    MK_GOTO(open_file(cfg->file, &fid), fail);
    for (int i = 0; i < cfg->nlayers; i++) MK_GOTO(expand(model, fid, cfg->layers[i], &all), fail);
    MK_GOTO(check_examples(model), fail);
    free_paths(&all);
    H5Fclose(fid);
    return MK_OK;
fail:
    free_paths(&all);
    if (fid >= 0) H5Fclose(fid);
    mk_model_free(model);
    return err;
}

const mk_layer *mk_model_widest(const mk_model *model)
{
    const mk_layer *best = NULL;
    for (int l = 0; model && l < model->nlayers; l++)
        if (!best || model->layers[l].p > best->p) best = &model->layers[l];
    return best;
}

int64_t mk_model_features(const mk_model *model)
{
    int64_t sum = 0;
    for (int l = 0; model && l < model->nlayers; l++) sum += model->layers[l].p;
    return sum;
}

void mk_model_free(mk_model *model)
{
    for (int l = 0; l < model->nlayers; l++) free(model->layers[l].path);
    free(model->layers);
    free(model->file);
    free(model->name);
    memset(model, 0, sizeof *model);
}

/* ---- serialisation: NUL-terminated fields, numbers in decimal ---- */

typedef struct {
    char *buf;
    int64_t len, cap;
    mk_err err;
} packer;

static void put(packer *pk, const char *field)
{
    int64_t need = (int64_t)strlen(field) + 1;
    if (pk->err) return;
    if (pk->len + need > pk->cap) {
        int64_t cap = 2 * (pk->cap + need);
        char *grown = realloc(pk->buf, (size_t)cap);
        if (!grown) {
            pk->err = mk_fail(MK_ENOMEM, "cannot pack the layer list");
            return;
        }
        pk->buf = grown;
        pk->cap = cap;
    }
    memcpy(pk->buf + pk->len, field, (size_t)need);
    pk->len += need;
}

static void put_int(packer *pk, int64_t v)
{
    char num[32];
    snprintf(num, sizeof num, "%lld", (long long)v);
    put(pk, num);
}

mk_err mk_model_pack(const mk_model *model, char **buf, int64_t *len)
{
    packer pk = {0};
    put(&pk, model->file);
    put(&pk, model->name);
    put_int(&pk, model->nlayers);
    for (int l = 0; l < model->nlayers; l++) {
        const mk_layer *layer = &model->layers[l];
        put(&pk, layer->path);
        put_int(&pk, layer->n);
        put_int(&pk, layer->p);
        put_int(&pk, layer->in_f32);
        put(&pk, layer->shape);
        put(&pk, layer->dtype);
    }
    if (pk.err) {
        free(pk.buf);
        return pk.err;
    }
    *buf = pk.buf;
    *len = pk.len;
    return MK_OK;
}

typedef struct {
    const char *buf;
    int64_t len, pos;
} unpacker;

static const char *get(unpacker *u)
{
    if (u->pos >= u->len) return "";
    const char *field = u->buf + u->pos;
    u->pos += (int64_t)strnlen(field, (size_t)(u->len - u->pos)) + 1;
    return field;
}

static int64_t get_int(unpacker *u) { return strtoll(get(u), NULL, 10); }

mk_err mk_model_unpack(const char *buf, int64_t len, mk_model *model)
{
    mk_err err = MK_OK;
    unpacker u = {buf, len, 0};
    memset(model, 0, sizeof *model);
    model->file = dupstr(get(&u), &err);
    if (!err) model->name = dupstr(get(&u), &err);
    int64_t count = get_int(&u);
    if (!err) model->layers = mk_calloc((size_t)count, sizeof *model->layers, "the layer list", &err);
    for (int64_t l = 0; l < count && !err; l++) {
        mk_layer *layer = &model->layers[l];
        layer->path = dupstr(get(&u), &err);
        model->nlayers++;
        layer->n = get_int(&u);
        layer->p = get_int(&u);
        layer->in_f32 = (int)get_int(&u);
        snprintf(layer->shape, sizeof layer->shape, "%s", get(&u));
        snprintf(layer->dtype, sizeof layer->dtype, "%s", get(&u));
    }
    if (err) mk_model_free(model);
    return err;
}

/* ---- reading ---- */

struct mk_source {
    const mk_model *model;
    hid_t fid;
    hid_t *dsets;
    hid_t *spaces;
    hid_t *halves;  /* per layer: the dataset's type when it is little-endian IEEE half, else -1 */
};

/* HDF5 converts half precision in software, an order of magnitude slower than
 * reading it; little-endian IEEE half (what h5py writes) is read as it is
 * stored and widened here instead. */
static int is_half(hid_t type)
{
    size_t spos, epos, esize, mpos, msize;
    if (H5Tget_class(type) != H5T_FLOAT || H5Tget_size(type) != 2 || H5Tget_ebias(type) != 15) return 0;
    if (H5Tget_order(type) != H5T_ORDER_LE || H5Tget_order(H5T_NATIVE_FLOAT) != H5T_ORDER_LE) return 0;
    return H5Tget_fields(type, &spos, &epos, &esize, &mpos, &msize) >= 0 && spos == 15 && epos == 10 &&
           esize == 5 && mpos == 0 && msize == 10;
}

static float half_to_float(uint16_t h)
{
    uint32_t sign = (uint32_t)(h & 0x8000u) << 16, exp = (h >> 10) & 0x1fu, man = h & 0x3ffu, bits;
    float f;
    if (exp == 0) { /* zero or subnormal: man * 2^-24, exact in float */
        f = (float)man * 0x1p-24f;
        return sign ? -f : f;
    }
    bits = exp == 31 ? sign | 0x7f800000u | (man << 13) : sign | ((exp + 112) << 23) | (man << 13);
    memcpy(&f, &bits, sizeof f);
    return f;
}

/* From the end, so that the floats never overwrite halves still to be read. */
static void widen_halves(void *buf, int64_t count)
{
    const uint16_t *h = buf;
    float *f = buf;
    for (int64_t i = count - 1; i >= 0; i--) f[i] = half_to_float(h[i]);
}

void mk_source_close(mk_source *src)
{
    if (!src) return;
    for (int l = 0; src->dsets && l < src->model->nlayers; l++) {
        if (src->halves && src->halves[l] >= 0) H5Tclose(src->halves[l]);
        if (src->spaces[l] >= 0) H5Sclose(src->spaces[l]);
        if (src->dsets[l] >= 0) H5Dclose(src->dsets[l]);
    }
    if (src->fid >= 0) H5Fclose(src->fid);
    free(src->dsets);
    free(src->spaces);
    free(src->halves);
    free(src);
}

mk_err mk_source_open(const mk_model *model, mk_source **out)
{
    mk_err err = MK_OK;
    mk_source *src = mk_calloc(1, sizeof *src, "a source", &err);
    if (err) return err;
    src->model = model;
    src->fid = -1;
    src->dsets = mk_malloc((size_t)model->nlayers * sizeof(hid_t), "dataset handles", &err);
    if (!err) src->spaces = mk_malloc((size_t)model->nlayers * sizeof(hid_t), "dataspaces", &err);
    if (!err) src->halves = mk_malloc((size_t)model->nlayers * sizeof(hid_t), "dataset types", &err);
    if (!err) for (int l = 0; l < model->nlayers; l++) src->dsets[l] = src->spaces[l] = src->halves[l] = -1;
    if (!err) err = open_file(model->file, &src->fid);
    for (int l = 0; l < model->nlayers && !err; l++) {
        src->dsets[l] = H5Dopen2(src->fid, model->layers[l].path, H5P_DEFAULT);
        if (src->dsets[l] >= 0) {
            src->spaces[l] = H5Dget_space(src->dsets[l]);
            hid_t type = H5Dget_type(src->dsets[l]);
            if (is_half(type)) src->halves[l] = type;
            else H5Tclose(type);
        }
        if (src->spaces[l] < 0)
            err = mk_fail(MK_EINPUT, "%s: cannot open dataset '%s'", model->file, model->layers[l].path);
    }
    if (err) {
        mk_source_close(src);
        return err;
    }
    *out = src;
    return MK_OK;
}

/* One hyperslab per run of consecutive rows, each spanning every feature. */
static herr_t select_rows(hid_t space, const int64_t *rows, int64_t m)
{
    hsize_t start[H5S_MAX_RANK] = {0}, count[H5S_MAX_RANK];
    int rank = H5Sget_simple_extent_ndims(space);
    H5Sget_simple_extent_dims(space, count, NULL);
    H5S_seloper_t op = H5S_SELECT_SET;
    for (int64_t i = 0; i < m;) {
        int64_t j = i + 1;
        while (j < m && rows[j] == rows[j - 1] + 1) j++;
        start[0] = (hsize_t)rows[i];
        count[0] = (hsize_t)(j - i);
        if (rank > 0 && H5Sselect_hyperslab(space, op, start, NULL, count, NULL) < 0) return -1;
        op = H5S_SELECT_OR;
        i = j;
    }
    return 0;
}

mk_err mk_source_read(mk_source *src, int l, const int64_t *rows, int64_t m, void *buf)
{
    const mk_layer *layer = &src->model->layers[l];
    hsize_t total = (hsize_t)(m * layer->p);
    hid_t mem = H5Screate_simple(1, &total, NULL);
    hid_t type = src->halves[l] >= 0 ? src->halves[l] : layer->in_f32 ? H5T_NATIVE_FLOAT : H5T_NATIVE_DOUBLE;
    herr_t status = mem < 0 ? -1 : select_rows(src->spaces[l], rows, m);
    if (status >= 0) status = H5Dread(src->dsets[l], type, mem, src->spaces[l], H5P_DEFAULT, buf);
    if (mem >= 0) H5Sclose(mem);
    if (status >= 0 && src->halves[l] >= 0) widen_halves(buf, (int64_t)total);
    if (status < 0)
        return mk_fail(MK_EIO, "%s: cannot read examples %lld..%lld of dataset '%s' (damaged file?)",
                       src->model->file, (long long)rows[0], (long long)rows[m - 1], layer->path);
    return MK_OK;
}
