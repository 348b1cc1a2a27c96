#include "mpicka/session.h"

#include "session_impl.h"

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mpicka/blas.h"
#include "mpicka/job.h"
#include "mpicka/log.h"
#include "mpicka/model.h"
#include "mpicka/output.h"
#include "mpicka/source.h"

static const char *const dtype_names[] = {NULL, "float16", "float32", "float64"};

/* The stage a call needs: MK_EUSAGE naming the call otherwise. */
static mk_err need(const mk_session *s, mk__stage stage, const char *call)
{
    static const char *const where[] = {"before mk_session_start", "after mk_session_start and before "
                                        "mk_session_finish", "after mk_session_finish"};
    if (!s) return mk_fail(MK_EUSAGE, "%s: the session is NULL", call);
    if (s->stage != stage) return mk_fail(MK_EUSAGE, "%s is called %s only", call, where[stage]);
    return MK_OK;
}

/* ---- open and declare ---- */

static int blank(const char *text)
{
    return !text || text[strspn(text, " \t\r\n")] == '\0';
}

mk_err mk_session_open(const char *config_text, const char *const *sets, mk_session **out)
{
    if (!out) return mk_fail(MK_EUSAGE, "mk_session_open: the session pointer is NULL");
    *out = NULL;
    int nsets = 0;
    while (sets && sets[nsets]) nsets++;
    mk_err err = MK_OK;
    mk_session *s = mk_calloc(1, sizeof *s, "a session", &err);
    if (err) return err;
    const char *text = blank(config_text) ? "{}" : config_text; /* every default */
    err = mk_config_parse_session(text, strlen(text), "session config", (char *const *)sets, nsets, &s->cfg);
    if (err) {
        free(s);
        return err;
    }
    s->last_fed = -1;
    s->t0 = mk_now();
    *out = s;
    return MK_OK;
}

mk_err mk_session_add_model(mk_session *s, const char *name, int *model)
{
    MK_TRY(need(s, ST_DECLARING, "mk_session_add_model"));
    if (!name || !*name) return mk_fail(MK_EUSAGE, "mk_session_add_model: a model needs a name");
    if (!model) return mk_fail(MK_EUSAGE, "mk_session_add_model: model '%s': the index pointer is NULL", name);
    for (int k = 0; k < s->lu.nmodels; k++)
        if (!strcmp(s->lu.models[k].name, name))
            return mk_fail(MK_EUSAGE, "mk_session_add_model: model '%s' is declared twice; names must be unique", name);
    int n = s->lu.nmodels;
    mk_model *models = realloc(s->lu.models, (size_t)(n + 1) * sizeof *models);
    if (models) s->lu.models = models;
    int **dtypes = models ? realloc(s->dtypes, (size_t)(n + 1) * sizeof *dtypes) : NULL;
    if (dtypes) s->dtypes = dtypes;
    if (!models || !dtypes) return mk_fail(MK_ENOMEM, "out of memory declaring model '%s'", name);
    memset(&models[n], 0, sizeof *models);
    dtypes[n] = NULL;
    models[n].name = strdup(name);
    models[n].file = strdup(name); /* what messages and cka.h5's x_file/model_files name */
    models[n].order = MK_ORDER_NATURAL;
    s->lu.nmodels++;
    if (!models[n].name || !models[n].file) return mk_fail(MK_ENOMEM, "out of memory declaring model '%s'", name);
    *model = n;
    return MK_OK;
}

/* p = the product of dims, each >= 1, at most MK_MAX_FEATURES. */
static mk_err layer_width(const mk_model *mod, const char *name, int ndims, const int64_t *dims, int64_t *p)
{
    if (ndims < 0 || ndims > 32 || (ndims > 0 && !dims))
        return mk_fail(MK_EUSAGE, "model '%s', layer '%s': %d dimensions%s; give 0 to 32, and dims for them",
                       mod->name, name, ndims, ndims > 0 && !dims ? " but dims is NULL" : "");
    *p = 1;
    for (int d = 0; d < ndims; d++) {
        if (dims[d] < 1)
            return mk_fail(MK_EUSAGE, "model '%s', layer '%s': dimension %d is %lld; every feature dimension must "
                           "be at least 1", mod->name, name, d, (long long)dims[d]);
        if (dims[d] > MK_MAX_FEATURES / *p)
            return mk_fail(MK_EINPUT, "model '%s', layer '%s' has more than %lld features, more than BLAS takes; "
                           "pool or select its features", mod->name, name, (long long)MK_MAX_FEATURES);
        *p *= dims[d];
    }
    return MK_OK;
}

