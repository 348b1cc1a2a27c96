/* A model's description as one flat buffer: rank 0 inspects the files and
 * broadcasts the result, so that the other ranks never open them to learn it. */
#include "mpicka/model.h"

#include "h5file.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- serialisation: NUL-terminated fields, numbers in decimal ---- */

typedef struct {
    char *buf;
    int64_t len, cap;
    mk_err err;
} packer;

static void put(packer *pk, const char *field)
{
    int64_t need = (int64_t)strlen(field) + 1;
    if (pk->err) return;
    if (pk->len + need > pk->cap) {
        int64_t cap = 2 * (pk->cap + need);
        char *grown = realloc(pk->buf, (size_t)cap);
        if (!grown) {
            pk->err = mk_fail(MK_ENOMEM, "cannot pack the layer list");
            return;
        }
        pk->buf = grown;
        pk->cap = cap;
    }
    memcpy(pk->buf + pk->len, field, (size_t)need);
    pk->len += need;
}

static void put_int(packer *pk, int64_t v)
{
    char num[32];
    snprintf(num, sizeof num, "%lld", (long long)v);
    put(pk, num);
}

mk_err mk_model_pack(const mk_model *model, char **buf, int64_t *len)
{
    packer pk = {0};
    put(&pk, model->file);
    put(&pk, model->name);
    put(&pk, model->ids ? model->ids : "");
    put_int(&pk, model->order);
    put_int(&pk, model->nfiles);
    for (int f = 0; f < model->nfiles; f++) {
        put(&pk, model->files[f]);
        put_int(&pk, model->first[f + 1]);
    }
    put_int(&pk, model->nlayers);
    for (int l = 0; l < model->nlayers; l++) {
        const mk_layer *layer = &model->layers[l];
        put(&pk, layer->path);
        put_int(&pk, layer->n);
        put_int(&pk, layer->p);
        put_int(&pk, layer->in_f32);
        put(&pk, layer->shape);
        put(&pk, layer->dtype);
        put_int(&pk, layer->band);
    }
    if (pk.err) {
        free(pk.buf);
        return pk.err;
    }
    *buf = pk.buf;
    *len = pk.len;
    return MK_OK;
}

typedef struct {
    const char *buf;
    int64_t len, pos;
} unpacker;

static const char *get(unpacker *u)
{
    if (u->pos >= u->len) return "";
    const char *field = u->buf + u->pos;
    u->pos += (int64_t)strnlen(field, (size_t)(u->len - u->pos)) + 1;
    return field;
}

static int64_t get_int(unpacker *u) { return strtoll(get(u), NULL, 10); }

mk_err mk_model_unpack(const char *buf, int64_t len, mk_model *model)
{
    mk_err err = MK_OK;
    unpacker u = {buf, len, 0};
    memset(model, 0, sizeof *model);
    model->file = mk__dupstr(get(&u), &err);
    if (!err) model->name = mk__dupstr(get(&u), &err);
    const char *ids = get(&u);
    if (!err && *ids) model->ids = mk__dupstr(ids, &err);
    model->order = (int)get_int(&u);
    int64_t nfiles = get_int(&u);
    if (!err) model->files = mk_calloc((size_t)nfiles, sizeof *model->files, "the input list", &err);
    if (!err) model->first = mk_calloc((size_t)nfiles + 1, sizeof *model->first, "the shard list", &err);
    for (int64_t f = 0; f < nfiles && !err; f++) {
        model->files[f] = mk__dupstr(get(&u), &err);
        model->nfiles += !err;
        model->first[f + 1] = get_int(&u);
    }
    int64_t count = get_int(&u);
    if (!err) model->layers = mk_calloc((size_t)count, sizeof *model->layers, "the layer list", &err);
    for (int64_t l = 0; l < count && !err; l++) {
        mk_layer *layer = &model->layers[l];
        layer->path = mk__dupstr(get(&u), &err);
        model->nlayers++;
        layer->n = get_int(&u);
        layer->p = get_int(&u);
        layer->in_f32 = (int)get_int(&u);
        snprintf(layer->shape, sizeof layer->shape, "%s", get(&u));
        snprintf(layer->dtype, sizeof layer->dtype, "%s", get(&u));
        layer->band = get_int(&u);
    }
    if (err) mk_model_free(model);
    return err;
}
