#include "mpicka/source.h"

#include "chunks.h"
#include "preads.h"

#include <errno.h>
#include <fcntl.h>
#include <fnmatch.h>
#include <glob.h>
#include <hdf5.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "mpicka/text.h"

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

/* fapl: H5P_DEFAULT, or the source's access list (see source_fapl). */
static mk_err open_file_with(const char *file, hid_t fapl, hid_t *fid)
{
    quiet_hdf5();
    struct stat st;
    if (access(file, R_OK) != 0 || stat(file, &st) != 0)
        return mk_fail(MK_EINPUT, "cannot open input '%s': %s", file, strerror(errno));
    if (!S_ISREG(st.st_mode)) /* a pipe would block HDF5's first read forever */
        return mk_fail(MK_EINPUT, "input '%s' is not a regular file (a folder, device or pipe?)", file);
    if (H5Fis_hdf5(file) <= 0) return mk_fail(MK_EINPUT, "input '%s' is not an HDF5 file", file);
    *fid = H5Fopen(file, H5F_ACC_RDONLY, fapl);
    if (*fid < 0) return mk_fail(MK_EINPUT, "cannot open HDF5 file '%s' (damaged or truncated?)", file);
    return MK_OK;
}

static mk_err open_file(const char *file, hid_t *fid) { return open_file_with(file, H5P_DEFAULT, fid); }

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
    layer->band = chunk_band(dset, type, rank, dims);
    dtype_name(type, cls, layer->dtype, sizeof layer->dtype);
    if (!err) err = check_filters(dset, file, path);
done:
    H5Sclose(space);
    H5Tclose(type);
    return err;
}

/* A file named by a virtual dataset or external storage, as found from the
 * file naming it: absolute, relative to the working folder, or to its folder. */
static void resolve_from(const char *from, const char *name, char *out, size_t len)
{
    const char *slash = strrchr(from, '/');
    if (name[0] == '/' || access(name, F_OK) == 0 || !slash) snprintf(out, len, "%s", name);
    else snprintf(out, len, "%.*s/%s", (int)(slash - from), from, name);
}

