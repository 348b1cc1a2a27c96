/* Model inspection: which files (shards) and datasets (layers) a model's
 * activations are, checked once on rank 0 before anything is read; the
 * description is packed and sent to every rank (model_pack.c); the shard files are resolved in shards.c. */
#include "mpicka/model.h"

#include "h5file.h"

#include <errno.h>
#include <fcntl.h>
#include <fnmatch.h>
#include <hdf5.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "mpicka/file.h"
#include "mpicka/text.h"

void mk__quiet_hdf5(void) { H5Eset_auto2(H5E_DEFAULT, NULL, NULL); }

char *mk__dupstr(const char *s, mk_err *err)
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

/* Whether another process holds file's lock for writing: HDF5 takes a shared
 * lock to read, an exclusive one to write, and fails the open when it cannot
 * take its own. */
static int locked(const char *file)
{
    int fd = open(file, O_RDONLY | O_NONBLOCK);
    if (fd < 0) return 0;
    int busy = flock(fd, LOCK_SH | LOCK_NB) != 0 && errno == EWOULDBLOCK;
    close(fd);
    return busy;
}

mk_err mk__open_file(const char *file, hid_t fapl, hid_t *fid)
{
    mk__quiet_hdf5();
    struct stat st;
    if (access(file, R_OK) != 0 || stat(file, &st) != 0) {
        int e = errno;
        char where[4200];
        return mk_fail(MK_EINPUT, "cannot open input '%s'%s: %s", file, mk_path_where(file, where, sizeof where),
                       strerror(e));
    }
    if (!S_ISREG(st.st_mode)) /* a pipe would block HDF5's first read forever */
        return mk_fail(MK_EINPUT, "input '%s' is not a regular file (a folder, device or pipe?)", file);
    if (H5Fis_hdf5(file) <= 0) return mk_fail(MK_EINPUT, "input '%s' is not an HDF5 file", file);
    *fid = H5Fopen(file, H5F_ACC_RDONLY, fapl);
    if (*fid >= 0) return MK_OK;
    if (locked(file))
        return mk_fail(MK_EINPUT, "cannot open HDF5 file '%s': another process holds it open for writing (HDF5's "
                       "file locking); wait until it is done, or, if it is no longer written, run with "
                       "HDF5_USE_FILE_LOCKING=FALSE", file);
    return mk_fail(MK_EINPUT, "cannot open HDF5 file '%s' (damaged or truncated?)", file);
}

static mk_err open_file(const char *file, hid_t *fid) { return mk__open_file(file, H5P_DEFAULT, fid); }

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

/* A filter this HDF5 cannot decode would fail at the first chunk it holds,
 * in the middle of the run: say so now. h5py's lzf (32000) is built into
 * h5py, not into Debian's HDF5, which has deflate, shuffle, fletcher32,
 * szip, nbit and scaleoffset. */
static mk_err check_filters(hid_t dset, const char *file, const char *path)
{
    hid_t dcpl = H5Dget_create_plist(dset);
    mk_err err = MK_OK;
    int count = dcpl < 0 ? 0 : H5Pget_nfilters(dcpl);
    for (int i = 0; i < count && !err; i++) {
        unsigned flags, conf;
        size_t nvals = 0;
        char name[256] = "";
        H5Z_filter_t id = H5Pget_filter2(dcpl, (unsigned)i, &flags, &nvals, NULL, sizeof name, name, &conf);
        if (id < 0 || H5Zfilter_avail(id) > 0) continue;
        err = mk_fail(MK_EINPUT, "%s: dataset '%s' is stored with HDF5 filter %d ('%s')%s, which this HDF5 library "
                      "cannot decode; rewrite it uncompressed or with gzip (h5py: compression=\"gzip\")", file, path,
                      (int)id, name, id == 32000 ? ", h5py's lzf compression" : "");
    }
    if (dcpl >= 0) H5Pclose(dcpl);
    return err;
}

/* Bytes of one band of a chunked dataset's chunks (0: not chunked), as
 * the chunk cache holds it; beyond INT64_MAX / 2 it is "huge" all the same. */
