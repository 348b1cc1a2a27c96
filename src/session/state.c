/* A session's probe and partial sums as bytes, and back. The bytes come from
 * another process, or a file, or a network: read back as untrusted input,
 * every length and count checked before it is used, a checksum over all.
 *
 * Layout (native byte order and doubles: the processes of one job):
 *     "MKSESS1\n"  u64 kind (1 probe, 2 state)  u64 text length  text
 *     probe: u64 L, L scales, u64 P, P shifts
 *     state: u64 probed (0/1) [L scales, P shifts]  u64 count  u64 len
 *            count x (i64 level, i64 start)  count x len sums
 *     u64 checksum (FNV-1a of every byte before it)
 * text is the session's fingerprint: the config keys that shape the sums,
 * n and every model and layer. */
#include "session_impl.h"

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mpicka/job.h"

#define MAGIC "MKSESS1\n"
enum { KIND_PROBE = 1, KIND_STATE = 2 };

/* ---- the fingerprint ---- */

mk_err mk__fingerprint(mk_session *s)
{
    size_t size;
    FILE *f = open_memstream(&s->fingerprint, &size);
    if (!f) return mk_fail(MK_ENOMEM, "cannot make the session's fingerprint");
    const mk_config *k = &s->cfg;
    fprintf(f, "estimator %d, kernel %d, rbf_threshold %.17g, debiased %d, precision %d\n", (int)k->estimator,
            (int)k->kernel, k->rbf_threshold, k->debiased, (int)k->precision);
    fprintf(f, "n %lld, batch_size %lld, seed %llu, jackknife groups %lld, permutations %lld, sums %lld\n",
            (long long)s->plan.n, (long long)k->batch_size, (unsigned long long)k->seed, (long long)s->groups,
            (long long)k->permutations, (long long)mk_batch_leaf_len(&s->core));
    for (int m = 0; m < s->lu.nmodels; m++) {
        fprintf(f, "model '%s'\n", s->lu.models[m].name);
        for (int l = 0; l < s->lu.models[m].nlayers; l++) {
            const mk_layer *lay = &s->lu.models[m].layers[l];
            fprintf(f, "  layer '%s' %s %s\n", lay->path, lay->shape, lay->dtype);
        }
    }
    return fclose(f) == 0 ? MK_OK : mk_fail(MK_ENOMEM, "cannot make the session's fingerprint");
}

/* ---- writing ---- */

typedef struct {
    char *buf;
    size_t len, cap;
    int failed;
} writer;

static void put(writer *w, const void *data, size_t n)
{
    if (w->failed) return;
    if (w->len + n > w->cap) {
        size_t cap = w->cap ? w->cap : 256;
        while (cap < w->len + n) cap *= 2;
        char *grown = realloc(w->buf, cap);
        if (!grown) {
            w->failed = 1;
            return;
        }
        w->buf = grown, w->cap = cap;
    }
    memcpy(w->buf + w->len, data, n);
    w->len += n;
}

static void put_u64(writer *w, uint64_t v) { put(w, &v, sizeof v); }

static uint64_t fnv1a(const char *p, size_t n)
{
    uint64_t h = 1469598103934665603ULL;
    for (size_t i = 0; i < n; i++) h = (h ^ (unsigned char)p[i]) * 1099511628211ULL;
    return h;
}

static void put_head(writer *w, const mk_session *s, uint64_t kind)
{
    put(w, MAGIC, 8);
    put_u64(w, kind);
    put_u64(w, strlen(s->fingerprint));
    put(w, s->fingerprint, strlen(s->fingerprint));
}

static void put_probe(writer *w, const mk_session *s)
{
    int64_t P = mk_lineup_features(&s->lu);
    put_u64(w, (uint64_t)s->lu.nlayers);
    put(w, s->scale, (size_t)s->lu.nlayers * sizeof(double));
    put_u64(w, (uint64_t)P);
    put(w, s->mu0, (size_t)P * sizeof(double));
}

