/* The ways the source reads a layer's rows, one struct of operations each
 * (read_hdf5.c, read_direct.c, read_chunks.c). When a source opens, each
 * layer of each shard is offered to the paths in the source's order; the
 * first that takes it reads it until the source closes, so mk_source_read
 * never asks again how a layer is stored. A new path is a new file with
 * its operations, named below and in source.c's list. Internal to the
 * source module. */
#ifndef MPICKA_READPATH_H
#define MPICKA_READPATH_H

#include <hdf5.h>
#include <stddef.h>
#include <stdint.h>

#include "mpicka/model.h"

/* One layer of one shard, as a path's open sees it. The handles are the
 * source's and stay open until it closes; a path may keep them. */
typedef struct {
    const mk_model *model;
    const mk_layer *layer;
    int shard;          /* the shard's index: model->files[shard] */
    hid_t dset;         /* the layer's dataset, its chunk cache sized */
    hid_t space;        /* its file dataspace */
    hid_t mem;          /* the type rows are read as: native float or double, or the stored half */
    int half;           /* mem is little-endian IEEE half, widened by the source after the read */
    size_t cap;         /* bytes of one band of chunks at most (the chunk cache's) */
} mk__layer_at;

typedef struct {
    /* State the path's layers share within one source, made before any layer
     * is offered and freed after every layer closed; NULL when there is none. */
    mk_err (*source_open)(const mk_model *model, void **shared);
    void (*source_close)(void *shared);
    /* Takes the layer when the path can read it exactly as HDF5 would:
     * MK_OK with *layer set; MK_OK with *layer NULL when it cannot (the next
     * path is asked); an error when it can but failed to set up. */
    mk_err (*open)(void *shared, const mk__layer_at *at, void **layer);
    /* Rows rows[0..k) - base (ascending, all in the shard) into buf, p
     * values of the memory type each. On failure MK_EIO (or MK_ENOMEM)
     * naming the shard, the examples and the dataset. */
    mk_err (*read)(void *layer, const int64_t *rows, int64_t k, int64_t base, void *buf);
    /* Threads one layer's reads may use (NULL: the path uses none). */
    mk_err (*set_workers)(void *layer, int workers);
    void (*close)(void *layer);
} mk__readpath;

/* Contiguous layers stored in the memory type: their bytes by pread or io_uring. */
extern const mk__readpath mk__read_direct;
/* Deflate-compressed float layers: chunks inflated with libdeflate (chunks.h). */
extern const mk__readpath mk__read_chunks;
/* Everything else, and the IDs: hyperslabs through H5Dread. Takes every layer. */
extern const mk__readpath mk__read_hdf5;

/* Reads rows[0..k) - base of a dataset into buf as `type`, `per_row`
 * elements each, one hyperslab per run of consecutive rows: <0 on failure. */
herr_t mk__h5_read_rows(hid_t dset, hid_t space, hid_t type, const int64_t *rows, int64_t k, int64_t base,
                        int64_t per_row, void *buf);

/* The error of a failed read of rows[0..k) - base of dataset `path` in `file`. */
mk_err mk__read_failed(const char *file, const char *path, const int64_t *rows, int64_t k, int64_t base);

#endif
