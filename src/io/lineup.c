#include "mpicka/lineup.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

mk_err mk_lineup_init(const mk_config *cfg, mk_lineup *lu)
{
    memset(lu, 0, sizeof *lu);
    mk_err err = MK_OK;
    lu->nmodels = mk_config_nmodels(cfg);
    lu->models = mk_calloc((size_t)lu->nmodels, sizeof *lu->models, "the models", &err);
    lu->cross = !cfg->models && cfg->has_y;
    lu->listed = cfg->models != NULL;
    return err;
}

mk_err mk_lineup_layout(mk_lineup *lu)
{
    mk_err err = MK_OK;
    lu->offset = mk_malloc((size_t)(lu->nmodels + 1) * sizeof *lu->offset, "the models' offsets", &err);
    if (err) return err;
    lu->offset[0] = 0;
    for (int k = 0; k < lu->nmodels; k++) {
        if (lu->models[k].nlayers > MK_MAX_LAYERS - lu->offset[k])
            return mk_fail(MK_EINPUT, "the models have more than %d layers in all (%s has %d); compare fewer",
                           MK_MAX_LAYERS, lu->models[k].file, lu->models[k].nlayers);
        lu->offset[k + 1] = lu->offset[k] + lu->models[k].nlayers;
    }
    lu->nlayers = lu->offset[lu->nmodels];
    return MK_OK;
}

void mk_lineup_pair_name(const mk_lineup *lu, int a, int b, char *buf, size_t size)
{
    if (lu->cross) snprintf(buf, size, "x and y");
    else snprintf(buf, size, "models '%s' and '%s'", lu->models[a].name, lu->models[b].name);
}

static mk_err same_examples(const mk_lineup *lu, int k)
{
    const mk_model *a = &lu->models[0], *b = &lu->models[k];
    if (a->layers[0].n == b->layers[0].n) return MK_OK;
    char who[512];
    mk_lineup_pair_name(lu, 0, k, who, sizeof who);
    return mk_fail(MK_EINPUT, "%s differ in examples: '%s' in %s has %lld, '%s' in %s has %lld", who,
                   a->layers[0].path, a->file, (long long)a->layers[0].n, b->layers[0].path, b->file,
                   (long long)b->layers[0].n);
}

mk_err mk_lineup_same_examples(const mk_lineup *lu)
{
    for (int k = 1; k < lu->nmodels; k++) MK_TRY(same_examples(lu, k));
    return MK_OK;
}

mk_err mk_lineup_inspect(const mk_config *cfg, mk_lineup *lu)
{
    MK_TRY(mk_lineup_init(cfg, lu));
    for (int k = 0; k < lu->nmodels; k++) MK_TRY(mk_model_inspect(mk_config_model(cfg, k), &lu->models[k]));
    MK_TRY(mk_lineup_same_examples(lu));
    return mk_lineup_layout(lu);
}

void mk_lineup_free(mk_lineup *lu)
{
    for (int k = 0; lu->models && k < lu->nmodels; k++) mk_model_free(&lu->models[k]);
    free(lu->models);
    free(lu->offset);
    memset(lu, 0, sizeof *lu);
}

int mk_lineup_rows(const mk_lineup *lu) { return lu->cross ? lu->models[0].nlayers : lu->nlayers; }

int mk_lineup_cols(const mk_lineup *lu) { return lu->cross ? lu->models[1].nlayers : lu->nlayers; }

const mk_layer *mk_lineup_layer(const mk_lineup *lu, int f, int *model)
{
    int k = 0;
    while (f >= lu->offset[k + 1]) k++;
    if (model) *model = k;
    return &lu->models[k].layers[f - lu->offset[k]];
}

size_t mk_lineup_cache_share(const mk_lineup *lu, int k)
{
    return (size_t)((double)MK_CHUNK_CACHES * lu->models[k].nlayers / lu->nlayers);
}

int64_t mk_lineup_features(const mk_lineup *lu)
{
    int64_t P = 0;
    for (int k = 0; k < lu->nmodels; k++) P += mk_model_features(&lu->models[k]);
    return P;
}

const mk_layer *mk_lineup_widest(const mk_lineup *lu, int *model)
{
    const mk_layer *most = NULL;
    for (int k = 0; k < lu->nmodels; k++) {
        const mk_layer *w = mk_model_widest(&lu->models[k]);
        if (w && (!most || w->p > most->p)) {
            most = w;
            if (model) *model = k;
        }
    }
    return most;
}

static int find_layer(const mk_model *model, const char *path)
{
    for (int l = 0; l < model->nlayers; l++)
        if (!strcmp(model->layers[l].path, path)) return l;
    return -1;
}

void mk_lineup_matched_cube(const mk_lineup *lu, const double *grid, int K, const int *index, double *cube)
{
    int N = lu->nmodels, L = lu->nlayers;
    for (int k = 0; k < K; k++)
        for (int a = 0; a < N; a++)
            for (int b = 0; b < N; b++)
                cube[((size_t)k * N + a) * N + b] = grid[(size_t)index[k * N + a] * L + index[k * N + b]];
}

mk_err mk_lineup_matched(const mk_lineup *lu, int *K, int **index)
{
    const mk_model *first = &lu->models[0];
    mk_err err = MK_OK;
    *K = 0;
    *index = mk_malloc((size_t)first->nlayers * (size_t)lu->nmodels * sizeof **index, "the matched layers", &err);
    if (err) return err;
    for (int l = 0; l < first->nlayers; l++) {
        int *row = *index + *K * lu->nmodels, all = 1;
        for (int a = 0; a < lu->nmodels && all; a++) {
            int at = find_layer(&lu->models[a], first->layers[l].path);
            all = at >= 0;
            row[a] = lu->offset[a] + at;
        }
        *K += all;
    }
    return MK_OK;
}
