#include "mpicka/reader.h"

#include "mpicka/hsic.h"
#include "mpicka/log.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define NSLOT 2

typedef struct {
    void *data;           /* centred block, working precision */
    double *mean;         /* the column means taken out */
    int64_t *rows;
    mk_centring how;      /* the layer's scale in, the block's range and constancy out */
    mk_err err;
    char msg[1024];
} slot;

struct mk_reader {
    const mk_plan *plan;
    mk_precision prec;
    const double *scales;         /* per layer of the block sequence */
    void *raw;                    /* the block as read, before centring */
    mk_source *const *srcs;       /* the caller's, per model */
    const mk_lineup *lu;
    int per_batch;                /* layers of all models */
    const mk_todo *todo;
    int64_t lo, count;            /* todo positions from lo; blocks: count = (hi - lo) * per_batch */
    slot slots[NSLOT];
    int64_t filled, taken;        /* blocks read so far, handed out so far */
    int stop;
    int ids_ref;                  /* the first model with sample IDs; the others with IDs are compared to it */
    int check_ids;                /* two models or more have IDs: compare them batch by batch */
    mk_ids *ids;                  /* per model */
    mk_kept kept;                 /* blocks read already */
    double times[MK_READER_TIMES];
    pthread_mutex_t mu;
    pthread_mutex_t hdf5;         /* held around every HDF5 call of the thread */
    pthread_cond_t cv;
    pthread_t thread;
    int started;
};

/* Block s of the sequence: which batch, model and layer. */
static void locate(const mk_reader *r, int64_t s, int64_t *g, int *model, int *layer)
{
    *g = mk_todo_batch(r->todo, r->lo + s / r->per_batch);
    int flat = (int)(s % r->per_batch);
    mk_lineup_layer(r->lu, flat, model);
    *layer = flat - r->lu->offset[*model];
}

/* The models must hold the same examples in the same order: their IDs for
 * the batch's rows, read with the batch's first block (a batch's worth of
 * IDs, never n). */
static mk_err compare_ids(const mk_reader *r, int k, const int64_t *rows, int64_t m)
{
    const mk_ids *a = &r->ids[r->ids_ref], *b = &r->ids[k];
    for (int64_t i = 0; i < m; i++) {
        if (!strcmp(a->id[i], b->id[i])) continue;
        const mk_model *x = &r->lu->models[r->ids_ref], *y = &r->lu->models[k];
        char who[512];
        mk_lineup_pair_name(r->lu, r->ids_ref, k, who, sizeof who);
        return mk_fail(MK_EDATA, "%s hold different samples: example %lld is '%.200s' in %s but '%.200s' in %s "
                       "(sample-ID dataset '%s'); all inputs must hold the same examples in the same order", who,
                       (long long)rows[i], a->id[i], x->files[mk_model_shard(x, rows[i])], b->id[i],
                       y->files[mk_model_shard(y, rows[i])], x->ids);
    }
    return MK_OK;
}

static mk_err check_ids(mk_reader *r, const int64_t *rows, int64_t m)
{
    for (int k = r->ids_ref; k < r->lu->nmodels; k++) {
        if (!r->lu->models[k].ids) continue;
        MK_TRY(mk_source_read_ids(r->srcs[k], rows, m, &r->ids[k]));
        if (k > r->ids_ref) MK_TRY(compare_ids(r, k, rows, m));
    }
    return MK_OK;
}

void mk_kept_free(mk_kept *kept)
{
    for (int l = 0; kept->raw && l < kept->nlayers; l++) free(kept->raw[l]);
    free(kept->raw);
    *kept = (mk_kept){0};
}

/* The block of flat layer `flat` of batch g if it was read already. */
static void *kept_block(const mk_reader *r, int64_t g, int flat)
{
    return r->kept.raw && g == r->kept.g ? r->kept.raw[flat] : NULL;
}

