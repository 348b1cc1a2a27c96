/* The activation source: layers stored as HDF5 datasets, first dimension the
 * example index, the remaining dimensions flattened into features, read as
 * model.h describes them. Not collective: each rank opens the files
 * read-only on its own. */
#ifndef MPICKA_SOURCE_H
#define MPICKA_SOURCE_H

#include <stdint.h>

#include "mpicka/error.h"
#include "mpicka/model.h"

typedef struct mk_source mk_source;

/* The chunk caches of a run's sources share this many bytes at most. */
#define MK_CHUNK_CACHES ((size_t)256 << 20)

/* Opens every shard and layer; the chunk caches of chunked layers (each
 * holding at most one band, within [1 MiB, 16 MiB]) share cache_bytes. */
mk_err mk_source_open(const mk_model *model, size_t cache_bytes, mk_source **src);

/* Threads that inflate the chunks of a deflate-compressed layer together
 * (default 1): HDF5 inflates one chunk at a time, so such layers (h5py's
 * gzip, with or without shuffle, stored as float32 or float64) are read
 * chunk by chunk (H5Dread_chunk) and inflated here with libdeflate; the
 * values are the stored ones, bitwise what HDF5 gives. */
mk_err mk_source_set_workers(mk_source *src, int workers);

/* What those caches hold at most, over all layers and shards. */
size_t mk_source_cache_bytes(const mk_model *model, size_t cache_bytes);
void mk_source_close(mk_source *src);

/* Read the rows (ascending example indices, m of them) of layer l into buf as
 * an m-by-p row-major block of float (model->layers[l].in_f32) or double.
 * The rows are split by shard, and each part read the way chosen for that
 * layer of that shard when the source opened: the stored bytes where they
 * are already the memory type, chunks inflated here where deflated, or one
 * hyperslab per run of consecutive rows, HDF5 converting types. */
mk_err mk_source_read(mk_source *src, int l, const int64_t *rows, int64_t m, void *buf);

/* count little-endian IEEE halves (float16, as h5py and numpy store them)
 * widened exactly to float into out, which may be the halves' own buffer
 * (it is filled from the end): how a float16 layer is read, for memory a
 * library session is fed too. */
void mk_widen_halves(const void *halves, float *out, int64_t count);

/* The sample IDs of m rows, as text (integers in decimal). The buffers are
 * reused from call to call: a batch's worth, never n. */
typedef struct {
    int64_t m;
    char **id;        /* m NUL-terminated IDs */
    char *text;       /* their storage */
    size_t *at;       /* where each starts in text, while filling */
    size_t len, cap;  /* bytes of text used and held */
    int64_t ids_cap;  /* entries id and at can hold */
} mk_ids;

/* Reads the IDs of the rows (ascending) when the model has them. */
mk_err mk_source_read_ids(mk_source *src, const int64_t *rows, int64_t m, mk_ids *ids);
void mk_ids_free(mk_ids *ids);

#endif
