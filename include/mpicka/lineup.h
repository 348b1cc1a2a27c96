/* The models of a run side by side: every layer of every model is read per
 * batch, model after model (the flat layer order), and the matrix pairs them
 * as x against y (two models, `cross`) or all against all (one model with
 * itself, or a `models:` list). Not collective; rank 0 inspects, the driver
 * broadcasts the models and every rank lays them out. */
#ifndef MPICKA_LINEUP_H
#define MPICKA_LINEUP_H

#include <stddef.h>

#include "mpicka/config.h"
#include "mpicka/error.h"
#include "mpicka/source.h"

typedef struct {
    mk_model *models;  /* in config order */
    int nmodels;
    int cross;         /* x vs y: rows are model 0's layers, columns model 1's */
    int listed;        /* a `models:` list: written in the models format */
    int nlayers;       /* of all models */
    int *offset;       /* nmodels + 1: model k's layers are offset[k] .. offset[k+1]-1 of the flat order */
} mk_lineup;

/* Layers of all models together at most: L^2 sums are held per batch, so
 * far fewer fit in memory; this keeps every count of layers an int. */
#define MK_MAX_LAYERS (1 << 20)

/* The (empty) models of cfg; mk_lineup_layout once they are filled
 * (MK_EINPUT beyond MK_MAX_LAYERS). */
mk_err mk_lineup_init(const mk_config *cfg, mk_lineup *lu);
mk_err mk_lineup_layout(mk_lineup *lu);

/* The run pairs the models' examples one to one: MK_EINPUT naming the
 * first model whose number of examples differs from model 0's. */
mk_err mk_lineup_same_examples(const mk_lineup *lu);

/* Init, inspect every model (mk_model_inspect), check that they have the
 * same examples and lay them out. */
mk_err mk_lineup_inspect(const mk_config *cfg, mk_lineup *lu);
void mk_lineup_free(mk_lineup *lu);

/* The matrix: rows by cols, flat layer of row i is i, of column j is
 * j + (cross ? rows : 0). */
int mk_lineup_rows(const mk_lineup *lu);
int mk_lineup_cols(const mk_lineup *lu);

/* Models a and b in a message: "x and y", or "models 'A' and 'B'". */
void mk_lineup_pair_name(const mk_lineup *lu, int a, int b, char *buf, size_t size);

/* Flat layer f: its model's index and the layer. */
const mk_layer *mk_lineup_layer(const mk_lineup *lu, int f, int *model);

/* Model k's part of the chunk caches (MK_CHUNK_CACHES), in proportion to
 * its layers: the models of a run share one budget. */
size_t mk_lineup_cache_share(const mk_lineup *lu, int k);

/* Features of all layers; the widest layer (and its model's index). */
int64_t mk_lineup_features(const mk_lineup *lu);
const mk_layer *mk_lineup_widest(const mk_lineup *lu, int *model);

/* The layer paths every model has, in model 0's order: K of them, and for
 * each the flat layer in every model (index[k * nmodels + a]). malloc'd. */
mk_err mk_lineup_matched(const mk_lineup *lu, int *K, int **index);

/* For each of those K layers, the model-by-model matrix of grid (L by L,
 * row-major) at that layer: cube gets K by N by N values (N models). */
void mk_lineup_matched_cube(const mk_lineup *lu, const double *grid, int K, const int *index, double *cube);

#endif