/* "(n, 64, 4, 4)" as inspection writes it, once n is known. */
static void layer_shape(mk_layer *lay, int64_t n, int ndims, const int64_t *dims)
{
    int off = snprintf(lay->shape, sizeof lay->shape, "(%lld", (long long)n);
    for (int d = 0; d < ndims && off < (int)sizeof lay->shape; d++)
        off += snprintf(lay->shape + off, sizeof lay->shape - (size_t)off, ", %lld", (long long)dims[d]);
    if (off < (int)sizeof lay->shape) snprintf(lay->shape + off, sizeof lay->shape - (size_t)off, ")");
}

mk_err mk_session_add_layer(mk_session *s, int model, const char *name, int ndims, const int64_t *dims, int dtype)
{
    MK_TRY(need(s, ST_DECLARING, "mk_session_add_layer"));
    if (model < 0 || model >= s->lu.nmodels)
        return mk_fail(MK_EUSAGE, "mk_session_add_layer: model %d is not declared (%d models so far)", model,
                       s->lu.nmodels);
    mk_model *mod = &s->lu.models[model];
    if (!name || !*name) return mk_fail(MK_EUSAGE, "model '%s': a layer needs a name", mod->name);
    for (int l = 0; l < mod->nlayers; l++)
        if (!strcmp(mod->layers[l].path, name))
            return mk_fail(MK_EUSAGE, "model '%s', layer '%s' is declared twice", mod->name, name);
    if (dtype < MK_DTYPE_F16 || dtype > MK_DTYPE_F64)
        return mk_fail(MK_EUSAGE, "model '%s', layer '%s': dtype %d is none of MK_DTYPE_F16 (1), MK_DTYPE_F32 (2), "
                       "MK_DTYPE_F64 (3)", mod->name, name, dtype);
    int64_t p = 0;
    MK_TRY(layer_width(mod, name, ndims, dims, &p));
    mk_layer *layers = realloc(mod->layers, (size_t)(mod->nlayers + 1) * sizeof *layers);
    if (layers) mod->layers = layers;
    int *types = layers ? realloc(s->dtypes[model], (size_t)(mod->nlayers + 1) * sizeof *types) : NULL;
    if (types) s->dtypes[model] = types;
    if (!layers || !types) return mk_fail(MK_ENOMEM, "out of memory declaring model '%s', layer '%s'", mod->name, name);
    mk_layer *lay = &layers[mod->nlayers];
    *lay = (mk_layer){.path = strdup(name), .p = p, .in_f32 = dtype != MK_DTYPE_F64};
    if (!lay->path) return mk_fail(MK_ENOMEM, "out of memory declaring model '%s', layer '%s'", mod->name, name);
    snprintf(lay->dtype, sizeof lay->dtype, "%s", dtype_names[dtype]);
    layer_shape(lay, 0, ndims, dims);
    /* the dims kept in the shape's text, "(0, d1, ...)", until n is known */
    types[mod->nlayers++] = dtype;
    return MK_OK;
}

/* ---- start ---- */

/* n into every layer and its shape text ("(0, ...)" becomes "(n, ...)"). */
static void set_examples(mk_session *s, int64_t n)
{
    for (int k = 0; k < s->lu.nmodels; k++)
        for (int l = 0; l < s->lu.models[k].nlayers; l++) {
            mk_layer *lay = &s->lu.models[k].layers[l];
            char rest[64];
            snprintf(rest, sizeof rest, "%s", strpbrk(lay->shape, ",)")); /* after "(n" of a declaration or a failed start */
            lay->n = n;
            snprintf(lay->shape, sizeof lay->shape, "(%lld%.40s", (long long)n, rest);
        }
}

