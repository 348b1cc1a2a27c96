#include "chunks.h"

#include <libdeflate.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Chunks read from the file before they are inflated together: few, so that
 * their stored bytes cost little memory next to the band. */
#define GROUP_PER_WORKER 8

typedef struct {
    unsigned char *raw;  /* stored bytes */
    size_t len, cap;     /* len 0: never written, the fill value */
    uint32_t mask;       /* filters skipped for this chunk */
    int bad;             /* did not inflate to exactly one chunk */
} stored;

struct mk__chunks {
    hid_t dset;                      /* the source's */
    int rank;
    hsize_t dims[H5S_MAX_RANK], chunk[H5S_MAX_RANK];
    size_t esize, chunk_elems, chunk_bytes;
    int64_t p, ncols;                /* features per row; chunks across them */
    hsize_t *col_off;                /* ncols x rank: each chunk's offset, the row's left 0 */
    int shuffle, shuffle_bit, deflate_bit;
    int all_written;                 /* the index holds every chunk: one it lacks is damage */
    uint32_t skippable;              /* filters a chunk may have skipped (deflate, where it would grow it) */
    uint32_t resizing;               /* index only: filters that change a chunk's size but fletcher32 */
    int fletcher_bit;                /* index only: fletcher32's, or -1 */
    unsigned char fill[8];           /* one element: unwritten chunks hold it */
    unsigned char *band;             /* ncols inflated chunks */
    int64_t band_at;                 /* the band held, or -1 */
    int workers;
    stored *group;                   /* workers * GROUP_PER_WORKER */
    unsigned char **tmp;             /* per worker: one chunk, for the shuffle */
    struct libdeflate_decompressor **dec;
};

/* Deflate alone, or shuffle then deflate (h5py's two gzip forms). */
static int filters_ok(hid_t dcpl, mk__chunks *c)
{
    int n = H5Pget_nfilters(dcpl);
    H5Z_filter_t f[2] = {-1, -1};
    for (int i = 0; i < n && i < 2; i++) {
        unsigned flags;
        size_t nvals = 0;
        f[i] = H5Pget_filter2(dcpl, (unsigned)i, &flags, &nvals, NULL, 0, NULL, NULL);
    }
    c->shuffle = n == 2 && f[0] == H5Z_FILTER_SHUFFLE && f[1] == H5Z_FILTER_DEFLATE;
    c->shuffle_bit = 0;
    c->deflate_bit = c->shuffle ? 1 : 0;
    return (n == 1 && f[0] == H5Z_FILTER_DEFLATE) || c->shuffle;
}

static int shape_ok(hid_t dset, hid_t dcpl, mk__chunks *c, size_t cap)
{
    hid_t space = H5Dget_space(dset);
    c->rank = space < 0 ? -1 : H5Sget_simple_extent_dims(space, c->dims, NULL);
    if (space >= 0) H5Sclose(space);
    if (c->rank < 1 || H5Pget_layout(dcpl) != H5D_CHUNKED || H5Pget_chunk(dcpl, c->rank, c->chunk) != c->rank)
        return 0;
    double elems = 1.0, cols = 1.0, p = 1.0;
    for (int d = 0; d < c->rank; d++) {
        if (!c->chunk[d]) return 0;
        elems *= (double)c->chunk[d];
        if (d) cols *= (double)((c->dims[d] + c->chunk[d] - 1) / c->chunk[d]), p *= (double)c->dims[d];
    }
    if (elems * cols * (double)c->esize > (double)cap) return 0;
    c->chunk_elems = (size_t)elems;
    c->chunk_bytes = c->chunk_elems * c->esize;
    c->ncols = (int64_t)cols;
    c->p = (int64_t)p;
    return 1;
}

/* Whether the index holds as many chunks as the shape needs: then a chunk
 * that cannot be found is a damaged index, not a chunk never written. */
static int every_chunk_written(hid_t dset, const mk__chunks *c)
{
    hsize_t need = 1, have = 0;
    for (int d = 0; d < c->rank; d++) /* saturated: more chunks than that are never all there */
        if (__builtin_mul_overflow(need, c->dims[d] / c->chunk[d] + (c->dims[d] % c->chunk[d] != 0), &need))
            return 0;
    hid_t space = H5Dget_space(dset); /* this HDF5 refuses H5S_ALL here */
    int all = space >= 0 && H5Dget_num_chunks(dset, space, &have) >= 0 && have >= need;
    if (space >= 0) H5Sclose(space);
    return all;
}

