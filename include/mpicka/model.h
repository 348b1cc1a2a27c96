/* A model's activations as inspected before any read: the files (shards)
 * and datasets (layers), their shapes and types, and whether every shard
 * holds sample IDs. Rank 0 inspects; the others get the packed result. */
#ifndef MPICKA_MODEL_H
#define MPICKA_MODEL_H

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
    int64_t band;     /* chunked: bytes of one band of chunks (a chunk's rows, every feature); else 0 */
} mk_layer;

/* The order a layer glob expands in (config key layer_order). */
typedef enum { MK_ORDER_AUTO = 0, MK_ORDER_CREATION = 1, MK_ORDER_NATURAL = 2 } mk_layer_order;

/* A model's activations: one or more HDF5 files (shards) holding the same
 * layers, concatenated along the example axis; n and the layer shapes are
 * those of the whole. */
typedef struct {
    char *file;       /* for messages: the file, or the config's entries joined by ", " */
    char *name;
    int nlayers;
    mk_layer *layers;
    int nfiles;       /* shards, in order (>= 1) */
    char **files;
    int64_t *first;   /* nfiles + 1 entries: shard i holds examples [first[i], first[i+1]) */
    char *ids;        /* the sample-ID dataset every shard holds, or NULL */
    int order;        /* how globs expanded: MK_ORDER_CREATION or MK_ORDER_NATURAL */
} mk_model;

/* Resolve cfg->files (a glob, holding * ? or [, expands in natural order;
 * shards concatenate in the order listed), expand the layer patterns in the
 * first shard (globs match dataset paths with fnmatch, '*' not crossing '/',
 * in the file's creation order when it tracks it and cfg->order allows,
 * otherwise in natural order: layer2 before layer10; the IDs dataset is never
 * taken), and check each dataset: numeric, at least one dimension (a 1-D
 * dataset is one feature), no zero-sized feature dimension, the same n in
 * every layer of a shard, and the same layers, trailing shapes and types in
 * every shard. With cfg->check_ids, the IDs dataset (1-D, one integer of at
 * most 64 bits or string per example) is checked in every shard when the
 * first has it. Files named "-K-of-W" must make whole sets (none missing,
 * twice or past W, one W per set), and no file may be given twice, under
 * any spelling (same device and inode), in one model: MK_EINPUT naming
 * the input. Errors name the file (the shard) and the dataset. */
mk_err mk_model_inspect(const mk_model_cfg *cfg, mk_model *model);
void mk_model_free(mk_model *model);

/* The files a model reads (malloc'd list of malloc'd paths; free with
 * mk_model_files_free): what a checkpoint's fingerprint must cover. The
 * shards, then the files their layers' data comes from: behind external
 * links, virtual datasets' sources and external storage. */
mk_err mk_model_files(const mk_model *model, char ***files, int *count);
void mk_model_files_free(char **files, int count);

/* The shard holding example i (0 <= i < n). */
int mk_model_shard(const mk_model *model, int64_t i);

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

#endif
