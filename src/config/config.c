/* The configuration: YAML text -> a private tree (yamltree.c) -> --set
 * overrides -> the key table -> mk_config, and back out as resolved YAML
 * (emit.c). The key table is in keys.c; this file holds what it drives:
 * conversions, defaults, checks and --set.
 *
 * The tree is kept (rather than filling mk_config straight from libyaml's
 * events) so that overrides can replace values before anything is checked,
 * and so that every message can name the line a value came from. */
#include <errno.h>
#include <math.h>
#include <inttypes.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "config_impl.h"
#include "mpicka/plan.h"
#include "mpicka/plot.h"
#include "mpicka/text.h"

static const key_spec *find_key(const char *path)
{
    for (size_t i = 0; i < mk__nkeys; i++)
        if (!strcmp(mk__keys[i].path, path)) return &mk__keys[i];
    return NULL;
}

/* ------------------------------------------------------ did you mean --- */

/* The closest known key, when close enough to be a likely typo. */
static const char *suggest(const char *path)
{
    const char *best = NULL;
    size_t bestd = (size_t)-1;
    for (size_t i = 0; i < mk__nkeys; i++) {
        size_t d = mk_edit_distance(path, mk__keys[i].path);
        if (d < bestd) bestd = d, best = mk__keys[i].path;
    }
    if (best && (bestd <= 2 || bestd * 3 <= strlen(best))) return best;
    return NULL;
}

static void unknown_key_text(const char *path, char *buf, size_t size)
{
    const char *near = suggest(path);
    if (near)
        snprintf(buf, size, "unknown key '%s' (did you mean '%s'?)", path, near);
    else
        snprintf(buf, size, "unknown key '%s' (see mpicka run --help for the keys)", path);
}

/* ------------------------------------------------- checking the keys --- */

typedef struct {
    const char *source;
    node *root;
    mk_config *cfg;
    int session;    /* a library session's config: no inputs, output optional */
} ctx;

static mk_err entry_path(const ctx *c, const node *e, const char *prefix, char *path, size_t size)
{
    if (strchr(e->key, '.'))
        return mk__fail_node(c->source, e, 1, "key '%s' holds a '.'; write nested keys indented "
                                          "under their section instead", e->key);
    snprintf(path, size, "%s%s%s", prefix, *prefix ? "." : "", e->key);
    return MK_OK;
}

static mk_err check_duplicate(const ctx *c, const node *map, const node *e, const char *path)
{
    for (const node *d = map->kids; d != e; d = d->next)
        if (!strcmp(d->key, e->key))
            return mk__fail_node(c->source, e, 1, "duplicate key '%s' (first given at line %d)",
                             path, d->key_line);
    return MK_OK;
}

/* Every key of the tree is known and given once; reported in document order. */
static mk_err check_keys(const ctx *c, const node *map, const char *prefix)
{
    for (const node *e = map->kids; e; e = e->next) {
        char path[MK_PATH_MAX], msg[MK_MSG_LEN];
        MK_TRY(entry_path(c, e, prefix, path, sizeof path));
        MK_TRY(check_duplicate(c, map, e, path));
        const key_spec *k = find_key(path);
        if (!k) {
            unknown_key_text(path, msg, sizeof msg);
            return mk__fail_node(c->source, e, 1, "%s", msg);
        }
        if (k->kind == K_MAP && e->kind == N_MAP) MK_TRY(check_keys(c, e, path));
    }
    return MK_OK;
}

/* ------------------------------------------------- values -> fields --- */

static mk_err need_scalar(const ctx *c, const key_spec *k, const node *n, const char *what)
{
    if (n->kind == N_SCALAR) return MK_OK;
    return mk__fail_node(c->source, n, 0, "'%s' must be %s, got %s", k->path, what, mk__kind_word(n));
}

static mk_err conv_bool(const ctx *c, const key_spec *k, const node *n, int *field);

static mk_err conv_map(const ctx *c, const key_spec *k, const node *n, int *given)
{
    if (k->switchable && n->kind == N_SCALAR) return conv_bool(c, k, n, given);
    if (n->kind != N_MAP)
        return mk__fail_node(c->source, n, 0, "'%s' must be a mapping of keys, got %s", k->path,
                         mk__kind_word(n));
    if (given) *given = 1;
    return MK_OK;
}