/* The fill value of chunks never written, as HDF5 gives it. */
static void fill_value(hid_t dcpl, hid_t type, mk__chunks *c)
{
    H5D_fill_value_t defined;
    memset(c->fill, 0, sizeof c->fill);
    if (H5Pfill_value_defined(dcpl, &defined) >= 0 && defined == H5D_FILL_VALUE_USER_DEFINED)
        H5Pget_fill_value(dcpl, type, c->fill);
}

/* Every chunk of a band: its offset in the feature dimensions, row-major. */
static void list_columns(mk__chunks *c)
{
    hsize_t at[H5S_MAX_RANK] = {0};
    for (int64_t j = 0; j < c->ncols; j++) {
        memcpy(c->col_off + j * c->rank, at, (size_t)c->rank * sizeof *at);
        for (int d = c->rank - 1; d >= 1; d--) {
            at[d] += c->chunk[d];
            if (at[d] < c->dims[d]) break;
            at[d] = 0;
        }
    }
}

static void free_workers(mk__chunks *c)
{
    for (int w = 0; w < c->workers; w++) {
        if (c->dec && c->dec[w]) libdeflate_free_decompressor(c->dec[w]);
        if (c->tmp) free(c->tmp[w]);
    }
    for (int g = 0; c->group && g < c->workers * GROUP_PER_WORKER; g++) free(c->group[g].raw);
    free(c->group);
    free(c->tmp);
    free(c->dec);
    c->group = NULL, c->tmp = NULL, c->dec = NULL;
    c->workers = 0;
}

void mk__chunks_close(mk__chunks *c)
{
    if (!c) return;
    free_workers(c);
    free(c->band);
    free(c->col_off);
    free(c);
}

static mk_err alloc_workers(mk__chunks *c, int workers)
{
    mk_err err = MK_OK;
    c->workers = workers;
    c->dec = mk_calloc((size_t)workers, sizeof *c->dec, "decompressors", &err);
    if (!err) c->tmp = mk_calloc((size_t)workers, sizeof *c->tmp, "decompressors", &err);
    if (!err) c->group = mk_calloc((size_t)workers * GROUP_PER_WORKER, sizeof *c->group, "chunk buffers", &err);
    for (int w = 0; w < workers && !err; w++) {
        c->dec[w] = libdeflate_alloc_decompressor();
        if (!c->dec[w]) err = mk_fail(MK_ENOMEM, "out of memory for a decompressor");
        if (!err && c->shuffle) c->tmp[w] = mk_malloc(c->chunk_bytes, "a chunk", &err);
    }
    return err;
}

mk_err mk__chunks_open(hid_t dset, int in_f32, size_t cap, mk__chunks **out)
{
    *out = NULL;
    mk_err err = MK_OK;
    mk__chunks *c = mk_calloc(1, sizeof *c, "a chunk reader", &err);
    if (err) return err;
    c->dset = dset;
    c->band_at = -1;
    c->esize = in_f32 ? 4 : 8;
    hid_t dcpl = H5Dget_create_plist(dset), type = H5Dget_type(dset);
    hid_t want = in_f32 ? H5T_IEEE_F32LE : H5T_IEEE_F64LE, native = in_f32 ? H5T_NATIVE_FLOAT : H5T_NATIVE_DOUBLE;
    int ok = dcpl >= 0 && type >= 0 && H5Tequal(type, want) > 0 && H5Tequal(native, want) > 0 &&
             filters_ok(dcpl, c) && shape_ok(dset, dcpl, c, cap);
    if (ok) fill_value(dcpl, native, c);
    if (ok) c->all_written = every_chunk_written(dset, c);
    c->skippable = 1u << c->deflate_bit;
    if (dcpl >= 0) H5Pclose(dcpl);
    if (type >= 0) H5Tclose(type);
    if (ok) c->col_off = mk_malloc((size_t)(c->ncols * c->rank) * sizeof *c->col_off, "chunk offsets", &err);
    if (ok && !err) c->band = mk_malloc((size_t)c->ncols * c->chunk_bytes, "a band of chunks", &err);
    if (ok && !err) err = alloc_workers(c, 1);
    if (!ok || err) {
        mk__chunks_close(c);
        return err;
    }
    list_columns(c);
    *out = c;
    return MK_OK;
}

