/* Read-ahead of a rank's layer blocks, in a thread of its own, so that
 * reading, converting and centring the next block hide under the current
 * Gram. Blocks are handed out centred (mk_centre), in the working precision.
 *
 * The blocks come in a fixed order: for each batch of positions [lo, hi) of
 * the todo list, every layer of the lineup in its flat order (model after
 * model). Two buffers alternate (double buffering): the
 * thread fills one while the caller works on the other. Only the reader
 * thread calls HDF5 between mk_reader_start and mk_reader_stop (the HDF5
 * library is not built thread-safe). Not collective. */
#ifndef MPICKA_READER_H
#define MPICKA_READER_H

#include <stdint.h>

#include "mpicka/config.h"
#include "mpicka/error.h"
#include "mpicka/lineup.h"
#include "mpicka/plan.h"
#include "mpicka/source.h"

typedef struct mk_reader mk_reader;

typedef struct {
    const void *data;     /* centred m by p block, in the working precision */
    const double *mean;   /* the p column means taken out */
    const int64_t *rows;  /* the batch's examples, ascending */
    int64_t g;            /* global batch index */
    int64_t m;            /* examples in the batch */
    int model, layer;     /* the model's index in the lineup, the layer's in the model */
    double amax;          /* the largest |centred value| (Inf when one overflowed) */
    int constant;         /* every example of the batch equal in this layer: data is zero */
} mk_block;

/* Blocks of one batch that were read already (the probe's, rank 0), as
 * read: per flat layer an m by p block of float (in_f32) or double, or NULL
 * where the layer must be read. The reader hands them out instead of reading
 * them again, frees each one once centred, and frees what is left at stop. */
typedef struct {
    int64_t g;            /* the batch */
    int nlayers;
    void **raw;           /* per flat layer */
} mk_kept;

/* Frees the blocks and the array (a zeroed mk_kept is empty). */
void mk_kept_free(mk_kept *kept);

/* srcs: one open source per model of lu; scales: a power of two per flat
 * layer that its values are multiplied by before centring. The lineup, the
 * sources, the scales and the todo list must stay unchanged until
 * mk_reader_stop. When two models or more have sample IDs (mk_model.ids),
 * the reader compares each with the first for each batch's rows before
 * reading its first block: the first difference fails that block with
 * MK_EDATA, naming the example, both IDs and both files. kept: NULL, or
 * blocks already read, which the reader takes over (*kept is left empty). */
mk_err mk_reader_start(const mk_plan *plan, mk_precision prec, mk_source *const *srcs, const mk_lineup *lu,
                       const double *scales, const mk_todo *todo, int64_t lo, int64_t hi, mk_kept *kept,
                       mk_reader **reader);

/* Wait for the next block (valid until the next call). A failed read, or
 * NaN/Inf in the block, returns its error with the reader's message. */
mk_err mk_reader_next(mk_reader *reader, mk_block *block);

/* Seconds spent: reading and centring (in the reader thread), waiting (the caller). */
enum { MK_READER_READ, MK_READER_CENTRE, MK_READER_WAIT, MK_READER_TIMES };

/* Stop the thread (whether or not every block was taken) and free; adds the
 * seconds spent to times[MK_READER_TIMES]. */
void mk_reader_stop(mk_reader *reader, double *times);

/* Debian's HDF5 (the MPI build) is not thread-safe: the caller holds this
 * around any HDF5 call it makes while the reader runs (a checkpoint), which
 * waits for the read in progress. NULL: no reader, nothing to hold. */
void mk_reader_hold_hdf5(mk_reader *reader);
void mk_reader_release_hdf5(mk_reader *reader);

#endif