static mk_err conv_string(const ctx *c, const key_spec *k, const node *n, char **field)
{
    MK_TRY(need_scalar(c, k, n, "a string"));
    if (!*n->text && !k->empty_ok) return mk__fail_node(c->source, n, 0, "'%s' must not be empty", k->path);
    return mk__dup_into(field, n->text, strlen(n->text));
}

static mk_err add_entry(const ctx *c, const key_spec *k, const node *n, char **items, int *count)
{
    if (n->kind != N_SCALAR)
        return mk__fail_node(c->source, n, 0, "'%s' must be a list of strings, got %s in it",
                         k->path, mk__kind_word(n));
    if (!*n->text || n->null)
        return mk__fail_node(c->source, n, 0, "'%s' must not have empty entries", k->path);
    MK_TRY(mk__dup_into(&items[*count], n->text, strlen(n->text)));
    ++*count;
    return MK_OK;
}

/* A list of non-empty strings; a single string is a one-entry list. */
static mk_err conv_list(const ctx *c, const key_spec *k, const node *n, char ***items, int *count)
{
    if (n->kind == N_MAP)
        return mk__fail_node(c->source, n, 0, "'%s' must be a list of strings, got a mapping", k->path);
    size_t len = 0;
    for (const node *i = n->kids; i; i = i->next) len++;
    if (n->kind == N_SEQ && len == 0)
        return mk__fail_node(c->source, n, 0, "'%s' must list at least one entry", k->path);
    mk_err err = MK_OK;
    *items = mk_calloc(n->kind == N_SEQ ? len : 1, sizeof **items, k->path, &err);
    if (!*items) return err;
    if (n->kind == N_SCALAR) return add_entry(c, k, n, *items, count);
    for (const node *i = n->kids; i; i = i->next) MK_TRY(add_entry(c, k, i, *items, count));
    return MK_OK;
}

/* [+-]digits, nothing else. */
static int is_decimal(const char *s, int signed_ok)
{
    if (*s == '+' || (signed_ok && *s == '-')) s++;
    if (!*s) return 0;
    return strspn(s, "0123456789") == strlen(s);
}

static mk_err conv_int(const ctx *c, const key_spec *k, const node *n, int64_t *field)
{
    MK_TRY(need_scalar(c, k, n, "an integer"));
    if (!is_decimal(n->text, 1))
        return mk__fail_node(c->source, n, 0, "'%s' must be an integer, got '%s'", k->path, n->text);
    errno = 0;
    long long v = strtoll(n->text, NULL, 10);
    if (errno == ERANGE && v > 0)
        return mk__fail_node(c->source, n, 0, "'%s' must be an integer of at most %lld, got '%s'",
                         k->path, v, n->text);
    if (v < k->min)
        return mk__fail_node(c->source, n, 0, "'%s' must be at least %" PRId64 ", got '%s'", k->path,
                         k->min, n->text);
    if (k->max && v > k->max)
        return mk__fail_node(c->source, n, 0, "%s %lld is too large (at most %" PRId64 ")", k->path, v, k->max);
    *field = v;
    return MK_OK;
}

static mk_err conv_u64(const ctx *c, const key_spec *k, const node *n, uint64_t *field)
{
    MK_TRY(need_scalar(c, k, n, "an integer"));
    errno = 0;
    unsigned long long v = is_decimal(n->text, 0) ? strtoull(n->text, NULL, 10) : 0;
    if (!is_decimal(n->text, 0) || errno == ERANGE)
        return mk__fail_node(c->source, n, 0, "'%s' must be an integer from 0 to %" PRIu64 ", got '%s'",
                         k->path, UINT64_MAX, n->text);
    *field = v;
    return MK_OK;
}

static mk_err conv_bool(const ctx *c, const key_spec *k, const node *n, int *field)
{
    static const char *const yes[] = {"true", "yes", "on"}, *const no[] = {"false", "no", "off"};
    MK_TRY(need_scalar(c, k, n, "true or false"));
    for (int i = 0; i < 3; i++) {
        if (!strcasecmp(n->text, yes[i]) || !strcasecmp(n->text, no[i])) {
            *field = !strcasecmp(n->text, yes[i]);
            return MK_OK;
        }
    }
    return mk__fail_node(c->source, n, 0, "'%s' must be true or false, got '%s'", k->path, n->text);
}

void mk__join_choices(const key_spec *k, char *buf, size_t size)
{
    size_t used = 0;
    buf[0] = '\0';
    for (int i = 0; k->choices[i] && used < size; i++)
        used += (size_t)snprintf(buf + used, size - used, "%s%s", i ? ", " : "", k->choices[i]);
}