mk_err mk__chunks_set_workers(mk__chunks *c, int workers)
{
    if (!c || workers < 1 || workers == c->workers) return MK_OK;
    c->band_at = -1;
    free_workers(c);
    return alloc_workers(c, workers);
}

/* ---- a band ---- */

/* HDF5's shuffle filter stores byte b of element i at b * n + i. */
static void unshuffle(const unsigned char *in, unsigned char *out, size_t esize, size_t n)
{
    for (size_t b = 0; b < esize; b++)
        for (size_t i = 0; i < n; i++) out[i * esize + b] = in[b * n + i];
}

/* Stored chunk s -> inflated chunk at out; s->bad when it is not one chunk's bytes. */
static void inflate_one(const mk__chunks *c, stored *s, struct libdeflate_decompressor *dec, unsigned char *tmp,
                        unsigned char *out)
{
    if (!s->len) { /* never written */
        for (size_t i = 0; i < c->chunk_elems; i++) memcpy(out + i * c->esize, c->fill, c->esize);
        return;
    }
    int deflated = !(s->mask & (1u << c->deflate_bit)), shuffled = c->shuffle && !(s->mask & (1u << c->shuffle_bit));
    unsigned char *to = shuffled ? tmp : out;
    size_t got = 0;
    if (deflated)
        s->bad = libdeflate_zlib_decompress(dec, s->raw, s->len, to, c->chunk_bytes, &got) != LIBDEFLATE_SUCCESS ||
                 got != c->chunk_bytes;
    else if (!(s->bad = s->len != c->chunk_bytes))
        memcpy(to, s->raw, s->len);
    if (!s->bad && shuffled) unshuffle(tmp, out, c->esize, c->chunk_elems);
}

typedef struct {
    mk__chunks *c;
    int w;
    int64_t first, count; /* the group: chunks first .. first+count-1 of the band */
} job;

static void *inflate_share(void *arg)
{
    const job *jb = arg;
    mk__chunks *c = jb->c;
    for (int64_t g = jb->w; g < jb->count; g += c->workers)
        inflate_one(c, &c->group[g], c->dec[jb->w], c->tmp[jb->w], c->band + (size_t)(jb->first + g) * c->chunk_bytes);
    return NULL;
}

/* The group's chunks inflated by every worker at once (the caller is one). */
static void inflate_group(mk__chunks *c, int64_t first, int64_t count)
{
    job jobs[64];
    pthread_t threads[64];
    int started[64] = {0}, workers = c->workers < 64 ? c->workers : 64;
    for (int w = 0; w < workers; w++) jobs[w] = (job){c, w, first, count};
    for (int w = 1; w < workers && w < count; w++)
        started[w] = pthread_create(&threads[w], NULL, inflate_share, &jobs[w]) == 0;
    inflate_share(&jobs[0]);
    for (int w = 1; w < workers && w < count; w++) {
        if (started[w]) pthread_join(threads[w], NULL);
        else inflate_share(&jobs[w]); /* no thread: its share here */
    }
}

/* What is wrong with the chunk at off; mk__chunks_read names the file. */
static mk_err damaged(const hsize_t *off, const char *why)
{
    return mk_fail(MK_EIO, "the chunk at example %llu %s", (unsigned long long)off[0], why);
}

/* The read of rows[0..k) - base failed with err: the message names them. */
static mk_err read_failed(mk_err err, const int64_t *rows, int64_t k, int64_t base, const char *file, const char *path)
{
    char why[512];
    snprintf(why, sizeof why, "%s", mk_errmsg());
    return mk_fail(err, "%s: cannot read examples %lld..%lld of dataset '%s': %s (damaged file?)", file,
                   (long long)(rows[0] - base), (long long)(rows[k - 1] - base), path, why);
}

/* Where chunk j of band b starts in the dataset. */
static void chunk_offset(const mk__chunks *c, int64_t b, int64_t j, hsize_t *off)
{
    memcpy(off, c->col_off + j * c->rank, (size_t)c->rank * sizeof *off);
    off[0] = (hsize_t)b * c->chunk[0];
}