static int64_t chunk_band(hid_t dset, hid_t type, int rank, const hsize_t *dims)
{
    hid_t dcpl = H5Dget_create_plist(dset);
    hsize_t chunk[H5S_MAX_RANK];
    double band = 0.0;
    if (dcpl >= 0 && H5Pget_layout(dcpl) == H5D_CHUNKED && H5Pget_chunk(dcpl, rank, chunk) == rank) {
        band = (double)H5Tget_size(type) * (double)chunk[0];
        for (int d = 1; d < rank; d++) band *= chunk[d] ? (double)(((dims[d] + chunk[d] - 1) / chunk[d]) * chunk[d]) : 0.0;
    }
    if (dcpl >= 0) H5Pclose(dcpl);
    return band < (double)(INT64_MAX / 2) ? (int64_t)band : INT64_MAX / 2;
}

/* n, p and the shape "(n, 64, 4, 4)" from the dimensions; nonzero when a
 * dimension or the features overflow int64 (the shape is still written,
 * for the message). */
static int set_shape(mk_layer *layer, const hsize_t *dims, int rank)
{
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
    return wide;
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
    if (set_shape(layer, dims, rank) || layer->p > MK_MAX_FEATURES)
        err = mk_fail(MK_EINPUT, "%s: dataset '%s' has shape %s: more than %lld features (or examples) per layer, "
                      "which BLAS cannot take", file, path, layer->shape, (long long)MK_MAX_FEATURES);
    else if (layer->p == 0)
        err = mk_fail(MK_EINPUT, "%s: dataset '%s' has shape %s: a feature dimension is zero", file, path,
                      layer->shape);
    layer->in_f32 = exact_in_float(type, cls);
    layer->band = chunk_band(dset, type, rank, dims);
    dtype_name(type, cls, layer->dtype, sizeof layer->dtype);
    if (!err) err = check_filters(dset, file, path);
done:
    H5Sclose(space);
    H5Tclose(type);
    return err;
}

/* Up to three dataset paths close to `path` (a typo, a missing group). */
static void closest_names(const char *path, char *const *all, int count, char *out, size_t len)
{
    int best[3] = {-1, -1, -1};
    size_t dist[3] = {(size_t)-1, (size_t)-1, (size_t)-1}, plen = strlen(path);
    for (int i = 0; i < count; i++) {
        size_t d = mk_edit_distance(path, all[i]), prefix = 0;
        while (path[prefix] && path[prefix] == all[i][prefix]) prefix++;
        if (prefix >= 3 && prefix * 2 >= plen && d > 2) d = 2 + (plen - prefix); /* a missing or extra part */
        if (d > plen / 2 + 2) continue;
        for (int k = 0; k < 3; k++)
            if (d < dist[k]) {
                for (int j = 2; j > k; j--) best[j] = best[j - 1], dist[j] = dist[j - 1];
                best[k] = i, dist[k] = d;
                break;
            }
    }
    size_t off = 0;
    out[0] = '\0';
    for (int k = 0; k < 3 && best[k] >= 0 && off < len; k++)
        off += (size_t)snprintf(out + off, len - off, "%s'%s'", k ? ", " : " (closest: ", all[best[k]]);
    if (off && off < len) snprintf(out + off, len - off, ")");
}

/* ---- glob expansion ---- */

typedef struct {
    char **paths;
    int count, cap;
    mk_err err;
    int need_order;  /* creation order asked for: every group must track it */
    int untracked;   /* a group does not */
} path_list;

/* Whether group `name` records the creation order of its links (without it,
 * HDF5 quietly lists them in another order). */
static int tracks_order(hid_t obj, const char *name)
{
    hid_t g = H5Gopen2(obj, name, H5P_DEFAULT), gcpl = g < 0 ? -1 : H5Gget_create_plist(g);
    unsigned flags = 0;
    int ok = gcpl >= 0 && H5Pget_link_creation_order(gcpl, &flags) >= 0 && (flags & H5P_CRT_ORDER_TRACKED);
    if (gcpl >= 0) H5Pclose(gcpl);
    if (g >= 0) H5Gclose(g);
    return ok;
}

