/* The source: every shard and layer opened once, each layer of each shard
 * read through the path chosen for it then (readpath.h), and the IDs. */
#include "mpicka/source.h"

#include "h5file.h"
#include "readpath.h"

#include <hdf5.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* How one layer of one shard is read: the path that took it, and its state. */
typedef struct {
    const mk__readpath *ops;
    void *state;
} reader;

/* The paths in the order a layer is offered to them: the direct read needs
 * the plainest storage, the chunk path deflate, HDF5 takes what is left. */
static const mk__readpath *const paths[] = {&mk__read_direct, &mk__read_chunks, &mk__read_hdf5};
#define NPATHS ((int)(sizeof paths / sizeof *paths))

/* Per shard: the file, each layer's dataset and dataspace (which the paths
 * use), its reader, and the IDs. */
typedef struct {
    hid_t fid;
    hid_t *dsets;
    hid_t *spaces;
    hid_t ids, ids_space;
    reader *readers;  /* per layer; ops NULL until a path took it */
} shard;

struct mk_source {
    const mk_model *model;
    size_t cap;       /* each chunked layer's band at most (chunk_cache_cap) */
    shard *shards;
    hid_t *halves;  /* per layer: the dataset's type when it is little-endian IEEE half in every shard, else -1 */
    void *shared[NPATHS]; /* each path's source-level state (readpath.h), or NULL */
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

/* From the end, so that the floats never overwrite halves still to be read
 * when out is the buffer the halves are in. */
void mk_widen_halves(const void *halves, float *out, int64_t count)
{
    const uint16_t *h = halves;
    for (int64_t i = count - 1; i >= 0; i--) out[i] = half_to_float(h[i]);
}

static void close_shard(shard *sh, int nlayers)
{
    for (int l = 0; sh->readers && l < nlayers; l++)
        if (sh->readers[l].ops) sh->readers[l].ops->close(sh->readers[l].state);
    for (int l = 0; sh->dsets && l < nlayers; l++) {
        if (sh->spaces[l] >= 0) H5Sclose(sh->spaces[l]);
        if (sh->dsets[l] >= 0) H5Dclose(sh->dsets[l]);
    }
    if (sh->ids_space >= 0) H5Sclose(sh->ids_space);
    if (sh->ids >= 0) H5Dclose(sh->ids);
    if (sh->fid >= 0) H5Fclose(sh->fid);
    free(sh->readers);
    free(sh->dsets);
    free(sh->spaces);
}

void mk_source_close(mk_source *src)
{
    if (!src) return;
    for (int f = 0; src->shards && f < src->model->nfiles; f++) close_shard(&src->shards[f], src->model->nlayers);
    for (int l = 0; src->halves && l < src->model->nlayers; l++)
        if (src->halves[l] >= 0) H5Tclose(src->halves[l]);
    for (int k = 0; k < NPATHS; k++)
        if (src->shared[k]) paths[k]->source_close(src->shared[k]);
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

/* Opens shard f's layers; halves[l] stays set only while every shard's layer l is half. */
static mk_err open_layers(const mk_model *model, int f, size_t budget, shard *sh, hid_t *halves)
{
    for (int l = 0; l < model->nlayers; l++) {
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
    return MK_OK;
}

static mk_err open_ids(const mk_model *model, int f, shard *sh)
{
    if (!model->ids) return MK_OK;
    sh->ids = H5Dopen2(sh->fid, model->ids, H5P_DEFAULT);
    if (sh->ids >= 0) sh->ids_space = H5Dget_space(sh->ids);
    if (sh->ids_space < 0)
        return mk_fail(MK_EINPUT, "%s: cannot open the sample-ID dataset '%s'", model->files[f], model->ids);
    return MK_OK;
}

/* Opens shard f: its file, layers and IDs. */
static mk_err open_shard(const mk_model *model, int f, size_t budget, shard *sh, hid_t *halves)
{
    mk_err err = MK_OK;
    int L = model->nlayers;
    sh->fid = sh->ids = sh->ids_space = -1;
    sh->dsets = mk_malloc((size_t)L * sizeof(hid_t), "dataset handles", &err);
    if (!err) sh->spaces = mk_malloc((size_t)L * sizeof(hid_t), "dataspaces", &err);
    if (!err) sh->readers = mk_calloc((size_t)L, sizeof *sh->readers, "layer readers", &err);
    if (err) return err;
    for (int l = 0; l < L; l++) sh->dsets[l] = sh->spaces[l] = -1;
    hid_t fapl = source_fapl();
    if (fapl < 0) return mk_fail(MK_EINTERNAL, "cannot set up HDF5 file access");
    err = mk__open_file(model->files[f], fapl, &sh->fid);
    H5Pclose(fapl);
    MK_TRY(err);
    MK_TRY(open_layers(model, f, budget, sh, halves));
    return open_ids(model, f, sh);
}

/* The type rows of layer l are read as: the stored half, or float or double. */
static hid_t mem_type(const mk_source *src, int l)
{
    return src->halves[l] >= 0 ? src->halves[l] : src->model->layers[l].in_f32 ? H5T_NATIVE_FLOAT : H5T_NATIVE_DOUBLE;
}

/* Offers layer l of shard f to the paths in order; the last takes it. */
static mk_err choose_path(mk_source *src, int f, int l)
{
    shard *sh = &src->shards[f];
    mk__layer_at at = {src->model, &src->model->layers[l], f, sh->dsets[l], sh->spaces[l], mem_type(src, l),
                       src->halves[l] >= 0, src->cap};
    reader *r = &sh->readers[l];
    for (int k = 0; k < NPATHS && !r->ops; k++) {
        MK_TRY(paths[k]->open(src->shared[k], &at, &r->state));
        if (r->state) r->ops = paths[k];
    }
    return r->ops ? MK_OK : mk_fail(MK_EINTERNAL, "no way to read dataset '%s'", at.layer->path);
}

/* How each layer of each shard is read: once every shard is open, since the
 * memory type (half or not) depends on all of them. */
static mk_err choose_paths(mk_source *src)
{
    for (int k = 0; k < NPATHS; k++)
        if (paths[k]->source_open) MK_TRY(paths[k]->source_open(src->model, &src->shared[k]));
    for (int f = 0; f < src->model->nfiles; f++)
        for (int l = 0; l < src->model->nlayers; l++) MK_TRY(choose_path(src, f, l));
    return MK_OK;
}

mk_err mk_source_open(const mk_model *model, size_t budget, mk_source **out)
{
    mk_err err = MK_OK;
    mk_source *src = mk_calloc(1, sizeof *src, "a source", &err);
    if (err) return err;
    src->model = model;
    src->cap = chunk_cache_cap(model, budget);
    mk__quiet_hdf5();
    src->halves = mk_malloc((size_t)model->nlayers * sizeof(hid_t), "dataset types", &err);
    if (!err) src->shards = mk_calloc((size_t)model->nfiles, sizeof *src->shards, "the shards", &err);
    for (int l = 0; !err && l < model->nlayers; l++) src->halves[l] = -1;
    for (int f = 0; !err && f < model->nfiles; f++)
        src->shards[f].fid = src->shards[f].ids = src->shards[f].ids_space = -1;
    for (int f = 0; f < model->nfiles && !err; f++) err = open_shard(model, f, budget, &src->shards[f], src->halves);
    if (!err) err = choose_paths(src);
    if (err) {
        mk_source_close(src);
        return err;
    }
    *out = src;
    return MK_OK;
}

/* The rows [*i, end) of rows that shard f holds (rows ascending). */
static int64_t shard_end(const mk_model *model, int f, const int64_t *rows, int64_t i, int64_t m)
{
    while (i < m && rows[i] < model->first[f + 1]) i++;
    return i;
}

mk_err mk_source_set_workers(mk_source *src, int workers)
{
    for (int f = 0; f < src->model->nfiles; f++)
        for (int l = 0; l < src->model->nlayers; l++) {
            const reader *r = &src->shards[f].readers[l];
            if (r->ops->set_workers) MK_TRY(r->ops->set_workers(r->state, workers));
        }
    return MK_OK;
}

/* Each shard's part of the rows through the path that reads the layer there. */
mk_err mk_source_read(mk_source *src, int l, const int64_t *rows, int64_t m, void *buf)
{
    const mk_model *model = src->model;
    size_t row = (size_t)model->layers[l].p * H5Tget_size(mem_type(src, l));
    for (int64_t i = 0; i < m;) {
        int f = mk_model_shard(model, rows[i]);
        int64_t j = shard_end(model, f, rows, i, m);
        const reader *r = &src->shards[f].readers[l];
        MK_TRY(r->ops->read(r->state, rows + i, j - i, model->first[f], (char *)buf + (size_t)i * row));
        i = j;
    }
    if (src->halves[l] >= 0) mk_widen_halves(buf, buf, m * model->layers[l].p);
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

/* Strings read as C strings of the stored character set: NUL-terminated,
 * `width` bytes each or (vlen) pointers HDF5 allocates. */
static hid_t ids_string_type(hid_t ftype, int vlen, size_t width)
{
    hid_t mtype = H5Tcopy(H5T_C_S1);
    H5Tset_size(mtype, vlen ? H5T_VARIABLE : width);
    H5Tset_strpad(mtype, H5T_STR_NULLTERM);
    H5Tset_cset(mtype, H5Tget_cset(ftype));
    return mtype;
}

/* Frees the k strings HDF5 allocated for variable-length IDs. */
static void reclaim_strings(hid_t mtype, int64_t k, void *buf)
{
    hsize_t dim = (hsize_t)k;
    hid_t mem = H5Screate_simple(1, &dim, NULL);
    H5Dvlen_reclaim(mtype, mem, H5P_DEFAULT, buf);
    H5Sclose(mem);
}

/* An integer ID as text, exactly: unsigned types are read as uint64 (an
 * int64 would clip every ID above 2^63 - 1 to the same value), signed ones
 * as int64 (inspection refuses integers wider than 64 bits). */
static void id_text(const void *buf, int64_t r, int is_unsigned, char *out, size_t len)
{
    if (is_unsigned) snprintf(out, len, "%llu", (unsigned long long)((const uint64_t *)buf)[r]);
    else snprintf(out, len, "%lld", (long long)((const int64_t *)buf)[r]);
}

/* IDs i0.. of k rows of one shard, whatever the stored type. */
static mk_err read_ids_part(shard *sh, const char *file, const char *name, const int64_t *rows, int64_t k,
                            int64_t base, mk_ids *ids, int64_t i0)
{
    mk_err err = MK_OK;
    hid_t ftype = H5Dget_type(sh->ids);
    int is_str = H5Tget_class(ftype) == H5T_STRING, vlen = is_str && H5Tis_variable_str(ftype) > 0;
    size_t width = is_str && !vlen ? H5Tget_size(ftype) + 1 : vlen ? sizeof(char *) : sizeof(int64_t);
    int is_unsigned = !is_str && H5Tget_sign(ftype) == H5T_SGN_NONE;
    hid_t mtype = is_str ? ids_string_type(ftype, vlen, width) : -1;
    hid_t itype = is_unsigned ? H5T_NATIVE_UINT64 : H5T_NATIVE_INT64;
    char *buf = mk_malloc((size_t)k * width, "sample IDs", &err);
    if (!err && mk__h5_read_rows(sh->ids, sh->ids_space, is_str ? mtype : itype, rows, k, base, 1, buf) < 0)
        err = mk_fail(MK_EIO, "%s: cannot read examples %lld..%lld of the sample-ID dataset '%s' (damaged file?)", file,
                      (long long)(rows[0] - base), (long long)(rows[k - 1] - base), name);
    for (int64_t r = 0; r < k && !err; r++) {
        char num[32];
        const char *s = num;
        if (!is_str) id_text(buf, r, is_unsigned, num, sizeof num);
        else s = vlen ? ((char **)(void *)buf)[r] : buf + (size_t)r * width;
        err = ids_put(ids, i0 + r, s ? s : "", s ? strlen(s) : 0);
    }
    if (vlen && buf && !err) reclaim_strings(mtype, k, buf);
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
