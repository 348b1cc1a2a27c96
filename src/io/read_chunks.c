/* The chunk path: deflate-compressed float layers whose chunks are read
 * stored (H5Dread_chunk) and inflated here with libdeflate, on several
 * threads where the source asks for them; the engine is chunks.c. */
#include "readpath.h"

#include <stdlib.h>

#include "chunks.h"

typedef struct {
    mk__chunks *chunks;
    const char *file, *path; /* for its messages */
} chunks_layer;

/* Halves are read stored and widened by the source; the engine takes
 * float32 and float64 only, as the source always chose. */
static mk_err chunks_open(void *shared, const mk__layer_at *at, void **layer)
{
    if (at->half) return MK_OK;
    mk__chunks *c;
    MK_TRY(mk__chunks_open(at->dset, at->layer->in_f32, at->cap, &c));
    if (!c) return MK_OK;
    mk_err err = MK_OK;
    chunks_layer *r = mk_malloc(sizeof *r, "a layer reader", &err);
    if (err) {
        mk__chunks_close(c);
        return err;
    }
    *r = (chunks_layer){c, at->model->files[at->shard], at->layer->path};
    *layer = r;
    return MK_OK;
}

static mk_err chunks_read(void *layer, const int64_t *rows, int64_t k, int64_t base, void *buf)
{
    const chunks_layer *r = layer;
    return mk__chunks_read(r->chunks, rows, k, base, buf, r->file, r->path);
}

static mk_err chunks_set_workers(void *layer, int workers)
{
    return mk__chunks_set_workers(((chunks_layer *)layer)->chunks, workers);
}

static void chunks_close(void *layer)
{
    mk__chunks_close(((chunks_layer *)layer)->chunks);
    free(layer);
}

const mk__readpath mk__read_chunks = {
    .open = chunks_open,
    .read = chunks_read,
    .set_workers = chunks_set_workers,
    .close = chunks_close,
};