static mk_err check_declared(const mk_session *s, int64_t n, int rank, int nranks)
{
    if (s->lu.nmodels == 0) return mk_fail(MK_EUSAGE, "mk_session_start: no model is declared");
    for (int k = 0; k < s->lu.nmodels; k++)
        if (s->lu.models[k].nlayers == 0)
            return mk_fail(MK_EUSAGE, "mk_session_start: model '%s' has no layer", s->lu.models[k].name);
    if (nranks < 1 || rank < 0 || rank >= nranks)
        return mk_fail(MK_EUSAGE, "mk_session_start: rank %d of %d processes; need 0 <= rank < nranks", rank, nranks);
    if (n < 1) return mk_fail(MK_EUSAGE, "mk_session_start: n is %lld examples; need at least %d", (long long)n,
                              MK_MIN_BATCH);
    return MK_OK;
}

/* The buffers a feed converts and centres into: one layer at a time. */
static mk_err alloc_feed(mk_session *s)
{
    int64_t m = s->plan.m < s->plan.n ? s->plan.m : s->plan.n, p = mk_lineup_widest(&s->lu, NULL)->p;
    int halves = 0;
    for (int k = 0; k < s->lu.nmodels; k++)
        for (int l = 0; l < s->lu.models[k].nlayers; l++) halves |= s->dtypes[k][l] == MK_DTYPE_F16;
    mk_err err = MK_OK;
    s->rows = mk_malloc((size_t)m * sizeof *s->rows, "a batch's rows", &err);
    if (!err && halves) s->widened = mk_malloc((size_t)(m * p) * sizeof(float), "a widened float16 block", &err);
    if (!err) s->data = mk_malloc((size_t)(m * p) * sizeof(double), "a centred block", &err);
    if (!err) s->mean = mk_malloc((size_t)(3 * p) * sizeof(double), "column means", &err);
    if (!err) s->scale = mk_calloc((size_t)s->lu.nlayers, sizeof *s->scale, "layer scales", &err); /* 0: no probe yet */
    if (!err) s->mu0 = mk_calloc((size_t)mk_lineup_features(&s->lu), sizeof *s->mu0, "the exact sums' shift", &err);
    if (!err) s->have = mk_calloc((size_t)s->plan.total, 1, "the batches in", &err);
    return err;
}

static void start_progress(mk_session *s, int nranks)
{
    int64_t lo, hi;
    mk_plan_rank_range(s->plan.total, 0, nranks, &lo, &hi);
    mk_progress_mode mode = s->rank == 0 ? mk_progress_auto(stderr) : MK_PROGRESS_NONE;
    mk_progress_start(&s->progress, stderr, mode, (double)s->cfg.progress_seconds, hi - lo, s->plan.m, 0);
    s->progress_on = 1;
}

/* As `run`: a result of another configuration in the output folder is not
 * replaced unless forced. */
static mk_err old_results(const mk_session *s)
{
    if (!s->cfg.output || s->force) return MK_OK;
    return mk_output_refuse_other(s->cfg.output, s->cfg.resolved, "force the session (mk_session_set_force)");
}

mk_err mk_session_set_force(mk_session *s, int force)
{
    if (!s) return mk_fail(MK_EUSAGE, "mk_session_set_force: the session is NULL");
    s->force = force != 0;
    return MK_OK;
}

mk_err mk_session_start(mk_session *s, int64_t n, int rank, int nranks)
{
    MK_TRY(need(s, ST_DECLARING, "mk_session_start"));
    MK_TRY(check_declared(s, n, rank, nranks));
    MK_TRY(old_results(s)); /* before any work (and any allocation: a refused start may be tried again) */
    set_examples(s, n);
    s->lu.cross = s->lu.nmodels == 2;
    s->lu.listed = s->lu.nmodels >= 3;
    free(s->lu.offset); /* a start refused before (n too small) may be tried again */
    MK_TRY(mk_lineup_layout(&s->lu));
    MK_TRY(mk_job_plan(&s->cfg, &s->lu, &s->plan));
    s->groups = mk_job_jackknife_groups(&s->cfg, &s->plan);
    MK_TRY(mk_job_preflight(&s->cfg, &s->lu, &s->plan));
    mk_blas_set_threads(1); /* some OpenBLAS calls change their bits with its threads: the run's own threads share */
    s->threads = mk_par_threads_wanted(s->cfg.threads);
    s->rank = rank;
    s->nranks = nranks;
    mk_log_init(rank); /* messages and the summary from rank 0 only, as in a run */
    MK_TRY(alloc_feed(s));
    MK_TRY(mk_batch_init(&s->core, &s->cfg, &s->lu, &s->plan, s->groups, s->scale, s->mu0, s->threads));
    MK_TRY(mk__fingerprint(s));
    start_progress(s, nranks);
    s->stage = ST_STARTED;
    return MK_OK;
}