static mk_err conv_enum(const ctx *c, const key_spec *k, const node *n, int *field)
{
    MK_TRY(need_scalar(c, k, n, "a single value"));
    for (int i = 0; k->choices[i]; i++) {
        if (!strcasecmp(n->text, k->choices[i])) {
            *field = i;
            return MK_OK;
        }
    }
    char list[128];
    mk__join_choices(k, list, sizeof list);
    return mk__fail_node(c->source, n, 0, "'%s' must be one of %s, got '%s'", k->path, list, n->text);
}

/* A bound as written in the table: %g, less its exponent's '+' (1e150). */
static void bound_text(double v, char *buf, size_t size)
{
    snprintf(buf, size, "%g", v);
    char *plus = strchr(buf, '+');
    if (plus) memmove(plus, plus + 1, strlen(plus));
}

/* At the key's line, where the range was named when it was checked after the
 * conversions: the message stays as it was. */
static mk_err double_range_fail(const ctx *c, const key_spec *k, const node *n)
{
    char lo[32], hi[32];
    bound_text(k->lo, lo, sizeof lo);
    bound_text(k->hi, hi, sizeof hi);
    return mk__fail_node(c->source, n, 1, "'%s' must be between %s and %s", k->path, lo, hi);
}

static mk_err conv_double(const ctx *c, const key_spec *k, const node *n, double *field)
{
    MK_TRY(need_scalar(c, k, n, "a number"));
    char *end;
    errno = 0;
    double v = strtod(n->text, &end);
    if (end == n->text || *end || (errno == ERANGE && fabs(v) >= 1.0) || !isfinite(v)) /* underflow is a value */
        return mk__fail_node(c->source, n, 0, "'%s' must be a finite number, got '%s'", k->path, n->text);
    if ((k->lo || k->hi) && !(v >= k->lo && v <= k->hi)) return double_range_fail(c, k, n);
    *field = v;
    return MK_OK;
}

static const char *const model_fields[] = {"file", "name", "layers"};

static mk_err default_model_name(const char *from, char **name);

static mk_err model_key_known(const ctx *c, const node *e, const node *f, const char *path)
{
    for (int k = 0; k < 3; k++)
        if (!strcmp(f->key, model_fields[k])) return check_duplicate(c, e, f, path);
    const char *near = NULL;
    for (int k = 0; k < 3; k++)
        if (mk_edit_distance(f->key, model_fields[k]) <= 2) near = model_fields[k];
    return mk__fail_node(c->source, f, 1, "unknown key '%s' (a model has file, name and layers%s%s%s)", path,
                     near ? "; did you mean '" : "", near ? near : "", near ? "'?" : "");
}

/* One entry of `models:`, converted as x's keys are and named in messages
 * as models[I].KEY. */
static mk_err conv_model(const ctx *c, const node *e, int i, mk_model_cfg *m)
{
    char path[MK_PATH_MAX];
    if (e->kind != N_MAP)
        return mk__fail_node(c->source, e, 0, "'models[%d]' must be a mapping with the keys file, name and layers, got %s",
                         i, mk__kind_word(e));
    for (const node *f = e->kids; f; f = f->next) {
        snprintf(path, sizeof path, "models[%d].%s", i, f->key);
        MK_TRY(model_key_known(c, e, f, path));
    }
    static const char *const like[] = {"x.file", "x.name", "x.layers"};
    for (int k = 0; k < 3; k++) {
        key_spec spec = *find_key(like[k]);
        snprintf(path, sizeof path, "models[%d].%s", i, model_fields[k]);
        spec.path = path;
        const node *v = *mk__map_slot((node *)e, model_fields[k], strlen(model_fields[k]));
        if (v && v->null) return mk__fail_node(c->source, v, 0, "'%s' has no value", path);
        if (!v && k == 1) MK_TRY(default_model_name(m->files[0], &m->name));
        else if (!v) return mk__fail_node(c->source, e, 0, "missing required key '%s'", path);
        else if (k == 1) MK_TRY(conv_string(c, &spec, v, &m->name));
        else MK_TRY(conv_list(c, &spec, v, k ? &m->layers : &m->files, k ? &m->nlayers : &m->nfiles));
    }
    return MK_OK;
}