static void read_block(mk_reader *r, int64_t s, slot *sl)
{
    int64_t g;
    int model, layer;
    locate(r, s, &g, &model, &layer);
    int64_t m = mk_plan_batch_size(r->plan, g);
    if (model == 0 && layer == 0) mk_plan_batch_rows(r->plan, g, sl->rows);
    else memcpy(sl->rows, r->slots[(s - 1) % NSLOT].rows, (size_t)m * sizeof(int64_t));
    const mk_model *mod = &r->lu->models[model];
    const mk_layer *lay = &mod->layers[layer];
    /* Read straight into the slot and centre in place when the types agree. */
    int flat = (int)(s % r->per_batch);
    void *kept = kept_block(r, g, flat);
    void *raw = kept ? kept : lay->in_f32 == (r->prec == MK_PREC_FLOAT32) ? sl->data : r->raw;
    double t0 = mk_now();
    pthread_mutex_lock(&r->hdf5); /* the IDs and the block: HDF5 calls, as the checkpoint writer's */
    sl->err = model == 0 && layer == 0 && r->check_ids ? check_ids(r, sl->rows, m) : MK_OK;
    if (!sl->err && !kept) sl->err = mk_source_read(r->srcs[model], layer, sl->rows, m, raw);
    pthread_mutex_unlock(&r->hdf5);
    double t1 = mk_now();
    r->times[MK_READER_READ] += t1 - t0;
    if (!sl->err) {
        sl->how.scale = r->scales[flat];
        int64_t bad = mk_centre(raw, lay->in_f32, m, lay->p, r->prec, sl->mean, sl->data, &sl->how);
        if (bad >= 0)
            sl->err = mk_fail(MK_EDATA, "%s: dataset '%s' holds NaN or Inf at example %lld (batch of examples %lld..%lld)",
                              mod->files[mk_model_shard(mod, sl->rows[bad])], lay->path, (long long)sl->rows[bad], (long long)sl->rows[0],
                              (long long)sl->rows[m - 1]);
        r->times[MK_READER_CENTRE] += mk_now() - t1;
    }
    if (kept) {
        free(kept);
        r->kept.raw[flat] = NULL;
    }
    if (sl->err) snprintf(sl->msg, sizeof sl->msg, "%s", mk_errmsg());
}

static void *run_reader(void *arg)
{
    mk_reader *r = arg;
    for (int64_t s = 0; s < r->count; s++) {
        pthread_mutex_lock(&r->mu);
        while (!r->stop && s - r->taken >= NSLOT - 1) pthread_cond_wait(&r->cv, &r->mu);
        int stop = r->stop;
        pthread_mutex_unlock(&r->mu);
        if (stop) break;
        slot *sl = &r->slots[s % NSLOT];
        read_block(r, s, sl);
        pthread_mutex_lock(&r->mu);
        r->filled = s + 1;
        pthread_cond_broadcast(&r->cv);
        pthread_mutex_unlock(&r->mu);
        if (sl->err) break;
    }
    return NULL;
}

/* The largest block of any layer in precision prec or, with read_buffer,
 * of the layers read as the other type than prec (0 when there is none). */
static size_t block_bytes(const mk_lineup *lu, int64_t m, mk_precision prec, int read_buffer)
{
    size_t most = 0;
    for (int i = 0; i < lu->nmodels; i++)
        for (int l = 0; l < lu->models[i].nlayers; l++) {
            const mk_layer *layer = &lu->models[i].layers[l];
            int other = layer->in_f32 != (prec == MK_PREC_FLOAT32);
            size_t size = !read_buffer ? mk_prec_size(prec) : !other ? 0
                          : layer->in_f32 ? sizeof(float) : sizeof(double);
            if ((size_t)(m * layer->p) * size > most) most = (size_t)(m * layer->p) * size;
        }
    return most;
}

static void free_reader(mk_reader *r)
{
    for (int k = 0; r->ids && k < r->lu->nmodels; k++) mk_ids_free(&r->ids[k]);
    free(r->ids);
    mk_kept_free(&r->kept);
    free(r->raw);
    for (int i = 0; i < NSLOT; i++) {
        free(r->slots[i].data);
        free(r->slots[i].mean);
        free(r->slots[i].rows);
    }
    free(r);
}