static int reachable(const char *from, const char *name)
{
    char path[8400];
    resolve_from(from, name, path, sizeof path);
    return !strcmp(name, ".") || access(path, R_OK) == 0;
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
    qsort(list->paths, (size_t)list->count, sizeof *list->paths, cmp_natural);
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

static mk_err add_layer(mk_model *model, hid_t fid, const char *path, int order)
{
    mk_err err = MK_OK;
    while (*path == '/') path++;
    H5O_info_t info;
    if (H5Oget_info_by_name2(fid, path, &info, H5O_INFO_BASIC, H5P_DEFAULT) < 0)
        return no_dataset(fid, model->files[0], path, order);
    if (info.type != H5O_TYPE_DATASET)
        return mk_fail(MK_EINPUT, "%s: '%s' is a group, not a dataset (use a pattern such as '%s/*')",
                       model->files[0], path, path);
    mk_layer *grown = realloc(model->layers, (size_t)(model->nlayers + 1) * sizeof *grown);
    if (!grown) return mk_fail(MK_ENOMEM, "cannot grow the layer list");
    model->layers = grown;
    mk_layer *layer = &model->layers[model->nlayers];
    memset(layer, 0, sizeof *layer);
    layer->path = dupstr(path, &err);
    if (err) return err;
    model->nlayers++;
    hid_t dset = H5Dopen2(fid, path, H5P_DEFAULT);
    if (dset < 0) return mk_fail(MK_EINPUT, "%s: cannot open dataset '%s'", model->files[0], path);
    err = describe(dset, model->files[0], path, layer);
    if (!err) err = check_storage(dset, model->files[0], path);
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

/* ---- shards ---- */

static mk_err add_file(mk_model *model, const char *path, int *cap)
{
    mk_err err = MK_OK;
    for (int i = 0; i < model->nfiles; i++)
        if (!strcmp(model->files[i], path))
            return mk_fail(MK_EINPUT, "input '%s' is listed twice; each shard must be given once", path);
    if (model->nfiles == *cap) {
        int grow = *cap ? 2 * *cap : 8;
        char **files = realloc(model->files, (size_t)grow * sizeof *files);
        if (!files) return mk_fail(MK_ENOMEM, "cannot list the input files");
        model->files = files;
        *cap = grow;
    }
    model->files[model->nfiles] = dupstr(path, &err);
    if (!err) model->nfiles++;
    return err;
}

/* The shards: each entry a file, or a glob expanded in natural order. */
static mk_err resolve_files(const mk_model_cfg *cfg, mk_model *model)
{
    int cap = 0;
    for (int i = 0; i < cfg->nfiles; i++) {
        const char *entry = cfg->files[i];
        if (!strpbrk(entry, "*?[")) {
            MK_TRY(add_file(model, entry, &cap));
            continue;
        }
        glob_t g;
        int rc = glob(entry, 0, NULL, &g);
        if (rc == GLOB_NOMATCH) return mk_fail(MK_EINPUT, "input pattern '%s' matches no file", entry);
        if (rc != 0) return mk_fail(rc == GLOB_NOSPACE ? MK_ENOMEM : MK_EINPUT, "cannot expand input pattern '%s'", entry);
        qsort(g.gl_pathv, g.gl_pathc, sizeof *g.gl_pathv, cmp_natural);
        mk_err err = MK_OK;
        for (size_t k = 0; k < g.gl_pathc && !err; k++) err = add_file(model, g.gl_pathv[k], &cap);
        globfree(&g);
        MK_TRY(err);
    }
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
    *has = H5Lexists(fid, ids, H5P_DEFAULT) > 0 &&
           H5Oget_info_by_name2(fid, ids, &info, H5O_INFO_BASIC, H5P_DEFAULT) >= 0 && info.type == H5O_TYPE_DATASET;
    if (!*has) return MK_OK;
    hid_t dset = H5Dopen2(fid, ids, H5P_DEFAULT);
    if (dset < 0) return mk_fail(MK_EINPUT, "%s: cannot open the sample-ID dataset '%s'", file, ids);
    hid_t type = H5Dget_type(dset), space = H5Dget_space(dset);
    H5T_class_t cls = H5Tget_class(type);
    hsize_t dims[H5S_MAX_RANK] = {0};
    int rank = H5Sget_simple_extent_ndims(space);
    if (rank == 1) H5Sget_simple_extent_dims(space, dims, NULL);
    H5Sclose(space);
    H5Tclose(type);
    H5Dclose(dset);
    if (rank != 1 || (cls != H5T_INTEGER && cls != H5T_STRING))
        return mk_fail(MK_EINPUT, "%s: the sample-ID dataset '%s' must be 1-D and hold integers or strings "
                       "(or set ids.dataset, or ids: false)", file, ids);
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
        if (H5Lexists(fid, want->path, H5P_DEFAULT) <= 0 ||
            H5Oget_info_by_name2(fid, want->path, &info, H5O_INFO_BASIC, H5P_DEFAULT) < 0 ||
            info.type != H5O_TYPE_DATASET) {
            err = mk_fail(MK_EINPUT, "%s: no dataset '%s', which the first shard %s has; every shard must hold the "
                          "same layers", file, want->path, model->files[0]);
            break;
        }
        hid_t dset = H5Dopen2(fid, want->path, H5P_DEFAULT);
        seen[l].path = want->path;
        err = dset < 0 ? mk_fail(MK_EINPUT, "%s: cannot open dataset '%s'", file, want->path)
                       : describe(dset, file, want->path, &seen[l]);
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
        if (!err && f == 0 && has) model->ids = dupstr(ids_name(cfg), &err);
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
    quiet_hdf5();
    model->name = dupstr(cfg->name, &err);
    MK_GOTO(err, fail);
    MK_GOTO(label(cfg, model), fail);
    MK_GOTO(resolve_files(cfg, model), fail);
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
    grown[*count] = dupstr(name, &err);
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
            resolve_from(from, name, full, sizeof full);
            err = add_unique(files, count, full);
        }
    int external = dcpl >= 0 ? H5Pget_external_count(dcpl) : 0;
    for (int i = 0; i < external && !err; i++) {
        off_t offset;
        hsize_t size;
        if (H5Pget_external(dcpl, (unsigned)i, sizeof name, name, &offset, &size) >= 0) {
            resolve_from(from, name, full, sizeof full);
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
    put(&pk, model->ids ? model->ids : "");
    put_int(&pk, model->order);
    put_int(&pk, model->nfiles);
    for (int f = 0; f < model->nfiles; f++) {
        put(&pk, model->files[f]);
        put_int(&pk, model->first[f + 1]);
    }
    put_int(&pk, model->nlayers);
    for (int l = 0; l < model->nlayers; l++) {
        const mk_layer *layer = &model->layers[l];
        put(&pk, layer->path);
        put_int(&pk, layer->n);
        put_int(&pk, layer->p);
        put_int(&pk, layer->in_f32);
        put(&pk, layer->shape);
        put(&pk, layer->dtype);
        put_int(&pk, layer->band);
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
    const char *ids = get(&u);
    if (!err && *ids) model->ids = dupstr(ids, &err);
    model->order = (int)get_int(&u);
    int64_t nfiles = get_int(&u);
    if (!err) model->files = mk_calloc((size_t)nfiles, sizeof *model->files, "the input list", &err);
    if (!err) model->first = mk_calloc((size_t)nfiles + 1, sizeof *model->first, "the shard list", &err);
    for (int64_t f = 0; f < nfiles && !err; f++) {
        model->files[f] = dupstr(get(&u), &err);
        model->nfiles += !err;
        model->first[f + 1] = get_int(&u);
    }
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
        layer->band = get_int(&u);
    }
    if (err) mk_model_free(model);
    return err;
}

/* ---- reading ---- */

/* Per shard: the file and each layer's dataset, dataspace and IDs; and for
 * the layers read directly (see direct_offset), the file's descriptor and
 * where their values start. */
typedef struct {
    hid_t fid;
    hid_t *dsets;
    hid_t *spaces;
    hid_t ids, ids_space;
    int fd;           /* -1 when no layer is read directly */
    int64_t *direct;  /* per layer: byte offset of its values in the file, or -1 */
    mk_chunks **chunks; /* per layer: its deflated chunks read and inflated here (chunks.h), or NULL */
} shard;

struct mk_source {
    const mk_model *model;
    size_t cap;       /* each chunked layer's band at most (chunk_cache_cap) */
    shard *shards;
    hid_t *halves;  /* per layer: the dataset's type when it is little-endian IEEE half in every shard, else -1 */
    mk_preads *reads; /* the direct reads of a batch, together (NULL: one pread at a time) */
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

static void close_shard(shard *sh, int nlayers)
{
    for (int l = 0; sh->dsets && l < nlayers; l++) {
        if (sh->spaces[l] >= 0) H5Sclose(sh->spaces[l]);
        if (sh->dsets[l] >= 0) H5Dclose(sh->dsets[l]);
    }
    if (sh->ids_space >= 0) H5Sclose(sh->ids_space);
    if (sh->ids >= 0) H5Dclose(sh->ids);
    if (sh->fid >= 0) H5Fclose(sh->fid);
    if (sh->fd >= 0) close(sh->fd);
    for (int l = 0; sh->chunks && l < nlayers; l++) mk_chunks_close(sh->chunks[l]);
    free(sh->chunks);
    free(sh->dsets);
    free(sh->spaces);
    free(sh->direct);
}

void mk_source_close(mk_source *src)
{
    if (!src) return;
    for (int f = 0; src->shards && f < src->model->nfiles; f++) close_shard(&src->shards[f], src->model->nlayers);
    for (int l = 0; src->halves && l < src->model->nlayers; l++)
        if (src->halves[l] >= 0) H5Tclose(src->halves[l]);
    mk_preads_close(src->reads);
    free(src->shards);
    free(src->halves);
    free(src);
}

/* No sieve buffer: HDF5 then reads each run of consecutive rows of a
 * contiguous dataset with one read of exactly its bytes. Its default 64 KiB
 * sieve reads 64 KiB for every row of a shuffled batch that lies outside the
 * last 64 KiB read: 11 times the data for 4 KiB rows, 250 times for 256-byte
 * rows (docs/performance.md, "Shuffled and compressed reads"). */
static hid_t source_fapl(void)
{
    hid_t fapl = H5Pcreate(H5P_FILE_ACCESS);
    if (fapl >= 0 && H5Pset_sieve_buf_size(fapl, 0) < 0) {
        H5Pclose(fapl);
        return -1;
    }
    return fapl;
}

/* A chunked dataset's cache holds one band of chunks (every chunk of a
 * chunk's worth of rows, across the features) within `cap` bytes: the band
 * a batch ends in is the one the next batch starts in, so with chunks that
 * do not align with batches each chunk is still read and decompressed once
 * per pass, not twice. HDF5's default (1 MiB) holds half of h5py's band for
 * 1024 float32 features. A band over the cap decompresses its boundary
 * chunks twice: at most one band in ceil(batch / chunk rows) + 1. Every
 * dataset keeps its cache full until the source closes, so all layers and
 * shards share CHUNK_CACHES, each within [HDF5's default, MAX_CHUNK_CACHE]. */
#define MAX_CHUNK_CACHE ((size_t)16 << 20)

static size_t chunk_cache_cap(const mk_model *model, size_t budget)
{
    size_t each = budget / ((size_t)model->nlayers * (size_t)model->nfiles + 1);
    return each < ((size_t)1 << 20) ? (size_t)1 << 20 : each > MAX_CHUNK_CACHE ? MAX_CHUNK_CACHE : each;
}

size_t mk_source_cache_bytes(const mk_model *model, size_t budget)
{
    size_t cap = chunk_cache_cap(model, budget), total = 0;
    for (int l = 0; l < model->nlayers; l++) {
        size_t band = (size_t)model->layers[l].band;
        total += (size_t)model->nfiles * (band < cap ? band : cap);
    }
    return total;
}

static hid_t chunk_access(hid_t dset, size_t cap)
{
    hid_t dcpl = H5Dget_create_plist(dset), space = H5Dget_space(dset), type = H5Dget_type(dset), dapl = -1;
    hsize_t chunk[H5S_MAX_RANK], dims[H5S_MAX_RANK];
    int rank = space < 0 ? -1 : H5Sget_simple_extent_dims(space, dims, NULL);
    if (dcpl >= 0 && type >= 0 && rank >= 1 && H5Pget_layout(dcpl) == H5D_CHUNKED &&
        H5Pget_chunk(dcpl, rank, chunk) == rank) {
        size_t bytes = H5Tget_size(type), chunks = 1;
        for (int d = 0; d < rank; d++) {
            bytes = chunk[d] && bytes <= cap ? bytes * (size_t)chunk[d] : cap + 1;
            if (d > 0 && chunk[d] && chunks <= cap) chunks *= (size_t)((dims[d] + chunk[d] - 1) / chunk[d]);
        }
        /* A chunk over the cap: HDF5 reads it uncached, as by default. */
        size_t fit = bytes > cap ? 0 : chunks < cap / bytes ? chunks : cap / bytes;
        if (!fit) goto done;
        dapl = H5Pcreate(H5P_DATASET_ACCESS);
        /* 2 fit + 1 slots: a band's chunk indices are consecutive, so neither
         * it nor the next band's collide with it in the hash. */
        if (dapl >= 0 && H5Pset_chunk_cache(dapl, 2 * fit + 1, fit * bytes, 0.75) < 0) {
            H5Pclose(dapl);
            dapl = -1;
        }
    }
done:
    if (type >= 0) H5Tclose(type);
    if (space >= 0) H5Sclose(space);
    if (dcpl >= 0) H5Pclose(dcpl);
    return dapl;
}

/* Opens a layer's dataset; a chunked one again with its cache sized. */
static hid_t open_layer(hid_t fid, const char *path, size_t cap)
{
    hid_t dset = H5Dopen2(fid, path, H5P_DEFAULT), dapl = dset < 0 ? -1 : chunk_access(dset, cap);
    if (dapl < 0) return dset;
    H5Dclose(dset);
    dset = H5Dopen2(fid, path, dapl);
    H5Pclose(dapl);
    return dset;
}

/* Where the values of a layer start in its file, when reading them there
 * with pread gives exactly what H5Dread would: contiguous storage in the
 * shard's own file (not behind an external link, not in external storage,
 * not virtual), allocated, and stored in the
 * memory type (no conversion). -1 otherwise. Reading a shuffled batch's rows
 * this way costs one read system call per run of rows; through HDF5 the
 * selection of m single rows costs as much again (docs/performance.md). */
static int64_t direct_offset(hid_t dset, hid_t mem, const mk_layer *layer, const char *file)
{
    int64_t offset = -1;
    char name[4096];
    ssize_t len = H5Fget_name(dset, name, sizeof name);
    hid_t dcpl = H5Dget_create_plist(dset), type = H5Dget_type(dset);
    if (len > 0 && (size_t)len < sizeof name && !strcmp(name, file) && dcpl >= 0 && type >= 0 &&
        H5Pget_layout(dcpl) == H5D_CONTIGUOUS && H5Pget_external_count(dcpl) == 0 && H5Tequal(type, mem) > 0) {
        haddr_t addr = H5Dget_offset(dset);
        hsize_t stored = H5Dget_storage_size(dset);
        size_t size = H5Tget_size(type);
        int64_t bytes;
        if (addr != HADDR_UNDEF && addr <= (haddr_t)INT64_MAX && !__builtin_mul_overflow(layer->n, layer->p, &bytes) &&
            !__builtin_mul_overflow(bytes, (int64_t)size, &bytes) && stored == (hsize_t)bytes &&
            (haddr_t)bytes <= (haddr_t)INT64_MAX - addr)
            offset = (int64_t)addr;
    }
    if (type >= 0) H5Tclose(type);
    if (dcpl >= 0) H5Pclose(dcpl);
    return offset;
}

/* Opens shard f's datasets; *half[l] stays set only while every shard's layer l is half. */
static mk_err open_shard(const mk_model *model, int f, size_t budget, shard *sh, hid_t *halves)
{
    mk_err err = MK_OK;
    int L = model->nlayers;
    sh->fid = sh->ids = sh->ids_space = sh->fd = -1;
    sh->dsets = mk_malloc((size_t)L * sizeof(hid_t), "dataset handles", &err);
    if (!err) sh->spaces = mk_malloc((size_t)L * sizeof(hid_t), "dataspaces", &err);
    if (!err) sh->direct = mk_malloc((size_t)L * sizeof(int64_t), "dataset offsets", &err);
    if (!err) sh->chunks = mk_calloc((size_t)L, sizeof *sh->chunks, "chunk readers", &err);
    if (err) return err;
    for (int l = 0; l < L; l++) sh->dsets[l] = sh->spaces[l] = -1, sh->direct[l] = -1;
    hid_t fapl = source_fapl();
    if (fapl < 0) return mk_fail(MK_EINTERNAL, "cannot set up HDF5 file access");
    err = open_file_with(model->files[f], fapl, &sh->fid);
    H5Pclose(fapl);
    if (err) return err;
    for (int l = 0; l < L; l++) {
        sh->dsets[l] = open_layer(sh->fid, model->layers[l].path, chunk_cache_cap(model, budget));
        if (sh->dsets[l] >= 0) {
            sh->spaces[l] = H5Dget_space(sh->dsets[l]);
            hid_t type = H5Dget_type(sh->dsets[l]);
            if (f == 0 && is_half(type)) halves[l] = H5Tcopy(type);
            else if (halves[l] >= 0 && !is_half(type)) H5Tclose(halves[l]), halves[l] = -1;
            H5Tclose(type);
        }
        if (sh->spaces[l] < 0)
            return mk_fail(MK_EINPUT, "%s: cannot open dataset '%s'", model->files[f], model->layers[l].path);
    }

    if (model->ids) {
        sh->ids = H5Dopen2(sh->fid, model->ids, H5P_DEFAULT);
        if (sh->ids >= 0) sh->ids_space = H5Dget_space(sh->ids);
        if (sh->ids_space < 0)
            return mk_fail(MK_EINPUT, "%s: cannot open the sample-ID dataset '%s'", model->files[f], model->ids);
    }
    return MK_OK;
}

/* Which layers each shard reads directly: once every shard is open, since
 * the memory type (half or not) depends on all of them. */
static mk_err open_direct(mk_source *src)
{
    const mk_model *model = src->model;
    for (int f = 0; f < model->nfiles; f++) {
        shard *sh = &src->shards[f];
        for (int l = 0; l < model->nlayers; l++) {
            const mk_layer *layer = &model->layers[l];
            hid_t mem = src->halves[l] >= 0 ? src->halves[l] : layer->in_f32 ? H5T_NATIVE_FLOAT : H5T_NATIVE_DOUBLE;
            sh->direct[l] = direct_offset(sh->dsets[l], mem, layer, model->files[f]);
            if (sh->direct[l] >= 0 && sh->fd < 0 && (sh->fd = open(model->files[f], O_RDONLY | O_CLOEXEC)) < 0)
                return mk_fail(MK_EINPUT, "cannot open input '%s': %s", model->files[f], strerror(errno));
            if (sh->direct[l] < 0 && src->halves[l] < 0)
                MK_TRY(mk_chunks_open(sh->dsets[l], layer->in_f32, src->cap, &sh->chunks[l]));
        }
    }
    return MK_OK;
}

mk_err mk_source_open(const mk_model *model, size_t budget, mk_source **out)
{
    mk_err err = MK_OK;
    mk_source *src = mk_calloc(1, sizeof *src, "a source", &err);
    if (err) return err;
    src->model = model;
    src->cap = chunk_cache_cap(model, budget);
    quiet_hdf5();
    src->halves = mk_malloc((size_t)model->nlayers * sizeof(hid_t), "dataset types", &err);
    if (!err) src->shards = mk_calloc((size_t)model->nfiles, sizeof *src->shards, "the shards", &err);
    for (int l = 0; !err && l < model->nlayers; l++) src->halves[l] = -1;
    for (int f = 0; !err && f < model->nfiles; f++)
        src->shards[f].fid = src->shards[f].ids = src->shards[f].ids_space = src->shards[f].fd = -1;
    for (int f = 0; f < model->nfiles && !err; f++) err = open_shard(model, f, budget, &src->shards[f], src->halves);
    if (!err) err = open_direct(src);
    int direct = 0;
    for (int f = 0; f < model->nfiles && !err; f++) direct |= src->shards[f].fd >= 0;
    if (direct) src->reads = mk_preads_open();
    if (err) {
        mk_source_close(src);
        return err;
    }
    *out = src;
    return MK_OK;
}

/* One hyperslab per run of consecutive rows, each spanning every feature;
 * rows are the file's indices plus base. */
static herr_t select_rows(hid_t space, const int64_t *rows, int64_t m, int64_t base)
{
    hsize_t start[H5S_MAX_RANK] = {0}, count[H5S_MAX_RANK];
    int rank = H5Sget_simple_extent_ndims(space);
    H5Sget_simple_extent_dims(space, count, NULL);
    H5S_seloper_t op = H5S_SELECT_SET;
    for (int64_t i = 0; i < m;) {
        int64_t j = i + 1;
        while (j < m && rows[j] == rows[j - 1] + 1) j++;
        start[0] = (hsize_t)(rows[i] - base);
        count[0] = (hsize_t)(j - i);
        if (rank > 0 && H5Sselect_hyperslab(space, op, start, NULL, count, NULL) < 0) return -1;
        op = H5S_SELECT_OR;
        i = j;
    }
    return 0;
}

/* The rows [*i, end) of rows that shard f holds (rows ascending). */
static int64_t shard_end(const mk_model *model, int f, const int64_t *rows, int64_t i, int64_t m)
{
    while (i < m && rows[i] < model->first[f + 1]) i++;
    return i;
}

/* Reads rows[0..k) of a dataset of shard f into buf with memory type `type`,
 * `per_row` elements each. */
static herr_t read_part(hid_t dset, hid_t space, hid_t type, const int64_t *rows, int64_t k, int64_t base,
                        int64_t per_row, void *buf)
{
    /* The memory space has the file space's shape with k rows (the same
     * layout as k * per_row values): HDF5 reads a chunked N-D selection into
     * a 1-D space 30 to 60 times slower. */
    hsize_t dims[H5S_MAX_RANK];
    int rank = H5Sget_simple_extent_dims(space, dims, NULL);
    if (rank < 1) {
        rank = 1;
        dims[0] = (hsize_t)(k * per_row);
    } else {
        dims[0] = (hsize_t)k;
    }
    hid_t mem = H5Screate_simple(rank, dims, NULL);
    herr_t status = mem < 0 ? -1 : select_rows(space, rows, k, base);
    if (status >= 0) status = H5Dread(dset, type, mem, space, H5P_DEFAULT, buf);
    if (mem >= 0) H5Sclose(mem);
    return status;
}

/* Reads rows[0..k) (of a shard whose first example is base) of a layer
 * whose values start at `offset` in fd, `row` bytes each: one read per run
 * of consecutive rows, all submitted together. Returns 0, or -1 (errno set;
 * EIO for a short file). */
static int read_direct(mk_preads *q, int fd, int64_t offset, const int64_t *rows, int64_t k, int64_t base,
                       size_t row, char *buf)
{
    for (int64_t i = 0; i < k;) {
        int64_t j = i + 1;
        while (j < k && rows[j] == rows[j - 1] + 1) j++;
        if (mk_preads_add(q, fd, buf + (size_t)i * row, (size_t)(j - i) * row,
                          (off_t)(offset + (rows[i] - base) * (int64_t)row)) < 0)
            return -1;
        i = j;
    }
    return mk_preads_wait(q);
}

mk_err mk_source_set_workers(mk_source *src, int workers)
{
    for (int f = 0; f < src->model->nfiles; f++)
        for (int l = 0; l < src->model->nlayers; l++) MK_TRY(mk_chunks_set_workers(src->shards[f].chunks[l], workers));
    return MK_OK;
}

mk_err mk_source_read(mk_source *src, int l, const int64_t *rows, int64_t m, void *buf)
{
    const mk_model *model = src->model;
    const mk_layer *layer = &model->layers[l];
    hid_t type = src->halves[l] >= 0 ? src->halves[l] : layer->in_f32 ? H5T_NATIVE_FLOAT : H5T_NATIVE_DOUBLE;
    size_t size = H5Tget_size(type);
    for (int64_t i = 0; i < m;) {
        int f = mk_model_shard(model, rows[i]);
        int64_t j = shard_end(model, f, rows, i, m);
        shard *sh = &src->shards[f];
        char *at = (char *)buf + (size_t)(i * layer->p) * size;
        if (sh->chunks[l])
            MK_TRY(mk_chunks_read(sh->chunks[l], rows + i, j - i, model->first[f], at, model->files[f], layer->path));
        else if (sh->direct[l] >= 0 ? read_direct(src->reads, sh->fd, sh->direct[l], rows + i, j - i, model->first[f],
                                                  (size_t)layer->p * size, at) < 0
                                    : read_part(sh->dsets[l], sh->spaces[l], type, rows + i, j - i, model->first[f],
                                                layer->p, at) < 0)
            return mk_fail(MK_EIO, "%s: cannot read examples %lld..%lld of dataset '%s' (damaged file?)",
                           model->files[f], (long long)(rows[i] - model->first[f]),
                           (long long)(rows[j - 1] - model->first[f]), layer->path);
        i = j;
    }
    if (src->halves[l] >= 0) widen_halves(buf, m * layer->p);
    return MK_OK;
}

/* ---- sample IDs ---- */

static mk_err ids_reserve(mk_ids *ids, int64_t m, size_t more)
{
    if (m > ids->ids_cap) {
        char **id = realloc(ids->id, (size_t)m * sizeof *id);
        if (id) ids->id = id;
        size_t *at = id ? realloc(ids->at, (size_t)m * sizeof *at) : NULL;
        if (!id || !at) return mk_fail(MK_ENOMEM, "out of memory reading sample IDs");
        ids->at = at;
        ids->ids_cap = m;
    }
    if (ids->len + more > ids->cap) {
        size_t cap = 2 * (ids->len + more);
        char *text = realloc(ids->text, cap);
        if (!text) return mk_fail(MK_ENOMEM, "out of memory reading sample IDs");
        ids->text = text;
        ids->cap = cap;
    }
    return MK_OK;
}

static mk_err ids_put(mk_ids *ids, int64_t i, const char *s, size_t n)
{
    MK_TRY(ids_reserve(ids, i + 1, n + 1));
    ids->at[i] = ids->len;
    memcpy(ids->text + ids->len, s, n);
    ids->text[ids->len + n] = '\0';
    ids->len += n + 1;
    return MK_OK;
}

/* IDs i0.. of k rows of one shard, whatever the stored type. */
static mk_err read_ids_part(shard *sh, const char *file, const char *name, const int64_t *rows, int64_t k,
                            int64_t base, mk_ids *ids, int64_t i0)
{
    mk_err err = MK_OK;
    hid_t ftype = H5Dget_type(sh->ids), mtype = -1;
    int is_str = H5Tget_class(ftype) == H5T_STRING, vlen = is_str && H5Tis_variable_str(ftype) > 0;
    size_t width = is_str && !vlen ? H5Tget_size(ftype) + 1 : vlen ? sizeof(char *) : sizeof(int64_t);
    if (is_str) {
        mtype = H5Tcopy(H5T_C_S1);
        H5Tset_size(mtype, vlen ? H5T_VARIABLE : width);
        H5Tset_strpad(mtype, H5T_STR_NULLTERM);
        H5Tset_cset(mtype, H5Tget_cset(ftype));
    }
    char *buf = mk_malloc((size_t)k * width, "sample IDs", &err);
    if (!err && read_part(sh->ids, sh->ids_space, is_str ? mtype : H5T_NATIVE_INT64, rows, k, base, 1, buf) < 0)
        err = mk_fail(MK_EIO, "%s: cannot read examples %lld..%lld of the sample-ID dataset '%s' (damaged file?)", file,
                      (long long)(rows[0] - base), (long long)(rows[k - 1] - base), name);
    for (int64_t r = 0; r < k && !err; r++) {
        char num[32];
        const char *s = num;
        if (!is_str) snprintf(num, sizeof num, "%lld", (long long)((int64_t *)(void *)buf)[r]);
        else s = vlen ? ((char **)(void *)buf)[r] : buf + (size_t)r * width;
        err = ids_put(ids, i0 + r, s ? s : "", s ? strlen(s) : 0);
    }
    if (vlen && buf && !err) {
        hsize_t dim = (hsize_t)k;
        hid_t mem = H5Screate_simple(1, &dim, NULL);
        H5Dvlen_reclaim(mtype, mem, H5P_DEFAULT, buf);
        H5Sclose(mem);
    }
    free(buf);
    if (mtype >= 0) H5Tclose(mtype);
    H5Tclose(ftype);
    return err;
}

mk_err mk_source_read_ids(mk_source *src, const int64_t *rows, int64_t m, mk_ids *ids)
{
    const mk_model *model = src->model;
    ids->len = 0;
    ids->m = 0;
    if (!model->ids) return MK_OK;
    MK_TRY(ids_reserve(ids, m, 0));
    for (int64_t i = 0; i < m;) {
        int f = mk_model_shard(model, rows[i]);
        int64_t j = shard_end(model, f, rows, i, m);
        MK_TRY(read_ids_part(&src->shards[f], model->files[f], model->ids, rows + i, j - i, model->first[f], ids, i));
        i = j;
    }
    for (int64_t i = 0; i < m; i++) ids->id[i] = ids->text + ids->at[i];
    ids->m = m;
    return MK_OK;
}

void mk_ids_free(mk_ids *ids)
{
    free(ids->id);
    free(ids->at);
    free(ids->text);
    memset(ids, 0, sizeof *ids);
}