/* The names label the blocks of the result and the rows of /cka_matched. */
static mk_err conv_models(const ctx *c, const node *n, mk_model_cfg **models, int *count)
{
    size_t len = 0;
    for (const node *e = n->kids; e; e = e->next) len++;
    if (n->kind != N_SEQ || !len)
        return mk__fail_node(c->source, n, 0, "'models' must be a list of models (each a mapping with the keys file, "
                         "name and layers), got %s", n->kind == N_SEQ ? "an empty list" : mk__kind_word(n));
    mk_err err = MK_OK;
    *models = mk_calloc(len, sizeof **models, "the models", &err);
    if (err) return err;
    int i = 0;
    for (const node *e = n->kids; e; e = e->next, i++) {
        ++*count; /* before converting: a half-converted entry is freed too */
        MK_TRY(conv_model(c, e, i, &(*models)[i]));
        for (int j = 0; j < i; j++)
            if (!strcmp((*models)[j].name, (*models)[i].name))
                return mk__fail_node(c->source, e, 0, "models[%d] and models[%d] are both named '%s': give each model "
                                 "its own name (key 'name')", j, i, (*models)[i].name);
    }
    return MK_OK;
}

static mk_err convert(const ctx *c, const key_spec *k, const node *n)
{
    void *f = mk__field_of(c->cfg, k->off);
    switch (k->kind) {
    case K_MAP: return conv_map(c, k, n, f);
    case K_STRING: return conv_string(c, k, n, f);
    case K_LIST: return conv_list(c, k, n, f, mk__field_of(c->cfg, k->off_count));
    case K_INT: return conv_int(c, k, n, f);
    case K_BOOL: return conv_bool(c, k, n, f);
    case K_U64: return conv_u64(c, k, n, f);
    case K_ENUM: return conv_enum(c, k, n, f);
    case K_DOUBLE: return conv_double(c, k, n, f);
    case K_MODELS: return conv_models(c, n, f, mk__field_of(c->cfg, k->off_count));
    case K_MEASURES: return mk__conv_measures(c->source, n, c->cfg);
    }
    return mk_fail(MK_EINTERNAL, "config key '%s' has no kind", k->path);
}

/* Length of s[0..n) without a trailing "-<rank>-of-<world>" shard suffix. */
static size_t strip_shard_suffix(const char *s, size_t n)
{
    size_t i = n, digits;
    for (digits = 0; i > 0 && s[i - 1] >= '0' && s[i - 1] <= '9'; i--) digits++;
    if (!digits || i < 4 || strncmp(s + i - 4, "-of-", 4)) return n;
    i -= 4;
    for (digits = 0; i > 0 && s[i - 1] >= '0' && s[i - 1] <= '9'; i--) digits++;
    return digits && i > 1 && s[i - 1] == '-' ? i - 1 : n;
}

/* "acts/resnet18.h5" -> "resnet18", and so do "acts/resnet18-0-of-4.h5" and
 * the glob "acts/resnet18-*.h5" (cut before its first wildcard, and the
 * separators before that); a name that would be empty keeps the path. */
static mk_err default_model_name(const char *from, char **name)
{
    const char *slash = strrchr(from, '/'), *base = slash ? slash + 1 : from;
    const char *dot = strrchr(base, '.');
    size_t n = dot && dot != base ? (size_t)(dot - base) : strlen(base);
    size_t wild = strcspn(base, "*?[");
    if (wild < n) {
        n = wild;
        while (n > 0 && strchr("-_. ", base[n - 1])) n--;
    }
    n = strip_shard_suffix(base, n);
    if (n == 0) base = from, n = strlen(from);
    return mk__dup_into(name, base, n);
}

static mk_err default_name(const ctx *c, const key_spec *k)
{
    char **const *list = mk__field_of(c->cfg, find_key(k->def_from)->off);
    if (!*list) return mk_fail(MK_EINTERNAL, "'%s' is needed before '%s'", k->def_from, k->path);
    return default_model_name((*list)[0], mk__field_of(c->cfg, k->off));
}

static mk_err apply_default(const ctx *c, const key_spec *k)
{
    const key_spec *s = mk__section_of(k);
    if (c->session && !strcmp(k->path, "output")) return MK_OK; /* a session may only keep its matrices */
    if (k->required && s && !s->required)
        return mk__fail_at(c->source, NULL, 0, "missing required key '%s' (required when '%s' is given)",
                       k->path, s->path);
    if (k->required) return mk__fail_at(c->source, NULL, 0, "missing required key '%s'", k->path);
    if (k->def_from) return default_name(c, k);
    if (!k->def) return MK_OK;
    node d = {.kind = N_SCALAR, .text = (char *)k->def};
    return convert(c, k, &d);
}