static mk_err finish_bytes(writer *w, void **buf, int64_t *len)
{
    put_u64(w, fnv1a(w->buf, w->len));
    if (w->failed) {
        free(w->buf);
        return mk_fail(MK_ENOMEM, "out of memory writing a session's bytes (%zu bytes so far)", w->len);
    }
    *buf = w->buf;
    *len = (int64_t)w->len;
    return MK_OK;
}

mk_err mk__probe_bytes(const mk_session *s, void **buf, int64_t *len)
{
    writer w = {0};
    put_head(&w, s, KIND_PROBE);
    put_probe(&w, s);
    return finish_bytes(&w, buf, len);
}

/* Every node of the session: its own accumulator's, then each merge's. */
static mk_err collect(const mk_session *s, mk_nodes *own, int64_t *count)
{
    MK_TRY(mk_accum_nodes(s->core.acc, own));
    *count = own->count;
    for (int i = 0; i < s->nmerged; i++) *count += s->merged[i].count;
    return MK_OK;
}

typedef struct {
    int64_t level, start;
    const double *sum;
} node_ref;

static int by_start(const void *a, const void *b)
{
    int64_t x = ((const node_ref *)a)->start, y = ((const node_ref *)b)->start;
    return (x > y) - (x < y);
}

/* The nodes in the tree's order (ascending start; they never overlap). */
static mk_err sorted_nodes(const mk_session *s, mk_nodes *own, node_ref **out, int64_t *count)
{
    MK_TRY(collect(s, own, count));
    mk_err err = MK_OK;
    node_ref *refs = mk_malloc((size_t)(*count + 1) * sizeof *refs, "the partial sums' list", &err);
    if (err) return err;
    int64_t n = 0, len = own->len;
    for (int64_t i = 0; i < own->count; i++) refs[n++] = (node_ref){own->level[i], own->start[i], own->sums + i * len};
    for (int k = 0; k < s->nmerged; k++)
        for (int64_t i = 0; i < s->merged[k].count; i++)
            refs[n++] = (node_ref){s->merged[k].level[i], s->merged[k].start[i], s->merged[k].sums + i * len};
    qsort(refs, (size_t)n, sizeof *refs, by_start);
    *out = refs;
    return MK_OK;
}

mk_err mk__state_bytes(const mk_session *s, void **buf, int64_t *len)
{
    mk_nodes own = {0};
    node_ref *refs = NULL;
    int64_t count = 0, L = mk_batch_leaf_len(&s->core);
    mk_err err = sorted_nodes(s, &own, &refs, &count);
    if (err) return err;
    writer w = {0};
    put_head(&w, s, KIND_STATE);
    put_u64(&w, (uint64_t)s->probed);
    if (s->probed) put_probe(&w, s);
    put_u64(&w, (uint64_t)count);
    put_u64(&w, (uint64_t)L);
    for (int64_t i = 0; i < count; i++) put_u64(&w, (uint64_t)refs[i].level), put_u64(&w, (uint64_t)refs[i].start);
    for (int64_t i = 0; i < count; i++) put(&w, refs[i].sum, (size_t)L * sizeof(double));
    free(refs);
    mk_nodes_free(&own);
    return finish_bytes(&w, buf, len);
}

mk_err mk__all_nodes(const mk_session *s, mk_accum **out)
{
    mk_nodes own = {0};
    node_ref *refs = NULL;
    int64_t count = 0;
    *out = NULL;
    mk_err err = sorted_nodes(s, &own, &refs, &count);
    if (!err) err = mk_accum_create(mk_batch_leaf_len(&s->core), out);
    for (int64_t i = 0; i < count && !err; i++) err = mk_accum_push(*out, refs[i].level, refs[i].start, refs[i].sum);
    free(refs);
    mk_nodes_free(&own);
    return err;
}

/* ---- reading, as untrusted input ---- */

typedef struct {
    const char *p;
    uint64_t left;
    const char *what; /* "probe" or "state", for messages */
} reader;