static herr_t collect_dataset(hid_t obj, const char *name, const H5O_info_t *info, void *data)
{
    path_list *list = data;
    if (info->type == H5O_TYPE_GROUP && list->need_order && !tracks_order(obj, name)) {
        list->untracked = 1;
        return -1;
    }
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
    list->paths[list->count] = mk__dupstr(name, &list->err);
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

int mk__cmp_natural(const void *a, const void *b)
{
    return mk_natural_cmp(*(char *const *)a, *(char *const *)b);
}

/* Every dataset of the file: in creation order when the file tracks it (every
 * group visited must) and `order` allows; otherwise by name, in natural order.
 * *used says which. */
static mk_err list_datasets(hid_t fid, const char *file, int order, path_list *list, int *used)
{
    if (list->paths) return MK_OK;
    if (order != MK_ORDER_NATURAL) {
        list->need_order = 1;
        if (H5Ovisit2(fid, H5_INDEX_CRT_ORDER, H5_ITER_INC, collect_dataset, list, H5O_INFO_BASIC) >= 0) {
            *used = MK_ORDER_CREATION;
            return MK_OK;
        }
        if (list->err) return list->err;
        free_paths(list);
        if (order == MK_ORDER_CREATION)
            return mk_fail(MK_EINPUT, "%s: the file does not track the creation order of its datasets "
                           "(layer_order: creation); use layer_order: natural or auto", file);
    }
    if (H5Ovisit2(fid, H5_INDEX_NAME, H5_ITER_INC, collect_dataset, list, H5O_INFO_BASIC) < 0)
        return list->err ? list->err : mk_fail(MK_EINPUT, "%s: cannot list the datasets of the file", file);
    qsort(list->paths, (size_t)list->count, sizeof *list->paths, mk__cmp_natural);
    *used = MK_ORDER_NATURAL;
    return MK_OK;
}

/* The error for a layer that is not there, with the names that are. */
static mk_err no_dataset(hid_t fid, const char *file, const char *path, int order)
{
    path_list all = {0};
    int used;
    char near[1024] = "";
    if (list_datasets(fid, file, order, &all, &used) == MK_OK) closest_names(path, all.paths, all.count, near, sizeof near);
    free_paths(&all);
    return mk_fail(MK_EINPUT, "%s: no dataset '%s'%s", file, path, near);
}

/* The layer's object, found through its links with the guard up (h5file.h). */
static mk_err find_layer(hid_t fid, const char *file, const char *path, H5O_info_t *info, int *found)
{
    mk__link_guard g;
    hid_t lapl = mk__guard_links(&g);
    if (lapl < 0) return mk_fail(MK_EINTERNAL, "cannot set up HDF5 link access");
    *found = H5Lexists(fid, path, lapl) > 0 && H5Oget_info_by_name2(fid, path, info, H5O_INFO_BASIC, lapl) >= 0;
    H5Pclose(lapl);
    return g.why[0] ? mk__guard_failed(&g, file, path) : MK_OK;
}

static mk_err add_layer(mk_model *model, hid_t fid, const char *path, int order)
{
    mk_err err = MK_OK;
    while (*path == '/') path++;
    H5O_info_t info;
    int found;
    MK_TRY(find_layer(fid, model->files[0], path, &info, &found));
    if (!found) return no_dataset(fid, model->files[0], path, order);
    if (info.type != H5O_TYPE_DATASET)
        return mk_fail(MK_EINPUT, "%s: '%s' is a group, not a dataset (use a pattern such as '%s/*')",
                       model->files[0], path, path);
    mk_layer *grown = realloc(model->layers, (size_t)(model->nlayers + 1) * sizeof *grown);
    if (!grown) return mk_fail(MK_ENOMEM, "cannot grow the layer list");
    model->layers = grown;
    mk_layer *layer = &model->layers[model->nlayers];
    memset(layer, 0, sizeof *layer);
    layer->path = mk__dupstr(path, &err);
    if (err) return err;
    model->nlayers++;
    hid_t dset = H5Dopen2(fid, path, H5P_DEFAULT);
    if (dset < 0) return mk_fail(MK_EINPUT, "%s: cannot open dataset '%s'", model->files[0], path);
    err = describe(dset, model->files[0], path, layer);
    if (!err) err = mk__check_storage(dset, model->files[0], path);
    H5Dclose(dset);
    return err;
}

static const char *ids_name(const mk_model_cfg *cfg)
{
    const char *ids = cfg->ids ? cfg->ids : "ids";
    while (*ids == '/') ids++;
    return ids;
}

static mk_err expand(mk_model *model, const mk_model_cfg *cfg, hid_t fid, const char *pattern, path_list *all)
{
    while (*pattern == '/') pattern++;
    if (strpbrk(pattern, "*?[") == NULL) return add_layer(model, fid, pattern, cfg->order);
    MK_TRY(list_datasets(fid, model->files[0], cfg->order, all, &model->order));
    int before = model->nlayers;
    for (int i = 0; i < all->count; i++)
        if (strcmp(all->paths[i], ids_name(cfg)) && fnmatch(pattern, all->paths[i], FNM_PATHNAME) == 0)
            MK_TRY(add_layer(model, fid, all->paths[i], cfg->order));
    if (model->nlayers == before)
        return mk_fail(MK_EINPUT, "%s: layer pattern '%s' matches no dataset", model->files[0], pattern);
    return MK_OK;
}

static mk_err check_examples(const char *file, const mk_layer *layers, int nlayers)
{
    for (int l = 1; l < nlayers; l++)
        if (layers[l].n != layers[0].n)
            return mk_fail(MK_EINPUT, "%s: dataset '%s' has %lld examples but '%s' has %lld; every layer needs the same",
                           file, layers[l].path, (long long)layers[l].n, layers[0].path, (long long)layers[0].n);
    return MK_OK;
}

/* "a.h5", or "a.h5, b.h5" or the glob as given: what messages call the model's input. */
static mk_err label(const mk_model_cfg *cfg, mk_model *model)
{
    size_t len = 1;
    for (int i = 0; i < cfg->nfiles; i++) len += strlen(cfg->files[i]) + 2;
    mk_err err = MK_OK;
    model->file = mk_malloc(len, "the input's name", &err);
    if (err) return err;
    model->file[0] = '\0';
    for (int i = 0; i < cfg->nfiles; i++) {
        if (i) strcat(model->file, ", ");
        strcat(model->file, cfg->files[i]);
    }
    return MK_OK;
}

/* "(n, 64, 4, 4)" with the first number replaced. */
static void set_examples(mk_layer *layer, int64_t n)
{
    char out[128];
    const char *tail = strpbrk(layer->shape, ",)");
    int len = snprintf(out, sizeof out, "(%lld%s", (long long)n, tail ? tail : ")");
    size_t keep = len < (int)sizeof layer->shape ? (size_t)len : sizeof layer->shape - 1;
    memcpy(layer->shape, out, keep);
    layer->shape[keep] = '\0';
    layer->n = n;
}

/* The IDs dataset of one shard: absent (*has = 0), or 1-D with n integers or strings. */
static mk_err inspect_ids(hid_t fid, const char *file, const char *ids, int64_t n, int *has)
{
    H5O_info_t info;
    MK_TRY(find_layer(fid, file, ids, &info, has));
    *has = *has && info.type == H5O_TYPE_DATASET;
    if (!*has) return MK_OK;
    hid_t dset = H5Dopen2(fid, ids, H5P_DEFAULT);
    if (dset < 0) return mk_fail(MK_EINPUT, "%s: cannot open the sample-ID dataset '%s'", file, ids);
    hid_t type = H5Dget_type(dset), space = H5Dget_space(dset);
    H5T_class_t cls = H5Tget_class(type);
    int wide = cls == H5T_INTEGER && H5Tget_precision(type) > 64;
    hsize_t dims[H5S_MAX_RANK] = {0};
    int rank = H5Sget_simple_extent_ndims(space);
    if (rank == 1) H5Sget_simple_extent_dims(space, dims, NULL);
    H5Sclose(space);
    H5Tclose(type);
    H5Dclose(dset);
    if (rank != 1 || (cls != H5T_INTEGER && cls != H5T_STRING))
        return mk_fail(MK_EINPUT, "%s: the sample-ID dataset '%s' must be 1-D and hold integers or strings "
                       "(or set ids.dataset, or ids: false)", file, ids);
    if (wide) /* HDF5 would clip them to 64 bits: different IDs would compare equal */
        return mk_fail(MK_EINPUT, "%s: the sample-ID dataset '%s' holds integers wider than 64 bits; store them as "
                       "64-bit integers or strings (or set ids: false)", file, ids);
    if ((int64_t)dims[0] != n)
        return mk_fail(MK_EINPUT, "%s: the sample-ID dataset '%s' has %llu entries but the layers have %lld examples",
                       file, ids, (unsigned long long)dims[0], (long long)n);
    return MK_OK;
}

/* Shard f (f > 0) holds every layer of the first with the same trailing shape
 * and type; returns its n. */
static mk_err inspect_shard(const mk_model *model, int f, hid_t fid, int64_t *n)
{
    const char *file = model->files[f];
    mk_err err = MK_OK;
    mk_layer *seen = mk_calloc((size_t)model->nlayers + 1, sizeof *seen, "the layer list", &err);
    for (int l = 0; l < model->nlayers && !err; l++) {
        const mk_layer *want = &model->layers[l];
        H5O_info_t info;
        int found;
        err = find_layer(fid, file, want->path, &info, &found);
        if (err) break;
        if (!found || info.type != H5O_TYPE_DATASET) {
            err = mk_fail(MK_EINPUT, "%s: no dataset '%s', which the first shard %s has; every shard must hold the "
                          "same layers", file, want->path, model->files[0]);
            break;
        }
        hid_t dset = H5Dopen2(fid, want->path, H5P_DEFAULT);
        seen[l].path = want->path;
        err = dset < 0 ? mk_fail(MK_EINPUT, "%s: cannot open dataset '%s'", file, want->path)
                       : describe(dset, file, want->path, &seen[l]);
        if (!err) err = mk__check_storage(dset, file, want->path);
        if (dset >= 0) H5Dclose(dset);
        const char *a = strpbrk(want->shape, ",)"), *b = strpbrk(seen[l].shape, ",)");
        if (!err && (seen[l].p != want->p || strcmp(a ? a : "", b ? b : "") || strcmp(seen[l].dtype, want->dtype)))
            err = mk_fail(MK_EINPUT, "%s: dataset '%s' has shape %s and type %s, but %s in the first shard %s; every "
                          "shard must hold the same trailing shape and type", file, want->path, seen[l].shape,
                          seen[l].dtype, want->dtype, model->files[0]);
    }
    if (!err) err = check_examples(file, seen, model->nlayers);
    if (!err) *n = model->nlayers ? seen[0].n : 0;
    free(seen);
    return err;
}

static mk_err check_ids_presence(const mk_model *model, int f, int has)
{
    if (has == (model->ids != NULL)) return MK_OK;
    return mk_fail(MK_EINPUT, "%s %s the sample-ID dataset '%s' but the first shard %s %s; every shard needs it, or none",
                   model->files[f], has ? "has" : "lacks", model->ids ? model->ids : "ids", model->files[0],
                   has ? "does not" : "has it");
}

/* The first shard gives the layers; every other must match. */
static mk_err inspect_shards(const mk_model_cfg *cfg, mk_model *model)
{
    mk_err err = MK_OK;
    model->first = mk_calloc((size_t)model->nfiles + 1, sizeof *model->first, "the shard list", &err);
    for (int f = 0; f < model->nfiles && !err; f++) {
        hid_t fid = -1;
        int64_t n = 0;
        int has = 0;
        err = open_file(model->files[f], &fid);
        if (!err && f == 0) {
            path_list all = {0};
            model->order = MK_ORDER_NATURAL;
            for (int i = 0; i < cfg->nlayers && !err; i++) err = expand(model, cfg, fid, cfg->layers[i], &all);
            free_paths(&all);
            if (!err) err = check_examples(model->files[0], model->layers, model->nlayers);
            if (!err) n = model->nlayers ? model->layers[0].n : 0;
        } else if (!err) {
            err = inspect_shard(model, f, fid, &n);
        }
        if (!err && cfg->check_ids && model->nlayers) err = inspect_ids(fid, model->files[f], ids_name(cfg), n, &has);
        if (!err && f == 0 && has) model->ids = mk__dupstr(ids_name(cfg), &err);
        if (!err && f > 0 && cfg->check_ids) err = check_ids_presence(model, f, has);
        if (!err && n > INT64_MAX - model->first[f]) err = mk_fail(MK_EINPUT, "%s: too many examples", model->file);
        if (!err) model->first[f + 1] = model->first[f] + n;
        if (fid >= 0) H5Fclose(fid);
    }
    for (int l = 0; l < model->nlayers && !err; l++) set_examples(&model->layers[l], model->first[model->nfiles]);
    return err;
}

mk_err mk_model_inspect(const mk_model_cfg *cfg, mk_model *model)
{
    mk_err err = MK_OK;
    memset(model, 0, sizeof *model);
    mk__quiet_hdf5();
    model->name = mk__dupstr(cfg->name, &err);
    MK_GOTO(err, fail);
    MK_GOTO(label(cfg, model), fail);
    MK_GOTO(mk__resolve_files(cfg, model), fail);
    MK_GOTO(inspect_shards(cfg, model), fail);
    return MK_OK;
fail:
    mk_model_free(model);
    return err;
}

int mk_model_shard(const mk_model *model, int64_t i)
{
    int lo = 0, hi = model->nfiles - 1;
    while (lo < hi) { /* the last shard whose first example is <= i */
        int mid = (lo + hi + 1) / 2;
        if (model->first[mid] <= i) lo = mid;
        else hi = mid - 1;
    }
    return lo;
}

/* Adds name to the list unless it is there (a short list: a linear search). */
static mk_err add_unique(char ***files, int *count, const char *name)
{
    for (int i = 0; i < *count; i++)
        if (!strcmp((*files)[i], name)) return MK_OK;
    char **grown = realloc(*files, (size_t)(*count + 1) * sizeof *grown);
    if (!grown) return mk_fail(MK_ENOMEM, "out of memory listing the input files");
    *files = grown;
    mk_err err = MK_OK;
    grown[*count] = mk__dupstr(name, &err);
    if (!err) ++*count;
    return err;
}

/* The files one layer's data comes from: the file holding the dataset (not
 * the shard, behind an external link), its virtual sources, its external
 * storage. */
static mk_err layer_files(hid_t fid, const char *shard, const char *path, char ***files, int *count)
{
    hid_t dset = H5Dopen2(fid, path, H5P_DEFAULT);
    if (dset < 0) return MK_OK; /* inspection has said what is wrong with it */
    char home[4096], name[4096], full[8400];
    hid_t owner = H5Iget_file_id(dset);
    ssize_t n = owner >= 0 ? H5Fget_name(owner, home, sizeof home) : -1;
    if (owner >= 0) H5Fclose(owner);
    mk_err err = n > 0 && (size_t)n < sizeof home ? add_unique(files, count, home) : MK_OK;
    const char *from = n > 0 ? home : shard;
    hid_t dcpl = H5Dget_create_plist(dset);
    size_t nvirtual = 0;
    if (dcpl >= 0 && H5Pget_layout(dcpl) == H5D_VIRTUAL) H5Pget_virtual_count(dcpl, &nvirtual);
    for (size_t i = 0; i < nvirtual && !err; i++)
        if (H5Pget_virtual_filename(dcpl, i, name, sizeof name) > 0 && strcmp(name, ".")) {
            mk__resolve_from(from, name, full, sizeof full);
            err = add_unique(files, count, full);
        }
    int external = dcpl >= 0 ? H5Pget_external_count(dcpl) : 0;
    for (int i = 0; i < external && !err; i++) {
        off_t offset;
        hsize_t size;
        if (H5Pget_external(dcpl, (unsigned)i, sizeof name, name, &offset, &size) >= 0) {
            mk__resolve_from(from, name, full, sizeof full);
            err = add_unique(files, count, full);
        }
    }
    if (dcpl >= 0) H5Pclose(dcpl);
    H5Dclose(dset);
    return err;
}

mk_err mk_model_files(const mk_model *model, char ***files, int *count)
{
    mk_err err = MK_OK;
    *count = 0;
    *files = NULL;
    for (int f = 0; f < model->nfiles && !err; f++) err = add_unique(files, count, model->files[f]);
    for (int f = 0; f < model->nfiles && !err; f++) {
        hid_t fid = -1;
        err = open_file(model->files[f], &fid);
        for (int l = 0; l < model->nlayers && !err; l++)
            err = layer_files(fid, model->files[f], model->layers[l].path, files, count);
        if (fid >= 0) H5Fclose(fid);
    }
    if (err) mk_model_files_free(*files, *count);
    return err;
}

void mk_model_files_free(char **files, int count)
{
    for (int f = 0; files && f < count; f++) free(files[f]);
    free(files);
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
    for (int f = 0; f < model->nfiles; f++) free(model->files[f]);
    free(model->files);
    free(model->first);
    free(model->ids);
    free(model->file);
    free(model->name);
    memset(model, 0, sizeof *model);
}