static mk_err apply_key(const ctx *c, const key_spec *k, const node *n)
{
    if (!n || (n->null && k->kind == K_MAP && !k->required)) return apply_default(c, k);
    if (n->null) return mk__fail_node(c->source, n, 0, "'%s' has no value", k->path);
    return convert(c, k, n);
}

/* Table order puts a section before its keys, so its absence is known here. */
static mk_err apply_keys(const ctx *c)
{
    for (size_t i = 0; i < mk__nkeys; i++) {
        const key_spec *s = mk__section_of(&mk__keys[i]);
        if (s) {
            const node *sec = mk__tree_get(c->root, s->path);
            int on = s->switchable ? mk__section_given(c->cfg, s) : sec && sec->kind == N_MAP;
            if (!on) continue;
        }
        MK_TRY(apply_key(c, &mk__keys[i], mk__tree_get(c->root, mk__keys[i].path)));
    }
    return MK_OK;
}

/* Keys valid alone but not together: named with their line where given. */
static mk_err key_fail(const ctx *c, const char *path, const char *msg)
{
    const node *n = mk__tree_get(c->root, path);
    return n ? mk__fail_node(c->source, n, 1, "%s", msg) : mk__fail_at(c->source, NULL, 0, "%s", msg);
}

/* Before the other keys: without models, nothing else matters. */
static mk_err check_models_given(const ctx *c)
{
    const node *x = mk__tree_get(c->root, "x");
    if (x && x->null) return mk__fail_node(c->source, x, 0, "'x' has no value");
    if (!x && !mk__tree_get(c->root, "models"))
        return mk__fail_at(c->source, NULL, 0, "missing required key 'x' (or a 'models' list)");
    return MK_OK;
}

/* x (and y) or a models list, not both. */
static mk_err check_models(const ctx *c)
{
    const mk_config *cfg = c->cfg;
    if (cfg->models && (cfg->has_x || cfg->has_y))
        return key_fail(c, "models", "'models' and x/y are two ways to give the models: use one (x and y for two "
                        "models, a models list for any number)");
    return MK_OK;
}

/* The heatmap's format is its extension: refused now, as plot -o refuses
 * it, rather than a file named .jpg written as a PNG at the end of a run. */
static mk_err check_plot_file(const ctx *c)
{
    const mk_config *cfg = c->cfg;
    if (!cfg->plot.enabled || mk_plot_check_extension(cfg->plot.file) == MK_OK) return MK_OK;
    char msg[512];
    snprintf(msg, sizeof msg, "'plot.file' is '%.300s': the heatmap's format is its extension, one of .png, .svg "
             "or .pdf", cfg->plot.file);
    return key_fail(c, "plot.file", msg);
}

static mk_err check_combinations(const ctx *c)
{
    const mk_config *cfg = c->cfg;
    MK_TRY(check_models(c));
    MK_TRY(check_plot_file(c));
    if (cfg->jackknife == 1)
        return key_fail(c, "jackknife", "'jackknife' is 0 (no standard errors) or at least 2 groups");
    MK_TRY(mk__check_measures(c->source, mk__tree_get(c->root, "measures"), cfg));
    if (cfg->estimator != MK_EST_EXACT) return MK_OK;
    if (cfg->kernel != MK_KERNEL_LINEAR)
        return key_fail(c, "kernel", "'estimator: exact' needs 'kernel: linear' (an RBF kernel has no "
                        "feature-space form; use estimator hsic1 or hsic0)");
    if (cfg->permutations > 0)
        return key_fail(c, "permutations", "'permutations' needs a minibatch estimator (hsic1 or hsic0), "
                        "not 'estimator: exact'");
    if (cfg->epochs != 1)
        return key_fail(c, "epochs", "'estimator: exact' uses every example once: 'epochs' must be 1");
    return MK_OK;
}

/* ----------------------------------------------------------- --set --- */