int64_t mk_session_batches(const mk_session *s)
{
    return s && (s->stage == ST_STARTED || s->stage == ST_FINISHED) ? s->plan.total : -1;
}

int64_t mk_session_batch_rows(const mk_session *s, int64_t g)
{
    if (mk_session_batches(s) < 0 || g < 0 || g >= s->plan.total) return -1;
    return mk_plan_batch_size(&s->plan, g);
}

mk_err mk_session_batch_range(const mk_session *s, int rank, int nranks, int64_t *lo, int64_t *hi)
{
    if (mk_session_batches(s) < 0) return mk_fail(MK_EUSAGE, "mk_session_batch_range is called after mk_session_start only");
    if (nranks < 1 || rank < 0 || rank >= nranks || !lo || !hi)
        return mk_fail(MK_EUSAGE, "mk_session_batch_range: rank %d of %d processes; need 0 <= rank < nranks", rank,
                       nranks);
    mk_plan_rank_range(s->plan.total, rank, nranks, lo, hi);
    return MK_OK;
}

/* ---- feed ---- */

/* One flat layer of the batch being fed, as the reader hands a block over. */
typedef struct {
    mk_session *s;
    int64_t g, m;
    const void *const *layers;
    int flat;
} feeder;

static const mk_layer *flat_layer(const mk_session *s, int f, int *model, int *layer)
{
    const mk_layer *lay = mk_lineup_layer(&s->lu, f, model);
    *layer = f - s->lu.offset[*model];
    return lay;
}

/* Caller memory as the working type of the layer: float16 widened to float
 * (as the reader widens a file's), float and double as they are. */
static const void *as_read(const mk_session *s, int f, const void *in, int64_t count)
{
    int k, l;
    flat_layer(s, f, &k, &l);
    if (s->dtypes[k][l] != MK_DTYPE_F16) return in;
    mk_widen_halves(in, s->widened, count);
    return s->widened;
}

/* The first value that is not finite: its row. */
static int64_t first_bad_row(const void *buf, int in_f32, int64_t m, int64_t p)
{
    for (int64_t i = 0; i < m * p; i++)
        if (!isfinite(in_f32 ? ((const float *)buf)[i] : ((const double *)buf)[i])) return i / p;
    return 0;
}

static mk_err not_finite(const mk_session *s, int f, int64_t g, int64_t row)
{
    int k, l;
    const mk_layer *lay = flat_layer(s, f, &k, &l);
    return mk_fail(MK_EDATA, "model '%s', layer '%s', batch %lld: NaN or Inf at example %lld (row %lld of the batch)",
                   s->lu.models[k].name, lay->path, (long long)g, (long long)(s->rows[0] + row), (long long)row);
}

static mk_err next_block(void *arg, mk_block *blk)
{
    feeder *fd = arg;
    mk_session *s = fd->s;
    int f = fd->flat++, k, l;
    const mk_layer *lay = flat_layer(s, f, &k, &l);
    const void *raw = as_read(s, f, fd->layers[f], fd->m * lay->p);
    mk_centring how = {.scale = s->scale[f]};
    int64_t bad = mk_centre(raw, lay->in_f32, fd->m, lay->p, s->cfg.precision, s->mean, s->data, &how);
    if (bad >= 0) return not_finite(s, f, fd->g, bad);
    *blk = (mk_block){.data = s->data, .mean = s->mean, .rows = s->rows, .g = fd->g, .m = fd->m, .model = k,
                      .layer = l, .amax = how.amax, .constant = how.constant};
    return MK_OK;
}

/* Batch 0, before its step: each layer's scale and the exact sums' shift,
 * as the file run's probe takes them from its first batch. */
