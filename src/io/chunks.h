/* Deflate-compressed, chunked layers read without HDF5's filter pipeline:
 * the stored bytes of each chunk of a band (a chunk's rows across every
 * feature) come from H5Dread_chunk on the calling thread, and libdeflate
 * inflates them on `workers` threads at once (HDF5 inflates one chunk at a
 * time, on the reader thread). The values are the stored bytes, so the
 * result is bitwise HDF5's. Internal to the source module. */
#ifndef MPICKA_CHUNKS_H
#define MPICKA_CHUNKS_H

#include <hdf5.h>
#include <stddef.h>
#include <stdint.h>

#include "mpicka/error.h"

typedef struct mk__chunks mk__chunks;

/* A reader for dset when it qualifies: chunked, filters deflate or shuffle
 * then deflate, stored as little-endian IEEE float (in_f32) or double as
 * the layer is read, and a band of at most cap bytes (the one band it
 * keeps). *out is NULL when it does not qualify (HDF5 reads it). */
mk_err mk__chunks_open(hid_t dset, int in_f32, size_t cap, mk__chunks **out);
void mk__chunks_close(mk__chunks *c);

/* Threads that inflate a band's chunks together (default 1: the caller). */
mk_err mk__chunks_set_workers(mk__chunks *c, int workers);

/* Rows rows[0..k) - base (ascending) into buf, p values each. On failure
 * MK_EIO (MK_ENOMEM) naming the file, the examples, the dataset and the chunk. */
mk_err mk__chunks_read(mk__chunks *c, const int64_t *rows, int64_t k, int64_t base, void *buf, const char *file,
                      const char *path);

/* For a chunked layer HDF5 reads (any filters): its index alone, when it
 * holds every chunk the shape needs (*out NULL otherwise, or when not
 * chunked; inspection refuses chunks never written). Close it with
 * mk__chunks_close. */
mk_err mk__chunks_index(hid_t dset, mk__chunks **out);

/* HDF5 reads the fill value for a chunk its index lacks (a damaged index),
 * and a chunk with a filter marked skipped undone: before HDF5 reads rows
 * rows[0..k) - base, every chunk of their bands must be in the index, with
 * no filter skipped that never is. MK_EIO naming file, examples, dataset
 * and chunk. */
mk_err mk__chunks_check(mk__chunks *c, const int64_t *rows, int64_t k, int64_t base, const char *file,
                       const char *path);

#endif