/* The mapping holding key[0..n) under map, made when missing or null. */
static mk_err section_for(const ctx *c, node *map, const char *key, size_t n, const char *arg,
                          node **out)
{
    node **slot = mk__map_slot(map, key, n);
    node *e = *slot;
    mk_err err = MK_OK;
    if (e && e->kind == N_MAP) {
        *out = e;
        return MK_OK;
    }
    if (e && !e->null)
        return mk__fail_node(c->source, e, 0, "'%.*s' must be a mapping of keys, got %s", (int)n, key,
                         mk__kind_word(e));
    node *sec = mk_calloc(1, sizeof *sec, "the configuration tree", &err);
    if (!sec) return err;
    if ((err = mk__dup_into(&sec->key, key, n))) {
        free(sec);
        return err;
    }
    sec->kind = N_MAP;
    sec->set = arg;
    if (e) { /* a null "y:" in the file: the override gives it keys */
        sec->next = e->next;
        e->next = NULL;
        mk__node_free(e);
    }
    *out = *slot = sec;
    return MK_OK;
}

/* Puts value v (owned from here) at the dotted path, replacing what is there. */
static mk_err tree_put(const ctx *c, const char *path, node *v, const char *arg)
{
    node *map = c->root;
    mk_err err = MK_OK;
    size_t len;
    for (; path[len = strcspn(path, ".")]; path += len + 1)
        if ((err = section_for(c, map, path, len, arg, &map))) break;
    if (!err) err = mk__dup_into(&v->key, path, len);
    if (err) {
        mk__node_free(v);
        return err;
    }
    node **slot = mk__map_slot(map, path, len);
    if (*slot) {
        v->next = (*slot)->next;
        (*slot)->next = NULL;
        mk__node_free(*slot);
    }
    *slot = v;
    return MK_OK;
}

static mk_err set_key(const ctx *c, const char *arg, const char *eq, const key_spec **k)
{
    char key[MK_PATH_MAX], msg[MK_MSG_LEN];
    snprintf(key, sizeof key, "%.*s", (int)(eq - arg), arg);
    *k = find_key(key);
    if (!*k) {
        unknown_key_text(key, msg, sizeof msg);
        return mk__fail_at(c->source, arg, 0, "%s", msg);
    }
    if ((*k)->kind == K_MAP && !(*k)->switchable)
        return mk__fail_at(c->source, arg, 0, "'%s' is a section; set its keys one by one, such as '%s'",
                       key, (*k)[1].path);
    return MK_OK;
}

mk_err mk_config_check_set(const char *arg, const char *next)
{
    const char *eq = strchr(arg, '=');
    if (eq && eq != arg) return MK_OK;
    if (!eq && next && next[0] != '-')
        return mk_fail(MK_EUSAGE, "--set %s %s: write --set %s=%s (KEY=VALUE, one word)", arg, next, arg, next);
    return mk_fail(MK_EUSAGE, "--set '%s': expected KEY=VALUE", arg);
}

/* One "dotted.key=VALUE" override, VALUE read as YAML. */
static mk_err apply_set(const ctx *c, const char *arg)
{
    const char *eq = strchr(arg, '=');
    if (!eq || eq == arg) return mk_fail(MK_EUSAGE, "--set '%s': expected KEY=VALUE", arg);
    if (!eq[1]) return mk_fail(MK_EUSAGE, "--set '%s': the value is empty", arg);
    const key_spec *k;
    MK_TRY(set_key(c, arg, eq, &k));
    node *v;
    MK_TRY(mk__parse_tree(eq + 1, strlen(eq + 1), c->source, arg, &v));
    if (!v) return mk_fail(MK_EUSAGE, "--set '%s': the value is empty", arg);
    return tree_put(c, k->path, v, arg);
}

/* ---------------------------------------------------------------- API --- */

/* What the source module needs from the top-level keys, in each model. */
static void derive_models(mk_config *cfg)
{
    for (int i = -2; i < cfg->nmodels; i++) {
        mk_model_cfg *m = i == -2 ? &cfg->x : i == -1 ? &cfg->y : &cfg->models[i];
        m->ids = cfg->ids.dataset ? cfg->ids.dataset : "ids";
        m->check_ids = cfg->ids.enabled;
        m->order = cfg->layer_order;
    }
}

int mk_config_nmodels(const mk_config *cfg)
{
    return cfg->models ? cfg->nmodels : 1 + cfg->has_y;
}

const mk_model_cfg *mk_config_model(const mk_config *cfg, int k)
{
    return cfg->models ? &cfg->models[k] : k ? &cfg->y : &cfg->x;
}

static void free_strings(char **items, int count)
{
    for (int j = 0; items && j < count; j++) free(items[j]);
    free(items);
}