static mk_err probe(mk_session *s, const void *const *layers, int64_t m)
{
    int64_t col = 0, p = mk_lineup_widest(&s->lu, NULL)->p;
    mk_err err = MK_OK;
    double *work = mk_malloc((size_t)(m * p) * sizeof *work, "a probe block", &err);
    for (int f = 0; f < s->lu.nlayers && !err; f++) {
        int k, l;
        const mk_layer *lay = flat_layer(s, f, &k, &l);
        const void *raw = as_read(s, f, layers[f], m * lay->p);
        err = mk_batch_layer_scale(&s->lu.models[k], lay, raw, s->rows, m, s->cfg.precision, work, s->mean,
                                   &s->scale[f]);
        if (err == MK_EDATA) err = not_finite(s, f, 0, first_bad_row(raw, lay->in_f32, m, lay->p));
        if (!err) memcpy(s->mu0 + col, s->mean, (size_t)lay->p * sizeof *s->mu0);
        col += lay->p;
    }
    free(work);
    if (err) return err;
    if (s->cfg.estimator == MK_EST_EXACT) memcpy(s->core.exact.mu0, s->mu0, (size_t)col * sizeof *s->mu0);
    s->probed = 1;
    return MK_OK;
}

static mk_err check_feed(const mk_session *s, int64_t g, const void *const *layers, int64_t rows)
{
    MK_TRY(need(s, ST_STARTED, "mk_session_feed"));
    int64_t B = s->plan.total;
    if (g < 0 || g >= B)
        return mk_fail(MK_EUSAGE, "mk_session_feed: batch %lld is outside the plan: %lld batches of %lld examples "
                       "(0 to %lld)", (long long)g, (long long)B, (long long)s->plan.m, (long long)(B - 1));
    if (s->have[g]) return mk_fail(MK_EUSAGE, "mk_session_feed: batch %lld is in this session already", (long long)g);
    if (g <= s->last_fed)
        return mk_fail(MK_EUSAGE, "mk_session_feed: batch %lld after batch %lld; a session is fed batches in "
                       "ascending order", (long long)g, (long long)s->last_fed);
    int64_t want = mk_plan_batch_size(&s->plan, g), first = g * s->plan.m;
    if (rows != want)
        return mk_fail(MK_EUSAGE, "mk_session_feed: batch %lld holds %lld examples (%lld..%lld of n = %lld), got %lld "
                       "rows", (long long)g, (long long)want, (long long)first, (long long)(first + want - 1),
                       (long long)s->plan.n, (long long)rows);
    if (!s->probed && g != 0)
        return mk_fail(MK_EUSAGE, "mk_session_feed: batch %lld before the probe: the layers' scales come from batch 0; "
                       "feed batch 0 first in this session, or give it the probe of the session that fed it "
                       "(mk_session_probe, mk_session_set_probe)", (long long)g);
    for (int f = 0; f < s->lu.nlayers; f++)
        if (!layers || !layers[f]) {
            int k, l;
            const mk_layer *lay = flat_layer(s, f, &k, &l);
            return mk_fail(MK_EUSAGE, "mk_session_feed: batch %lld: model '%s', layer '%s' has no data (NULL)",
                           (long long)g, s->lu.models[k].name, lay->path);
        }
    return MK_OK;
}

/* A gap in the batches fed here: the partial sums so far join the merged
 * ones and the accumulator starts afresh, so that a session fed every R-th
 * batch holds its sums in a list rather than in the accumulator's bounded
 * stack. The tree is the same: finish pushes every node in order. */
static mk_err after_gap(mk_session *s, int64_t g)
{
    if (s->last_fed < 0 || g == s->last_fed + 1) return MK_OK;
    mk_nodes nd;
    mk_accum *fresh;
    MK_TRY(mk_accum_create(mk_batch_leaf_len(&s->core), &fresh));
    mk_nodes *list = realloc(s->merged, (size_t)(s->nmerged + 1) * sizeof *list);
    if (list) s->merged = list;
    mk_err err = list ? mk_accum_nodes(s->core.acc, &nd) : mk_fail(MK_ENOMEM, "out of memory keeping partial sums");
    if (err) {
        mk_accum_free(fresh);
        return err;
    }
    s->merged[s->nmerged++] = nd;
    mk_accum_free(s->core.acc);
    s->core.acc = fresh;
    return MK_OK;
}