/* Stored bytes of chunk j of band b into s. */
static mk_err fetch(mk__chunks *c, int64_t b, int64_t j, stored *s)
{
    hsize_t off[H5S_MAX_RANK], nbytes = 0;
    haddr_t addr = HADDR_UNDEF;
    unsigned mask = 0;
    chunk_offset(c, b, j, off);
    s->len = 0;
    s->bad = 0;
    if (H5Dget_chunk_info_by_coord(c->dset, off, &mask, &addr, &nbytes) < 0)
        return damaged(off, "cannot be found");
    if ((addr == HADDR_UNDEF || nbytes == 0) && c->all_written)
        return damaged(off, "is missing from the chunk index (a damaged index)");
    if (addr == HADDR_UNDEF || nbytes == 0) return MK_OK; /* never written: the fill value */
    /* HDF5 skips only deflate, and only where it would grow the chunk: a
     * skipped shuffle, or a bit of no filter, is a damaged index entry */
    if (mask & ~c->skippable) return damaged(off, "has filters marked skipped that are never skipped");
    if (nbytes > c->chunk_bytes + c->chunk_bytes / 8 + 4096) /* deflate never grows data that much */
        return damaged(off, "is larger than it can be");
    if (nbytes > s->cap) {
        unsigned char *raw = realloc(s->raw, (size_t)nbytes);
        if (!raw) return mk_fail(MK_ENOMEM, "out of memory for a chunk");
        s->raw = raw;
        s->cap = (size_t)nbytes;
    }
    if (H5Dread_chunk(c->dset, H5P_DEFAULT, off, &s->mask, s->raw) < 0)
        return damaged(off, "cannot be read");
    s->len = (size_t)nbytes;
    return MK_OK;
}

static mk_err load_band(mk__chunks *c, int64_t b)
{
    int64_t per = (int64_t)c->workers * GROUP_PER_WORKER;
    c->band_at = -1;
    for (int64_t first = 0; first < c->ncols; first += per) {
        int64_t count = c->ncols - first < per ? c->ncols - first : per;
        for (int64_t g = 0; g < count; g++) MK_TRY(fetch(c, b, first + g, &c->group[g]));
        inflate_group(c, first, count);
        for (int64_t g = 0; g < count; g++) {
            if (!c->group[g].bad) continue;
            hsize_t off[H5S_MAX_RANK];
            chunk_offset(c, b, first + g, off);
            char why[64];
            snprintf(why, sizeof why, "does not inflate to its %zu bytes", c->chunk_bytes);
            return damaged(off, why);
        }
    }
    c->band_at = b;
    return MK_OK;
}

/* ---- the index alone, for layers HDF5 reads ---- */

#define MAX_CHECKED_COLUMNS 4096

/* The skippable filters: optional ones but shuffle (which never fails).
 * The resizing ones: all but shuffle and fletcher32 (4 bytes more). */
static void index_filters(hid_t dcpl, mk__chunks *c)
{
    int n = H5Pget_nfilters(dcpl);
    c->fletcher_bit = -1;
    for (int i = 0; i < n && i < 32; i++) {
        unsigned flags = 0;
        size_t nvals = 0;
        H5Z_filter_t f = H5Pget_filter2(dcpl, (unsigned)i, &flags, &nvals, NULL, 0, NULL, NULL);
        if ((flags & H5Z_FLAG_OPTIONAL) && f != H5Z_FILTER_SHUFFLE) c->skippable |= 1u << i;
        if (f == H5Z_FILTER_FLETCHER32) c->fletcher_bit = i;
        else if (f != H5Z_FILTER_SHUFFLE) c->resizing |= 1u << i;
    }
}

mk_err mk__chunks_index(hid_t dset, mk__chunks **out)
{
    *out = NULL;
    mk_err err = MK_OK;
    mk__chunks *c = mk_calloc(1, sizeof *c, "a chunk index", &err);
    if (err) return err;
    c->dset = dset;
    c->band_at = -1;
    hid_t dcpl = H5Dget_create_plist(dset), type = H5Dget_type(dset);
    c->esize = type < 0 ? 0 : H5Tget_size(type);
    if (type >= 0) H5Tclose(type);
    /* a band of many chunks costs as many look-ups: beyond that, unchecked */
    int ok = dcpl >= 0 && c->esize && shape_ok(dset, dcpl, c, SIZE_MAX) && c->ncols <= MAX_CHECKED_COLUMNS &&
             (c->all_written = every_chunk_written(dset, c));
    if (ok) index_filters(dcpl, c);
    if (dcpl >= 0) H5Pclose(dcpl);
    if (ok) c->col_off = mk_malloc((size_t)(c->ncols * c->rank) * sizeof *c->col_off, "chunk offsets", &err);
    if (!ok || err) {
        mk__chunks_close(c);
        return err;
    }
    list_columns(c);
    *out = c;
    return MK_OK;
}

