/* The activation source: layers stored as HDF5 datasets, first dimension the
 * example index, the remaining dimensions flattened into features.
 * Not collective: each rank opens the file read-only on its own. */
#ifndef MPICKA_SOURCE_H
#define MPICKA_SOURCE_H

#include <stdint.h>

#include "mpicka/config.h"
#include "mpicka/error.h"

/* Features of one layer at most: BLAS takes int dimensions. */
#define MK_MAX_FEATURES ((int64_t)INT32_MAX)

typedef struct {
    char *path;       /* dataset path inside the file, without a leading '/' */
    int64_t n;        /* examples */
    int64_t p;        /* features: product of the trailing dimensions */
    int in_f32;       /* values convert exactly to float (f16, f32, ints up to 16 bits) */
    char shape[64];   /* "(n, 64, 4, 4)" for messages and show */
    char dtype[16];   /* "float16", "int32", ... */
} mk_layer;

typedef struct {
    char *file;
    char *name;
    int nlayers;
    mk_layer *layers;
} mk_model;

/* Open cfg->file, expand the layer patterns (globs match dataset paths with
 * fnmatch, '*' not crossing '/', in natural order: layer2 before layer10),
 * and check each dataset: numeric, at least one dimension (a 1-D dataset is
 * one feature), no zero-sized feature dimension, and the same n in every
 * layer. Errors name the file and the dataset. */
mk_err mk_model_inspect(const mk_model_cfg *cfg, mk_model *model);
void mk_model_free(mk_model *model);

/* The layer with the most features (the first of equals); NULL for NULL or
 * an empty model. */
const mk_layer *mk_model_widest(const mk_model *model);

/* Features of all layers together (0 for NULL). */
int64_t mk_model_features(const mk_model *model);

/* Flat serialisation so that rank 0 can inspect and broadcast. */
mk_err mk_model_pack(const mk_model *model, char **buf, int64_t *len);
mk_err mk_model_unpack(const char *buf, int64_t len, mk_model *model);

/* Natural-order comparison of strings: digit runs compare as numbers. */
int mk_natural_cmp(const char *a, const char *b);

typedef struct mk_source mk_source;

mk_err mk_source_open(const mk_model *model, mk_source **src);
void mk_source_close(mk_source *src);

/* Read the rows (ascending example indices, m of them) of layer l into buf as
 * an m-by-p row-major block of float (model->layers[l].in_f32) or double.
 * Runs of consecutive rows become one hyperslab each; HDF5 converts types. */
mk_err mk_source_read(mk_source *src, int l, const int64_t *rows, int64_t m, void *buf);

#endif