mk_err mk_reader_start(const mk_plan *plan, mk_precision prec, mk_source *const *srcs, const mk_lineup *lu,
                       const double *scales, const mk_todo *todo, int64_t lo, int64_t hi, mk_kept *kept,
                       mk_reader **out)
{
    mk_err err = MK_OK;
    mk_reader *r = mk_calloc(1, sizeof *r, "the reader", &err);
    if (err) {
        if (kept) mk_kept_free(kept);
        return err;
    }
    if (kept) r->kept = *kept, *kept = (mk_kept){0};
    r->lu = lu;
    int64_t m = plan->m < plan->n ? plan->m : plan->n, p = mk_lineup_widest(lu, NULL)->p;
    r->ids = mk_calloc((size_t)lu->nmodels, sizeof *r->ids, "sample IDs", &err);
    if (!err) r->raw = mk_malloc(block_bytes(lu, m, prec, 1), "a layer block", &err);
    for (int i = 0; i < NSLOT && !err; i++) {
        r->slots[i].data = mk_malloc(block_bytes(lu, m, prec, 0), "a centred block", &err);
        if (!err) r->slots[i].mean = mk_malloc((size_t)(3 * p) * sizeof(double), "column means", &err);
        if (!err) r->slots[i].rows = mk_malloc((size_t)m * sizeof(int64_t), "a batch's rows", &err);
    }
    if (err) {
        free_reader(r);
        return err;
    }
    r->plan = plan;
    r->prec = prec;
    r->scales = scales;
    r->srcs = srcs;
    r->todo = todo;
    r->lo = lo;
    r->per_batch = lu->nlayers;
    r->count = (hi - lo) * r->per_batch;
    int with_ids = 0;
    for (int k = lu->nmodels - 1; k >= 0; k--)
        if (lu->models[k].ids) r->ids_ref = k, with_ids++;
    r->check_ids = with_ids >= 2;
    pthread_mutex_init(&r->mu, NULL);
    pthread_mutex_init(&r->hdf5, NULL);
    pthread_cond_init(&r->cv, NULL);
    if (pthread_create(&r->thread, NULL, run_reader, r) != 0) {
        free_reader(r);
        return mk_fail(MK_EINTERNAL, "cannot start the reader thread");
    }
    r->started = 1;
    *out = r;
    return MK_OK;
}

mk_err mk_reader_next(mk_reader *r, mk_block *b)
{
    pthread_mutex_lock(&r->mu);
    int64_t t = r->taken++;
    pthread_cond_broadcast(&r->cv); /* block t-1's buffer is free again */
    double t0 = mk_now();
    while (r->filled <= t && t < r->count) pthread_cond_wait(&r->cv, &r->mu);
    r->times[MK_READER_WAIT] += mk_now() - t0;
    pthread_mutex_unlock(&r->mu);
    if (t >= r->count) return mk_fail(MK_EINTERNAL, "read past the last block");
    const slot *sl = &r->slots[t % NSLOT];
    if (sl->err) {
        mk_set_errmsg(sl->msg);
        return sl->err;
    }
    locate(r, t, &b->g, &b->model, &b->layer);
    b->data = sl->data;
    b->mean = sl->mean;
    b->rows = sl->rows;
    b->m = mk_plan_batch_size(r->plan, b->g);
    b->amax = sl->how.amax;
    b->constant = sl->how.constant;
    return MK_OK;
}

void mk_reader_stop(mk_reader *r, double *times)
{
    if (!r) return;
    pthread_mutex_lock(&r->mu);
    r->stop = 1;
    pthread_cond_broadcast(&r->cv);
    pthread_mutex_unlock(&r->mu);
    if (r->started) pthread_join(r->thread, NULL);
    for (int i = 0; i < MK_READER_TIMES; i++) times[i] += r->times[i];
    pthread_mutex_destroy(&r->mu);
    pthread_mutex_destroy(&r->hdf5);
    pthread_cond_destroy(&r->cv);
    free_reader(r);
}

void mk_reader_hold_hdf5(mk_reader *r)
{
    if (r) pthread_mutex_lock(&r->hdf5);
}

void mk_reader_release_hdf5(mk_reader *r)
{
    if (r) pthread_mutex_unlock(&r->hdf5);
}