/* Chunk j of band b: in the index, with no filter skipped that never is. */
static mk_err look_up(const mk__chunks *c, int64_t b, int64_t j)
{
    hsize_t off[H5S_MAX_RANK], nbytes = 0;
    haddr_t addr = HADDR_UNDEF;
    unsigned mask = 0;
    chunk_offset(c, b, j, off);
    if (H5Dget_chunk_info_by_coord(c->dset, off, &mask, &addr, &nbytes) < 0) return damaged(off, "cannot be found");
    if (addr == HADDR_UNDEF || nbytes == 0) return damaged(off, "is missing from the chunk index (a damaged index)");
    if (mask & ~c->skippable) return damaged(off, "has filters marked skipped that are never skipped");
    /* every resizing filter skipped: the chunk's own bytes, and fletcher32's 4 */
    int summed = c->fletcher_bit >= 0 && !(mask & (1u << c->fletcher_bit));
    if (!(c->resizing & ~mask) && nbytes != c->chunk_bytes + (summed ? 4 : 0))
        return damaged(off, "is stored uncompressed but is not one chunk's bytes");
    return MK_OK;
}

mk_err mk__chunks_check(mk__chunks *c, const int64_t *rows, int64_t k, int64_t base, const char *file,
                       const char *path)
{
    for (int64_t i = 0; i < k; i++) {
        int64_t b = (rows[i] - base) / (int64_t)c->chunk[0];
        mk_err err = MK_OK;
        for (int64_t j = 0; j < c->ncols && b != c->band_at && !err; j++) err = look_up(c, b, j);
        if (err) return read_failed(err, rows, k, base, file, path);
        c->band_at = b;
    }
    return MK_OK;
}

/* ---- rows ---- */

/* Row a of chunk j (of the band held) into its places in a row of p values. */
static void copy_row(const mk__chunks *c, int64_t j, int64_t a, unsigned char *row)
{
    const hsize_t *off = c->col_off + j * c->rank;
    const unsigned char *src = c->band + (size_t)j * c->chunk_bytes + (size_t)a * (c->chunk_elems / c->chunk[0]) * c->esize;
    int last = c->rank - 1;
    if (last == 0) { /* a 1-D layer: one value per row */
        memcpy(row, src, c->esize);
        return;
    }
    /* runs along the last dimension, for every index of the ones between */
    hsize_t idx[H5S_MAX_RANK] = {0}, run = c->dims[last] - off[last] < c->chunk[last] ? c->dims[last] - off[last]
                                                                                        : c->chunk[last];
    for (;;) {
        size_t s = 0, d = 0; /* element offsets in the chunk's row and in the layer's row */
        for (int k = 1; k <= last; k++) {
            s = s * c->chunk[k] + idx[k];
            d = d * c->dims[k] + off[k] + idx[k];
        }
        memcpy(row + d * c->esize, src + s * c->esize, (size_t)run * c->esize);
        int k = last - 1;
        for (; k >= 1; k--) {
            hsize_t extent = c->dims[k] - off[k] < c->chunk[k] ? c->dims[k] - off[k] : c->chunk[k];
            if (++idx[k] < extent) break;
            idx[k] = 0;
        }
        if (k < 1) return;
    }
}

mk_err mk__chunks_read(mk__chunks *c, const int64_t *rows, int64_t k, int64_t base, void *buf, const char *file,
                      const char *path)
{
    unsigned char *out = buf;
    for (int64_t i = 0; i < k; i++) {
        int64_t r = rows[i] - base, b = r / (int64_t)c->chunk[0];
        mk_err err = b == c->band_at ? MK_OK : load_band(c, b);
        if (err) return read_failed(err, rows, k, base, file, path);
        for (int64_t j = 0; j < c->ncols; j++) copy_row(c, j, r - b * (int64_t)c->chunk[0], out + (size_t)(i * c->p) * c->esize);
    }
    return MK_OK;
}
