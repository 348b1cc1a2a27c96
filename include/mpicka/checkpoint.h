/* Checkpoint files: what a stopped run has done, to resume it bit for bit.
 *
 * A checkpoint holds the fingerprint of the run (the settings that shape the
 * sums, and each input's size, modification time, sampled content
 * (mk_checkpoint_sample) and layer shapes), the
 * batches still to do, and the partial sums of the batches done (tree nodes,
 * see mpicka/accum.h). Written by rank 0 under a temporary name, flushed to
 * disk and renamed, so a crash at any instant leaves the last good one.
 * It also keeps the time spent so far (seconds_total over `segments` runs up
 * to this checkpoint), for the total a resumed run reports. Not collective. */
#ifndef MPICKA_CHECKPOINT_H
#define MPICKA_CHECKPOINT_H

#include "mpicka/accum.h"
#include "mpicka/error.h"
#include "mpicka/plan.h"

typedef struct {
    char *fingerprint;
    mk_todo todo;
    mk_nodes nodes;
    double seconds;    /* time of the segments before, 0 in a checkpoint that does not say */
    int64_t segments;  /* how many runs that time covers */
} mk_checkpoint;

/* seconds: the time so far, over `segments` runs (this one included). */
mk_err mk_checkpoint_write(const char *path, const char *fingerprint, const mk_todo *todo, const mk_nodes *nodes,
                           double seconds, int64_t segments);

/* MK_EINPUT naming the file when it is damaged or not a checkpoint: its
 * bytes must match the hash in its header before HDF5 reads any of them. */
mk_err mk_checkpoint_read(const char *path, mk_checkpoint *ck);

/* A checkpoint read from disk is untrusted: its partial sums must be finite,
 * of len values each, and its tree nodes and batches to do must tile the
 * plan's batches [0, total) exactly. Sets ck->todo.batches. MK_EINPUT with
 * the damaged-checkpoint advice otherwise. */
mk_err mk_checkpoint_validate(mk_checkpoint *ck, const char *path, const mk_plan *plan, int64_t len);

/* The content part of an input's fingerprint: the FNV-1a hash of a fixed
 * sample of its `size` bytes, MK_CHECKPOINT_SAMPLES blocks of
 * MK_CHECKPOINT_SAMPLE bytes (the first, the last and the others spread
 * evenly between; the whole file when it is no larger), so that its cost
 * does not grow with the data. A change that keeps the size and the
 * modification time is caught when it touches a sampled block, and a file
 * of at most 512 KiB is sampled whole. MK_EIO naming the file when it
 * cannot be read. */
#define MK_CHECKPOINT_SAMPLES 8
#define MK_CHECKPOINT_SAMPLE 65536
mk_err mk_checkpoint_sample(const char *file, int64_t size, uint64_t *hash);

/* Frees what mk_checkpoint_read allocated; ck may be zeroed. */
void mk_checkpoint_free(mk_checkpoint *ck);

#endif