mk_err mk_session_feed(mk_session *s, int64_t g, const void *const *layers, int64_t rows)
{
    MK_TRY(check_feed(s, g, layers, rows));
    MK_TRY(after_gap(s, g));
    mk_plan_batch_rows(&s->plan, g, s->rows);
    if (!s->probed) MK_TRY(probe(s, layers, rows));
    feeder fd = {s, g, rows, layers, 0};
    mk_err err = mk_batch_step(&s->core, next_block, &fd);
    mk_kernel_wait(&s->core.ws); /* a refused batch leaves no work behind: the session is as it was */
    if (err) return err;
    s->last_fed = g;
    s->have[g] = 1;
    s->fed++;
    mk_progress_update(&s->progress, s->fed);
    return MK_OK;
}

/* ---- probe, export, merge (the bytes: state.c) ---- */

mk_err mk_session_probe(mk_session *s, void **buf, int64_t *len)
{
    MK_TRY(need(s, ST_STARTED, "mk_session_probe"));
    if (!buf || !len) return mk_fail(MK_EUSAGE, "mk_session_probe: NULL buffer or length pointer");
    if (!s->probed)
        return mk_fail(MK_EUSAGE, "mk_session_probe: this session has no probe yet; it comes from batch 0, fed first "
                       "by one process");
    return mk__probe_bytes(s, buf, len);
}

mk_err mk_session_set_probe(mk_session *s, const void *buf, int64_t len)
{
    MK_TRY(need(s, ST_STARTED, "mk_session_set_probe"));
    if (s->probed) return mk_fail(MK_EUSAGE, "mk_session_set_probe: this session has its probe already");
    return mk__take_probe(s, buf, len);
}

mk_err mk_session_export(mk_session *s, void **buf, int64_t *len)
{
    MK_TRY(need(s, ST_STARTED, "mk_session_export"));
    if (!buf || !len) return mk_fail(MK_EUSAGE, "mk_session_export: NULL buffer or length pointer");
    return mk__state_bytes(s, buf, len);
}

mk_err mk_session_merge(mk_session *s, const void *buf, int64_t len)
{
    MK_TRY(need(s, ST_STARTED, "mk_session_merge"));
    return mk__take_state(s, buf, len);
}

void mk_session_free_bytes(void *buf) { free(buf); }

/* ---- finish ---- */

static mk_err check_complete(const mk_session *s)
{
    for (int64_t g = 0; g < s->plan.total; g++) {
        if (s->have[g]) continue;
        int64_t first = g * s->plan.m, m = mk_plan_batch_size(&s->plan, g);
        return mk_fail(MK_EUSAGE, "mk_session_finish: batch %lld (examples %lld..%lld) of %lld was neither fed to this "
                       "session nor merged into it", (long long)g, (long long)first, (long long)(first + m - 1),
                       (long long)s->plan.total);
    }
    return MK_OK;
}

/* A models result's /cka_matched: for each of the K layer names every model
 * has, the model-by-model CKA at that layer (K by N by N), as cka.h5 has it. */
static mk_err matched(mk_session *s)
{
    int K = 0, *index = NULL, N = s->lu.nmodels;
    if (!s->lu.listed) return MK_OK;
    MK_TRY(mk_lineup_matched(&s->lu, &K, &index));
    mk_err err = MK_OK;
    s->matched = K ? mk_malloc((size_t)K * N * N * sizeof *s->matched, "cka_matched", &err) : NULL;
    if (s->matched) mk_lineup_matched_cube(&s->lu, s->mx.cka, K, index, s->matched);
    s->matched_k = K;
    free(index);
    return err;
}

/* The result into the output folder as `run` writes it: locked, atomic. */
static mk_err write_output(mk_session *s)
{
    if (!s->cfg.output) return MK_OK;
    mk_outdir od = {.lock = -1};
    mk_err err = mk_output_prepare(s->cfg.output, s->cfg.plot.enabled ? s->cfg.plot.file : NULL, &od);
    if (!err) err = old_results(s); /* again, under the lock: another may have written since start */
    mk_run_facts facts = {s->nranks, s->threads, mk_now() - s->t0, 0.0, 1};
    facts.seconds_total = facts.seconds;
    if (!err) err = mk_finish_write(&s->core, &s->mx, &facts);
    mk_output_release(&od, s->cfg.output, err != MK_OK);
    return err;
}