static mk_err read_root(ctx *c, const char *text, size_t len)
{
    MK_TRY(mk__parse_tree(text ? text : "", text ? len : 0, c->source, NULL, &c->root));
    if (!c->root || (c->root->kind == N_SCALAR && c->root->null))
        return mk__fail_at(c->source, NULL, 0, "the configuration is empty");
    if (c->root->kind != N_MAP)
        return mk__fail_node(c->source, c->root, 0, "the configuration must be a mapping of keys, got %s",
                         mk__kind_word(c->root));
    return MK_OK;
}

/* Keys of a file run only: the models come from the caller, which feeds
 * each batch once in order, with nothing to resume. */
static const char *const file_only[] = {"x", "y", "models", "shuffle_block", "checkpoint", "ids", "layer_order"};

int mk__file_only_key(const char *path)
{
    size_t top = strcspn(path, ".");
    for (size_t i = 0; i < sizeof file_only / sizeof *file_only; i++)
        if (strlen(file_only[i]) == top && !strncmp(path, file_only[i], top)) return 1;
    return 0;
}

static mk_err check_session_keys(const ctx *c)
{
    for (size_t i = 0; i < sizeof file_only / sizeof *file_only; i++)
        if (mk__tree_get(c->root, file_only[i])) {
            char msg[512];
            snprintf(msg, sizeof msg, "'%s' is a key of a run from files; a session declares its models and is fed "
                     "each batch once, in order: for %s, export the activations and use `mpicka run` "
                     "(docs/library.md)", file_only[i], i < 3 ? "models read from files" : "this");
            return key_fail(c, file_only[i], msg);
        }
    if (c->cfg->epochs != 1)
        return key_fail(c, "epochs", "'epochs' must be 1 in a session (each batch is fed once); for several epochs, "
                        "export the activations and use `mpicka run` (docs/library.md)");
    if (c->cfg->shuffle)
        return key_fail(c, "shuffle", "'shuffle' is a key of a run from files (a session is fed batches in order); "
                        "shuffle the examples before feeding them, or export and use `mpicka run` (docs/library.md)");
    return MK_OK;
}

static mk_err parse(const char *text, size_t len, const char *source, char *const *sets, int nsets, int session,
                    mk_config *cfg)
{
    memset(cfg, 0, sizeof *cfg);
    ctx c = {.source = source ? source : "<config>", .cfg = cfg, .session = session};
    mk_err err;
    MK_GOTO(read_root(&c, text, len), fail);
    for (int i = 0; i < nsets; i++) MK_GOTO(apply_set(&c, sets[i]), fail);
    MK_GOTO(check_keys(&c, c.root, ""), fail);
    if (!session) MK_GOTO(check_models_given(&c), fail);
    MK_GOTO(apply_keys(&c), fail);
    if (session) MK_GOTO(check_session_keys(&c), fail);
    cfg->session = session;
    MK_GOTO(check_combinations(&c), fail);
    derive_models(cfg);
    MK_GOTO(mk__write_resolved(cfg), fail);
    mk__node_free(c.root);
    return MK_OK;
fail:
    mk__node_free(c.root);
    mk_config_free(cfg);
    return err;
}

mk_err mk_config_parse(const char *text, size_t len, const char *source, char *const *sets,
                       int nsets, mk_config *cfg)
{
    return parse(text, len, source, sets, nsets, 0, cfg);
}

mk_err mk_config_parse_session(const char *text, size_t len, const char *source, char *const *sets, int nsets,
                               mk_config *cfg)
{
    return parse(text, len, source, sets, nsets, 1, cfg);
}

void mk_config_free(mk_config *cfg)
{
    if (!cfg) return;
    for (size_t i = 0; i < mk__nkeys; i++) {
        const key_spec *k = &mk__keys[i];
        if (k->kind == K_STRING) free(*(char **)mk__field_of(cfg, k->off));
        if (k->kind == K_LIST) free_strings(*(char ***)mk__field_of(cfg, k->off), *(int *)mk__field_of(cfg, k->off_count));
    }
    for (int i = 0; i < cfg->nmodels; i++) {
        free_strings(cfg->models[i].files, cfg->models[i].nfiles);
        free_strings(cfg->models[i].layers, cfg->models[i].nlayers);
        free(cfg->models[i].name);
    }
    free(cfg->models);
    free(cfg->measures);
    free(cfg->resolved);
    memset(cfg, 0, sizeof *cfg);
}