static mk_err short_bytes(const reader *r, const char *field)
{
    return mk_fail(MK_EINPUT, "session %s bytes: cut short at the %s (damaged or truncated?)", r->what, field);
}

static mk_err take(reader *r, void *out, uint64_t n, const char *field)
{
    if (n > r->left) return short_bytes(r, field);
    memcpy(out, r->p, (size_t)n);
    r->p += n, r->left -= n;
    return MK_OK;
}

static mk_err take_u64(reader *r, uint64_t *v, const char *field) { return take(r, v, sizeof *v, field); }

/* Magic, checksum, kind and the fingerprint: the bytes are a session's of
 * this kind, whole, and of this session's config and models. */
static mk_err check_head(const mk_session *s, const void *buf, int64_t len, uint64_t kind, reader *r)
{
    const char *what = r->what;
    if (!buf || len < 8 + 3 * 8)
        return mk_fail(MK_EINPUT, "session %s bytes: %lld bytes%s, too short to be a session's", what, (long long)len,
                       buf ? "" : " at NULL");
    if (memcmp(buf, MAGIC, 8))
        return mk_fail(MK_EINPUT, "session %s bytes: not made by mk_session_%s (wrong magic)", what,
                       kind == KIND_PROBE ? "probe" : "export");
    uint64_t sum;
    memcpy(&sum, (const char *)buf + len - 8, 8);
    if (sum != fnv1a(buf, (size_t)len - 8))
        return mk_fail(MK_EINPUT, "session %s bytes: the checksum does not match: the bytes were damaged or cut "
                       "(%lld bytes)", what, (long long)len);
    *r = (reader){(const char *)buf + 8, (uint64_t)len - 16, what};
    uint64_t k, n;
    MK_TRY(take_u64(r, &k, "kind"));
    if (k != kind)
        return mk_fail(MK_EINPUT, "session %s bytes: these are a session's %s", what, k == KIND_PROBE ? "probe" :
                       k == KIND_STATE ? "exported state" : "unknown bytes");
    MK_TRY(take_u64(r, &n, "fingerprint"));
    if (n > r->left) return short_bytes(r, "fingerprint");
    size_t mine = strlen(s->fingerprint);
    if (n != mine || memcmp(r->p, s->fingerprint, mine)) {
        char theirs[160];
        snprintf(theirs, sizeof theirs, "%.*s", (int)(n < 150 ? n : 150), r->p);
        return mk_fail(MK_EINPUT, "session %s bytes: of another session's config or models: this session has "
                       "'%.150s...', they have '%s...'; every session must open the same config, declare the same "
                       "models and layers and start with the same n", what, s->fingerprint, theirs);
    }
    r->p += n, r->left -= n;
    return MK_OK;
}

/* A scale is a positive finite power of two; a shift is finite. */
static mk_err take_probe(mk_session *s, reader *r, double *scale, double *mu0)
{
    uint64_t L = 0, P = 0;
    int64_t want_P = mk_lineup_features(&s->lu);
    MK_TRY(take_u64(r, &L, "layer count"));
    if (L != (uint64_t)s->lu.nlayers)
        return mk_fail(MK_EINPUT, "session %s bytes: %llu layer scales for %d layers", r->what, (unsigned long long)L,
                       s->lu.nlayers);
    MK_TRY(take(r, scale, L * sizeof(double), "layer scales"));
    MK_TRY(take_u64(r, &P, "feature count"));
    if (P != (uint64_t)want_P)
        return mk_fail(MK_EINPUT, "session %s bytes: %llu shifts for %lld features", r->what, (unsigned long long)P,
                       (long long)want_P);
    MK_TRY(take(r, mu0, P * sizeof(double), "shifts"));
    for (uint64_t l = 0; l < L; l++) {
        int e;
        if (!isfinite(scale[l]) || scale[l] <= 0.0 || frexp(scale[l], &e) != 0.5)
            return mk_fail(MK_EINPUT, "session %s bytes: layer %llu's scale is %g, not a power of two", r->what,
                           (unsigned long long)l, scale[l]);
    }
    for (uint64_t j = 0; j < P; j++)
        if (!isfinite(mu0[j]))
            return mk_fail(MK_EINPUT, "session %s bytes: shift %llu is %g, not finite", r->what, (unsigned long long)j,
                           mu0[j]);
    return MK_OK;
}