static mk_err reduce(mk_session *s, double **total)
{
    mk_accum *acc = NULL;
    mk_err err = MK_OK;
    *total = mk_malloc((size_t)mk_batch_leaf_len(&s->core) * sizeof **total, "the summed sums", &err);
    if (!err) err = mk__all_nodes(s, &acc);
    if (!err) mk_accum_total(acc, *total);
    mk_accum_free(acc);
    return err;
}

mk_err mk_session_finish(mk_session *s)
{
    MK_TRY(need(s, ST_STARTED, "mk_session_finish"));
    MK_TRY(check_complete(s));
    double *total = NULL;
    mk_err err = reduce(s, &total);
    if (!err) err = mk_finish_matrices(&s->core, total, &s->mx);
    if (!err) err = mk_finish_measures(&s->core, total, &s->mx.measures);
    if (!err) err = mk_finish_gram(&s->core, total, &s->mx);
    if (!err) err = matched(s);
    free(total);
    if (!err && s->progress_on) mk_progress_finish(&s->progress), s->progress_on = 0;
    if (!err) err = write_output(s);
    if (err) {
        mk_matrices_free(&s->mx);
        free(s->matched);
        s->matched = NULL;
        return err;
    }
    s->stage = ST_FINISHED;
    return MK_OK;
}

/* ---- matrices ---- */

/* A measure's output by its dataset name under measures/: its index. */
static int measure_index(const mk_config *cfg, const char *name)
{
    for (int m = 0, o = 0; m < cfg->nmeasures; m++) {
        const char *names[2];
        int nout = mk_measure_outputs(cfg->measures[m].kind, names);
        for (int q = 0; q < nout; q++, o++)
            if (!strcmp(names[q], name)) return o;
    }
    return -1;
}

mk_err mk_session_matrix(const mk_session *s, const char *name, const double **data, int64_t *rows, int64_t *cols)
{
    MK_TRY(need(s, ST_FINISHED, "mk_session_matrix"));
    if (!name || !data || !rows || !cols) return mk_fail(MK_EUSAGE, "mk_session_matrix: a NULL argument");
    int64_t nx = mk_lineup_rows(&s->lu), ny = mk_lineup_cols(&s->lu), N = s->lu.nmodels;
    const double *hxy = s->mx.hsic, *hxx = hxy + nx * ny, *hyy = hxx + nx, *m = NULL;
    int64_t r = nx, c = ny;
    int o = !strncmp(name, "measures/", 9) && s->mx.measures ? measure_index(&s->cfg, name + 9) : -1;
    if (!strcmp(name, "cka")) m = s->mx.cka;
    else if (!strcmp(name, "cka_stderr")) m = s->mx.stderr_;
    else if (!strcmp(name, "cka_pvalue")) m = s->mx.pvalue;
    else if (!strcmp(name, "hsic_xy")) m = hxy;
    else if (!strcmp(name, "hsic_xx")) m = hxx, c = 1;
    else if (!strcmp(name, "hsic_yy")) m = hyy, r = ny, c = 1;
    else if (!strcmp(name, "cka_matched")) m = s->matched, r = s->matched_k, c = N * N;
    else if (o >= 0) m = s->mx.measures + (size_t)o * nx * ny;
    if (!m)
        return mk_fail(MK_EUSAGE, "mk_session_matrix: this result has no matrix '%s' (cka, hsic_xy, hsic_xx, hsic_yy; "
                       "cka_stderr with jackknife, cka_pvalue with permutations, cka_matched with 3 models or more, "
                       "measures/NAME with measures)", name);
    *data = m, *rows = r, *cols = c;
    return MK_OK;
}

/* ---- close ---- */

void mk_session_close(mk_session *s)
{
    if (!s) return;
    if (s->progress_on) mk_progress_finish(&s->progress);
    mk_batch_free(&s->core);
    for (int k = 0; s->dtypes && k < s->lu.nmodels; k++) free(s->dtypes[k]);
    free(s->dtypes);
    mk_lineup_free(&s->lu);
    mk_config_free(&s->cfg);
    for (int i = 0; i < s->nmerged; i++) mk_nodes_free(&s->merged[i]);
    free(s->merged);
    free(s->scale), free(s->mu0), free(s->have), free(s->fingerprint);
    free(s->rows), free(s->widened), free(s->data), free(s->mean);
    mk_matrices_free(&s->mx);
    free(s->matched);
    free(s);
}
