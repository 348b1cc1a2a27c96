/* The synthetic-activation generator behind `mpicka synth`, shared by its
 * command (synth.c: options and the plan of the layers) and its writer
 * (synth_gen.c). Not a public interface. */
#ifndef MPICKA_SYNTH_GEN_H
#define MPICKA_SYNTH_GEN_H

#include <hdf5.h>
#include <stddef.h>
#include <stdint.h>

#include "mpicka/error.h"

#define SYNTH_MAX_RANK 4             /* feature dimensions; the file adds one for n */

struct synth_opts {
    const char *out;
    int64_t n, layers, latent, chunk, gzip, block;
    double corr, noise, offset;
    uint64_t seed;
    int relu;
    const char *features, *dtypes, *names;
};

enum synth_dtype { DT_F16, DT_F32, DT_F64, DT_I8, DT_I16, DT_I32, DT_I64, DT_U8 };
#define DT_COUNT (DT_U8 + 1)

/* How doubles reach the file type: HDF5's hard conversion for f32/f64. For
 * f16 we round to binary16 ourselves: HDF5 has only a soft conversion, which
 * tripled the run time, and in 1.10.8 it halves a value whose rounding carries
 * into the exponent when a subnormal result precedes it in the same call. */
enum synth_conv { CONV_HDF5, CONV_HALF, CONV_INT };

struct synth_dtype_info {
    const char *name;
    enum synth_conv conv;
    int64_t lo, hi;                /* saturation range of integer types */
    size_t size;
};

extern const struct synth_dtype_info mk_synth_dtypes[DT_COUNT];

struct synth_layer {
    char *name;
    int rank;                      /* feature dimensions, 1..SYNTH_MAX_RANK */
    hsize_t dims[SYNTH_MAX_RANK];
    size_t p;                      /* features: product of dims */
    enum synth_dtype dt;
};

struct synth_plan {
    struct synth_layer *layers;
    int nlayers;
    size_t pmax;
    int any_conv;                  /* some layer is converted by us (needs gen.conv) */
};

/* Chunks are clamped to n (HDF5 wants chunk <= extent) and must stay < 4 GiB. */
static inline hsize_t mk__synth_chunk_rows(const struct synth_opts *o)
{
    return (hsize_t)(o->chunk < o->n ? o->chunk : o->n);
}

/* Writes o->out as pl says, under a temporary name renamed into place once
 * complete; HDF5's own error reports are silenced (our messages name the
 * file and the dataset). */
mk_err mk__synth_write(const struct synth_opts *o, const struct synth_plan *pl);

#endif