static mk_err at_end(const reader *r)
{
    if (r->left == 0) return MK_OK;
    return mk_fail(MK_EINPUT, "session %s bytes: %llu bytes more than their counts say", r->what,
                   (unsigned long long)r->left);
}

/* The probe into s (scales, shifts, and the exact estimator's copy). */
static void adopt_probe(mk_session *s, const double *scale, const double *mu0)
{
    int64_t P = mk_lineup_features(&s->lu);
    memcpy(s->scale, scale, (size_t)s->lu.nlayers * sizeof *scale);
    memcpy(s->mu0, mu0, (size_t)P * sizeof *mu0);
    if (s->cfg.estimator == MK_EST_EXACT) memcpy(s->core.exact.mu0, mu0, (size_t)P * sizeof *mu0);
    s->probed = 1;
}

static mk_err alloc_probe(const mk_session *s, double **scale, double **mu0)
{
    mk_err err = MK_OK;
    *scale = mk_malloc((size_t)s->lu.nlayers * sizeof **scale, "layer scales", &err);
    *mu0 = mk_malloc((size_t)(mk_lineup_features(&s->lu) + 1) * sizeof **mu0, "shifts", &err);
    return err;
}

mk_err mk__take_probe(mk_session *s, const void *buf, int64_t len)
{
    reader r = {.what = "probe"};
    double *scale = NULL, *mu0 = NULL;
    mk_err err = check_head(s, buf, len, KIND_PROBE, &r);
    if (!err) err = alloc_probe(s, &scale, &mu0);
    if (!err) err = take_probe(s, &r, scale, mu0);
    if (!err) err = at_end(&r);
    if (!err) adopt_probe(s, scale, mu0);
    free(scale), free(mu0);
    return err;
}

/* Merged probes must be this session's: the same bits, or this one has none. */
static mk_err same_probe(const mk_session *s, const double *scale, const double *mu0)
{
    int64_t P = mk_lineup_features(&s->lu);
    if (!memcmp(scale, s->scale, (size_t)s->lu.nlayers * sizeof *scale) && !memcmp(mu0, s->mu0, (size_t)P * sizeof *mu0))
        return MK_OK;
    return mk_fail(MK_EINPUT, "session state bytes: made with another probe (layer scales or shifts differ): every "
                   "session must take the probe of the one that fed batch 0");
}

/* The nodes: real tree nodes (aligned, whole, inside the plan), in order,
 * not overlapping each other nor what this session holds, finite. */
static mk_err check_nodes(const mk_session *s, const mk_nodes *nd)
{
    int64_t B = s->plan.total, end = 0;
    for (int64_t i = 0; i < nd->count; i++) {
        int64_t lv = nd->level[i], st = nd->start[i];
        if (lv < 0 || lv > 62 || st < 0 || st >= B || st % ((int64_t)1 << lv) || (lv > 0 && ((int64_t)1 << lv) > B - st))
            return mk_fail(MK_EINPUT, "session state bytes: partial sum %lld (level %lld, start %lld) is no node of "
                           "the tree of %lld batches", (long long)i, (long long)lv, (long long)st, (long long)B);
        if (st < end)
            return mk_fail(MK_EINPUT, "session state bytes: partial sums overlap or are out of order at batch %lld",
                           (long long)st);
        end = st + ((int64_t)1 << lv);
        for (int64_t g = st; g < end && g < B; g++)
            if (s->have[g])
                return mk_fail(MK_EUSAGE, "mk_session_merge: batch %lld is in this session already (fed here, or a "
                               "state merged twice)", (long long)g);
    }
    for (int64_t k = 0; k < nd->count * nd->len; k++)
        if (!isfinite(nd->sums[k]))
            return mk_fail(MK_EINPUT, "session state bytes: partial sum %lld holds %g, not a finite number",
                           (long long)(k / nd->len), nd->sums[k]);
    return MK_OK;
}

static mk_err take_nodes(const mk_session *s, reader *r, mk_nodes *nd)
{
    uint64_t count = 0, len = 0;
    int64_t L = mk_batch_leaf_len(&s->core);
    MK_TRY(take_u64(r, &count, "node count"));
    MK_TRY(take_u64(r, &len, "node length"));
    if (len != (uint64_t)L)
        return mk_fail(MK_EINPUT, "session state bytes: partial sums of %llu values where this session's have %lld",
                       (unsigned long long)len, (long long)L);
    if (count > (uint64_t)s->plan.total || count > r->left / 16 || count > r->left / 8 / (uint64_t)L)
        return mk_fail(MK_EINPUT, "session state bytes: %llu partial sums do not fit %llu bytes or %lld batches",
                       (unsigned long long)count, (unsigned long long)r->left, (long long)s->plan.total);
    mk_err err = MK_OK;
    nd->level = mk_malloc((size_t)(count + 1) * sizeof(int64_t), "partial sums", &err);
    nd->start = mk_malloc((size_t)(count + 1) * sizeof(int64_t), "partial sums", &err);
    nd->sums = mk_malloc((size_t)(count * len + 1) * sizeof(double), "partial sums", &err);
    if (err) return err;
    nd->count = (int64_t)count, nd->len = L;
    for (uint64_t i = 0; i < count; i++) {
        MK_TRY(take(r, &nd->level[i], 8, "node levels"));
        MK_TRY(take(r, &nd->start[i], 8, "node starts"));
    }
    MK_TRY(take(r, nd->sums, count * len * sizeof(double), "partial sums"));
    MK_TRY(at_end(r));
    return check_nodes(s, nd);
}

/* The node's batches are in. */
static void mark(mk_session *s, const mk_nodes *nd)
{
    for (int64_t i = 0; i < nd->count; i++)
        for (int64_t g = nd->start[i]; g < nd->start[i] + ((int64_t)1 << nd->level[i]) && g < s->plan.total; g++)
            s->have[g] = 1;
}

static mk_err take_state(mk_session *s, reader *r, double *scale, double *mu0, mk_nodes *nd, uint64_t *with_probe)
{
    uint64_t probed = 0;
    MK_TRY(take_u64(r, &probed, "probe flag"));
    *with_probe = probed;
    if (probed > 1) return mk_fail(MK_EINPUT, "session state bytes: probe flag %llu", (unsigned long long)probed);
    if (probed) MK_TRY(take_probe(s, r, scale, mu0));
    if (probed && s->probed) MK_TRY(same_probe(s, scale, mu0));
    MK_TRY(take_nodes(s, r, nd));
    if (!probed && nd->count)
        return mk_fail(MK_EINPUT, "session state bytes: partial sums without a probe");
    return MK_OK;
}

mk_err mk__take_state(mk_session *s, const void *buf, int64_t len)
{
    reader r = {.what = "state"};
    double *scale = NULL, *mu0 = NULL;
    mk_nodes nd = {0};
    uint64_t probed = 0;
    mk_err err = check_head(s, buf, len, KIND_STATE, &r);
    if (!err) err = alloc_probe(s, &scale, &mu0);
    if (!err) err = take_state(s, &r, scale, mu0, &nd, &probed);
    mk_nodes *list = err ? NULL : realloc(s->merged, (size_t)(s->nmerged + 1) * sizeof *list);
    if (!err && !list) err = mk_fail(MK_ENOMEM, "out of memory merging a session's state");
    if (!err) {
        s->merged = list;
        if (!s->probed && probed) adopt_probe(s, scale, mu0);
        mark(s, &nd);
        s->merged[s->nmerged++] = nd;
    } else {
        mk_nodes_free(&nd);
    }
    free(scale), free(mu0);
    return err;
}
