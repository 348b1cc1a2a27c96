/* The configuration: YAML text -> a private tree -> --set overrides -> the
 * key table -> mk_config, and back out as resolved YAML.
 *
 * The tree is kept (rather than filling mk_config straight from libyaml's
 * events) so that overrides can replace values before anything is checked,
 * and so that every message can name the line a value came from. */
#include "mpicka/config.h"

#include <errno.h>
#include <math.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <yaml.h>

#include "mpicka/text.h"

#define MK_CONFIG_MAX ((size_t)16 << 20) /* a config is a page of text, not data */
#define MK_DEPTH_MAX 32                   /* the schema nests 2 deep; this stops runaways */
#define MK_PATH_MAX 256                   /* longest dotted key we look up */
#define MK_MSG_LEN 2048

/* ---------------------------------------------------------------- tree --- */

typedef enum { N_SCALAR, N_SEQ, N_MAP } node_kind;

typedef struct node node;
struct node {
    node_kind kind;
    int line;        /* 1-based line of the value in the file */
    int key_line;    /* line of its key, when an entry of a mapping */
    int null;        /* a plain ~, null or nothing: YAML's null */
    const char *set; /* the --set argument it came from; NULL: the file */
    char *key;       /* its key, when an entry of a mapping */
    char *text;      /* N_SCALAR's value */
    node *kids;      /* N_SEQ items or N_MAP entries, in order */
    node *next;
};

static void node_free(node *n)
{
    while (n) {
        node *next = n->next;
        node_free(n->kids);
        free(n->key);
        free(n->text);
        free(n);
        n = next;
    }
}

static const char *kind_word(const node *n)
{
    return n->kind == N_MAP ? "a mapping" : n->kind == N_SEQ ? "a list" : "a single value";
}

static int is_null_word(const char *s)
{
    return !*s || !strcmp(s, "~") || !strcmp(s, "null") || !strcmp(s, "Null") || !strcmp(s, "NULL");
}

/* The entry slot for key[0..n) in map: the pointer to it, or the empty tail. */
static node **map_slot(node *map, const char *key, size_t n)
{
    node **s = &map->kids;
    for (; *s; s = &(*s)->next)
        if (!strncmp((*s)->key, key, n) && !(*s)->key[n]) break;
    return s;
}

/* The value at a dotted path, or NULL. Keys holding '.' never get this far. */
static node *tree_get(node *root, const char *path)
{
    node *n = root;
    while (n && n->kind == N_MAP) {
        size_t len = strcspn(path, ".");
        n = *map_slot(n, path, len);
        if (!path[len]) return n;
        path += len + 1;
    }
    return NULL;
}

/* --------------------------------------------------------------- errors --- */

/* Prefix + message: "SOURCE:LINE: ..." for values from the file, "--set ARG:
 * ..." for values from an override, "SOURCE: ..." when line is 0. */
static mk_err vfail_at(const char *source, const char *set, int line, const char *fmt, va_list ap)
{
    char msg[MK_MSG_LEN];
    vsnprintf(msg, sizeof msg, fmt, ap);
    if (set) return mk_fail(MK_ECONFIG, "--set %s: %s", set, msg);
    if (line > 0) return mk_fail(MK_ECONFIG, "%s:%d: %s", source, line, msg);
    return mk_fail(MK_ECONFIG, "%s: %s", source, msg);
}

__attribute__((format(printf, 4, 5)))
static mk_err fail_at(const char *source, const char *set, int line, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    mk_err err = vfail_at(source, set, line, fmt, ap);
    va_end(ap);
    return err;
}

/* An error about a node's value (its line) or about its key (the key's line). */
__attribute__((format(printf, 4, 5)))
static mk_err fail_node(const char *source, const node *n, int at_key, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    mk_err err = vfail_at(source, n->set, at_key ? n->key_line : n->line, fmt, ap);
    va_end(ap);
    return err;
}

static mk_err dup_into(char **field, const char *s, size_t n)
{
    *field = strndup(s, n);
    if (!*field) return mk_fail(MK_ENOMEM, "out of memory copying a configuration value");
    return MK_OK;
}

/* -------------------------------------------------------------- reading --- */

typedef struct {
    yaml_parser_t yp;
    const char *source; /* the config's name in messages */
    const char *set;    /* the --set argument being read, or NULL: the file */
    const char *text;
} reader;

static int mark_line(const reader *r, const yaml_mark_t *m)
{
    return r->set ? 0 : (int)m->line + 1;
}

/* libyaml's reader errors carry a byte offset, not a mark. */
static yaml_mark_t mark_at_offset(const char *text, size_t offset)
{
    yaml_mark_t m = {0, 0, 0};
    for (size_t i = 0; i < offset; i++) {
        m.column++;
        if (text[i] == '\n') {
            m.line++;
            m.column = 0;
        }
    }
    return m;
}

#define MK_QUOTE_GLOBS "; a value starting with '*' or '&' is YAML syntax (an alias or anchor): " \
                       "quote glob patterns, as in layers: [\"layer*\"]"

/* The likeliest slips behind libyaml's terse messages: an unquoted glob
 * (read as an alias or anchor) and a tab in the indentation. */
static const char *yaml_hint(const reader *r, const yaml_mark_t *m)
{
    const yaml_parser_t *p = &r->yp;
    const char *ctx = p->context ? p->context : "";
    if (strstr(ctx, "alias") || strstr(ctx, "anchor")) return MK_QUOTE_GLOBS;
    const char *line = r->text;
    for (size_t k = 0; line && k < m->line; k++) line = strchr(line, '\n') ? strchr(line, '\n') + 1 : NULL;
    size_t indent = line ? strspn(line, " \t") : 0;
    if (p->error == YAML_SCANNER_ERROR && memchr(line ? line : "", '\t', indent))
        return "; YAML indents with spaces, not tabs";
    return "";
}

static mk_err yaml_fail(const reader *r)
{
    const yaml_parser_t *p = &r->yp;
    if (p->error == YAML_MEMORY_ERROR) return mk_fail(MK_ENOMEM, "out of memory reading YAML");
    yaml_mark_t m = p->error == YAML_READER_ERROR ? mark_at_offset(r->text, p->problem_offset)
                                                  : p->problem_mark;
    const char *problem = p->problem ? p->problem : "unknown problem", *hint = yaml_hint(r, &m);
    char why[256] = "";
    if (p->context)
        snprintf(why, sizeof why, " (%s at line %zu)", p->context, p->context_mark.line + 1);
    if (r->set) /* an unquoted glob (a leading *) is the likely culprit */
        return mk_fail(MK_ECONFIG, "--set %s: malformed YAML: %s%s; quote a value holding YAML "
                                   "syntax, as in KEY='VALUE'", r->set, problem, why);
    return mk_fail(MK_ECONFIG, "%s:%zu:%zu: malformed YAML: %s%s%s", r->source, m.line + 1,
                   m.column + 1, problem, why, hint);
}

static mk_err next_event(reader *r, yaml_event_t *ev)
{
    return yaml_parser_parse(&r->yp, ev) ? MK_OK : yaml_fail(r);
}

static node *node_new(const reader *r, node_kind kind, const yaml_event_t *ev, mk_err *err)
{
    node *n = mk_calloc(1, sizeof *n, "the configuration tree", err);
    if (!n) return NULL;
    n->kind = kind;
    n->line = mark_line(r, &ev->start_mark);
    n->set = r->set;
    return n;
}

/* The text of a scalar event, refusing "\0" escapes that C strings would cut. */
static mk_err scalar_text(const reader *r, const yaml_event_t *ev, char **text)
{
    const char *v = (const char *)ev->data.scalar.value;
    size_t len = ev->data.scalar.length;
    if (memchr(v, '\0', len))
        return fail_at(r->source, r->set, mark_line(r, &ev->start_mark),
                       "NUL characters are not allowed");
    return dup_into(text, v, len);
}

static mk_err scalar_node(const reader *r, const yaml_event_t *ev, node **out)
{
    mk_err err = MK_OK;
    node *n = node_new(r, N_SCALAR, ev, &err);
    if (!n) return err;
    err = scalar_text(r, ev, &n->text);
    if (err) {
        node_free(n);
        return err;
    }
    n->null = ev->data.scalar.style == YAML_PLAIN_SCALAR_STYLE && is_null_word(n->text);
    *out = n;
    return MK_OK;
}

static mk_err parse_value(reader *r, const yaml_event_t *ev, int depth, node **out);

/* The next item of a sequence; *done at its end. */
static mk_err next_item(reader *r, int depth, node **kid, int *done)
{
    yaml_event_t ev;
    MK_TRY(next_event(r, &ev));
    *done = ev.type == YAML_SEQUENCE_END_EVENT;
    mk_err err = *done ? MK_OK : parse_value(r, &ev, depth + 1, kid);
    yaml_event_delete(&ev);
    return err;
}

/* Reads a mapping key; *done at the mapping's end. */
static mk_err read_key(reader *r, char **key, int *line, int *done)
{
    yaml_event_t ev;
    MK_TRY(next_event(r, &ev));
    mk_err err = MK_OK;
    *done = ev.type == YAML_MAPPING_END_EVENT;
    *line = mark_line(r, &ev.start_mark);
    if (!*done && ev.type != YAML_SCALAR_EVENT)
        err = fail_at(r->source, r->set, *line, "keys must be plain strings");
    else if (!*done)
        err = scalar_text(r, &ev, key);
    yaml_event_delete(&ev);
    return err;
}

/* The next entry of a mapping (a value node carrying its key); *done at its end. */
static mk_err next_entry(reader *r, int depth, node **kid, int *done)
{
    char *key = NULL;
    int line = 0;
    MK_TRY(read_key(r, &key, &line, done));
    if (*done) return MK_OK;
    yaml_event_t ev;
    mk_err err = next_event(r, &ev);
    if (!err) {
        err = parse_value(r, &ev, depth + 1, kid);
        yaml_event_delete(&ev);
    }
    if (err) {
        free(key);
        return err;
    }
    (*kid)->key = key;
    (*kid)->key_line = line;
    return MK_OK;
}

static mk_err collection(reader *r, const yaml_event_t *start, node_kind kind, int depth, node **out)
{
    if (depth >= MK_DEPTH_MAX)
        return fail_at(r->source, r->set, mark_line(r, &start->start_mark),
                       "values nest deeper than %d levels", MK_DEPTH_MAX);
    mk_err err = MK_OK;
    node *n = node_new(r, kind, start, &err);
    if (!n) return err;
    for (node **tail = &n->kids;; tail = &(*tail)->next) {
        int done = 0;
        err = kind == N_MAP ? next_entry(r, depth, tail, &done) : next_item(r, depth, tail, &done);
        if (err || done) break;
    }
    if (err) {
        node_free(n);
        return err;
    }
    *out = n;
    return MK_OK;
}

/* The anchor (&name) of an event, or NULL. Anchors are harmless alone (only
 * aliases are refused), but one with no value is a glob written unquoted. */
static const char *anchor_of(const yaml_event_t *ev)
{
    const yaml_char_t *a = ev->type == YAML_SCALAR_EVENT           ? ev->data.scalar.anchor
                           : ev->type == YAML_SEQUENCE_START_EVENT ? ev->data.sequence_start.anchor
                           : ev->type == YAML_MAPPING_START_EVENT  ? ev->data.mapping_start.anchor
                                                                   : NULL;
    return (const char *)a;
}

static mk_err parse_value(reader *r, const yaml_event_t *ev, int depth, node **out)
{
    if (anchor_of(ev) && ev->type == YAML_SCALAR_EVENT && !ev->data.scalar.length) /* `[&conv]`: a glob slip */
        return fail_at(r->source, r->set, mark_line(r, &ev->start_mark),
                       "'&%s' is an anchor with no value" MK_QUOTE_GLOBS, anchor_of(ev));
    switch (ev->type) {
    case YAML_SCALAR_EVENT: return scalar_node(r, ev, out);
    case YAML_SEQUENCE_START_EVENT: return collection(r, ev, N_SEQ, depth, out);
    case YAML_MAPPING_START_EVENT: return collection(r, ev, N_MAP, depth, out);
    case YAML_ALIAS_EVENT:
        return fail_at(r->source, r->set, mark_line(r, &ev->start_mark),
                       "aliases (*%s) are not supported; write the value out" MK_QUOTE_GLOBS,
                       (const char *)ev->data.alias.anchor);
    default:
        return mk_fail(MK_EINTERNAL, "%s: unexpected YAML event %d", r->source, (int)ev->type);
    }
}

/* Reads one event and says whether it is of type t (and its line). */
static mk_err skip_event(reader *r, yaml_event_type_t t, int *is_t, int *line)
{
    yaml_event_t ev;
    MK_TRY(next_event(r, &ev));
    *is_t = ev.type == t;
    *line = mark_line(r, &ev.start_mark);
    yaml_event_delete(&ev);
    return MK_OK;
}

/* The one document of the stream; *root stays NULL when there is none. */
static mk_err read_stream(reader *r, node **root)
{
    int is_end, line;
    MK_TRY(skip_event(r, YAML_STREAM_START_EVENT, &is_end, &line));
    MK_TRY(skip_event(r, YAML_STREAM_END_EVENT, &is_end, &line));
    if (is_end) return MK_OK;
    yaml_event_t ev;
    MK_TRY(next_event(r, &ev));
    mk_err err = parse_value(r, &ev, 0, root);
    yaml_event_delete(&ev);
    if (err) return err;
    MK_TRY(skip_event(r, YAML_DOCUMENT_END_EVENT, &is_end, &line));
    MK_TRY(skip_event(r, YAML_STREAM_END_EVENT, &is_end, &line));
    if (!is_end) return fail_at(r->source, r->set, line, "only one YAML document is allowed");
    return MK_OK;
}

/* YAML text -> tree. `set` is the override the text is the value of, or NULL. */
static mk_err parse_tree(const char *text, size_t len, const char *source, const char *set,
                         node **root)
{
    reader r = {.source = source, .set = set, .text = text};
    *root = NULL;
    if (!yaml_parser_initialize(&r.yp)) return mk_fail(MK_ENOMEM, "out of memory reading YAML");
    yaml_parser_set_input_string(&r.yp, (const unsigned char *)text, len);
    mk_err err = read_stream(&r, root);
    yaml_parser_delete(&r.yp);
    if (err) {
        node_free(*root);
        *root = NULL;
    }
    return err;
}

/* ---------------------------------------------------------- key table --- */

typedef enum { K_MAP, K_STRING, K_LIST, K_INT, K_BOOL, K_U64, K_ENUM, K_DOUBLE, K_MODELS } key_kind;

typedef struct {
    const char *path;           /* dotted; a section comes right before its keys */
    key_kind kind;
    int required;               /* in a section: required when the section is given */
    int switchable;             /* K_MAP: on by default (defaults apply), `false` turns it off */
    int empty_ok;               /* K_STRING: "" is a value */
    int scalar_one;             /* K_LIST: one entry is echoed (and documented) as a plain string */
    const char *def;            /* default as YAML text, NULL: none */
    const char *def_from;       /* K_STRING: default is that key's base name */
    int64_t min;                /* K_INT */
    const char *const *choices; /* K_ENUM: NULL-terminated; the index is stored */
    size_t off;                 /* the field; for K_MAP its "given" flag or NO_FIELD */
    size_t off_count;           /* K_LIST, K_MODELS: its int count */
    const char *help;
} key_spec;

#define NO_FIELD ((size_t)-1)
#define AT(member) offsetof(mk_config, member)

static const char *const precisions[] = {"float32", "float64", NULL};
const char *const mk_plot_cmaps[] = {"magma", "viridis", "inferno", "gray", NULL};
static const char *const annotations[] = {"auto", "true", "false", NULL};
static const char *const estimators[] = {"hsic1", "hsic0", "exact", NULL};
static const char *const kernels[] = {"linear", "rbf", NULL};
static const char *const layer_orders[] = {"auto", "creation", "natural", NULL};
_Static_assert(MK_EST_HSIC1 == 0 && MK_EST_HSIC0 == 1 && MK_EST_EXACT == 2, "estimators[] order");
_Static_assert(MK_KERNEL_LINEAR == 0 && MK_KERNEL_RBF == 1, "kernels[] order");
_Static_assert(MK_PREC_FLOAT32 == 0 && MK_PREC_FLOAT64 == 1, "precisions[] is indexed by mk_precision");
_Static_assert(sizeof(mk_precision) == sizeof(int), "K_ENUM fields are stored as int");

#define MODEL_KEYS(s, req, flag, what)                                                        \
    {.path = #s, .kind = K_MAP, .required = req, .off = flag, .help = what},                  \
    {.path = #s ".file", .kind = K_LIST, .required = 1, .scalar_one = 1, .off = AT(s.files),  \
     .off_count = AT(s.nfiles),                                                               \
     .help = "HDF5 file(s) with the activations: a list or glob of shards, concatenated"},    \
    {.path = #s ".name", .kind = K_STRING, .def_from = #s ".file", .off = AT(s.name),         \
     .help = "name shown in the results"},                                                    \
    {.path = #s ".layers", .kind = K_LIST, .required = 1, .off = AT(s.layers),                \
     .off_count = AT(s.nlayers),                                                              \
     .help = "dataset paths or glob patterns, in order (one string is a one-entry list)"}

static const key_spec keys[] = {
    MODEL_KEYS(x, 0, AT(has_x), "the model whose layers are compared (required unless models is given)"),
    MODEL_KEYS(y, 0, AT(has_y), "a second model, compared with x (omit it to compare x with itself)"),
    {.path = "models", .kind = K_MODELS, .off = AT(models), .off_count = AT(nmodels),
     .help = "instead of x and y, any number of models, each with the keys file, name (unique) and layers as "
             "x has them: every layer of every model against every other, in one pass"},
    {.path = "batch_size", .kind = K_INT, .def = "256", .min = 4, .off = AT(batch_size),
     .help = "samples per minibatch"},
    {.path = "epochs", .kind = K_INT, .def = "1", .min = 1, .off = AT(epochs),
     .help = "passes over the samples"},
    {.path = "shuffle", .kind = K_BOOL, .def = "false", .off = AT(shuffle),
     .help = "visit the samples in a random order"},
    {.path = "shuffle_block", .kind = K_INT, .def = "1", .min = 1, .off = AT(shuffle_block),
     .help = "samples shuffled together: 1 shuffles samples; B > 1 shuffles runs of B consecutive samples (a "
             "chunk's rows), read B at a time"},
    {.path = "seed", .kind = K_U64, .def = "0", .off = AT(seed),
     .help = "seed of the shuffle (decimal)"},
    {.path = "precision", .kind = K_ENUM, .def = "float64", .choices = precisions,
     .off = AT(precision), .help = "floating-point type of the computation"},
    {.path = "estimator", .kind = K_ENUM, .def = "hsic1", .choices = estimators, .off = AT(estimator),
     .help = "hsic1: minibatch, unbiased HSIC_1; hsic0: minibatch, biased HSIC_0; exact: whole data set"},
    {.path = "kernel", .kind = K_ENUM, .def = "linear", .choices = kernels, .off = AT(kernel),
     .help = "kernel of the Grams (rbf: minibatch estimators only)"},
    {.path = "rbf_threshold", .kind = K_DOUBLE, .def = "1", .off = AT(rbf_threshold),
     .help = "RBF bandwidth as a fraction of each minibatch's median distance (> 0)"},
    {.path = "debiased", .kind = K_BOOL, .def = "true", .off = AT(debiased),
     .help = "exact: unbiased HSIC_1 on all examples (false: Kornblith's biased CKA)"},
    {.path = "jackknife", .kind = K_INT, .def = "20", .min = 0, .off = AT(jackknife),
     .help = "groups of batches for the jackknife standard errors (0: none)"},
    {.path = "permutations", .kind = K_INT, .def = "0", .min = 0, .off = AT(permutations),
     .help = "permutations of y per batch for p-values against independence (0: none)"},
    {.path = "output", .kind = K_STRING, .required = 1, .off = AT(output),
     .help = "folder the results are written to"},
    {.path = "progress_seconds", .kind = K_INT, .def = "30", .min = 0, .off = AT(progress_seconds),
     .help = "seconds between progress lines in a log (0: a line per batch step)"},
    {.path = "threads", .kind = K_INT, .def = "0", .min = 0, .off = AT(threads),
     .help = "threads per rank for the Grams and pair products (0: SLURM_CPUS_PER_TASK, else 1); "
             "the result's bits do not depend on it"},
    {.path = "checkpoint", .kind = K_MAP, .switchable = 1, .def = "true", .off = AT(checkpoint.enabled),
     .help = "periodic checkpoints in the output folder (`checkpoint: false`: only on a signal)"},
    {.path = "checkpoint.every", .kind = K_INT, .def = "0", .min = 0, .off = AT(checkpoint.every),
     .help = "batches between checkpoints (0: not by count)"},
    {.path = "checkpoint.seconds", .kind = K_INT, .def = "600", .min = 0, .off = AT(checkpoint.seconds),
     .help = "seconds between checkpoints (0: not by time)"},
    {.path = "ids", .kind = K_MAP, .switchable = 1, .def = "true", .off = AT(ids.enabled),
     .help = "check that x and y hold the same sample IDs in the same order (`ids: false`: don't)"},
    {.path = "ids.dataset", .kind = K_STRING, .def = "ids", .off = AT(ids.dataset),
     .help = "the 1-D dataset of sample IDs (integers or strings) in every file; never a layer of a glob"},
    {.path = "layer_order", .kind = K_ENUM, .def = "auto", .choices = layer_orders, .off = AT(layer_order),
     .help = "order of a glob's layers: creation (as written), natural (layer2 before layer10), auto"},
    {.path = "plot", .kind = K_MAP, .switchable = 1, .def = "true", .off = AT(plot.enabled),
     .help = "the heatmap drawn beside cka.h5 (`plot: false`: none)"},
    {.path = "plot.file", .kind = K_STRING, .def = "cka.png", .off = AT(plot.file),
     .help = "its file name in the output folder (.png, .svg or .pdf)"},
    {.path = "plot.title", .kind = K_STRING, .def = "", .empty_ok = 1, .off = AT(plot.title),
     .help = "title (empty: \"X vs Y\" from the models' names)"},
    {.path = "plot.cmap", .kind = K_ENUM, .def = "magma", .choices = mk_plot_cmaps, .off = AT(plot.cmap),
     .help = "colour map"},
    {.path = "plot.vmin", .kind = K_DOUBLE, .def = "0", .off = AT(plot.vmin),
     .help = "value at the bottom of the colour map"},
    {.path = "plot.vmax", .kind = K_DOUBLE, .def = "1", .off = AT(plot.vmax),
     .help = "value at the top of the colour map"},
    {.path = "plot.annotate", .kind = K_ENUM, .def = "auto", .choices = annotations,
     .off = AT(plot.annotate), .help = "values in the cells (auto: when they fit)"},
    {.path = "plot.half", .kind = K_BOOL, .def = "false", .off = AT(plot.half),
     .help = "lower triangle only, for a self comparison"},
    {.path = "plot.invert_y", .kind = K_BOOL, .def = "false", .off = AT(plot.invert_y),
     .help = "first layer at the bottom"},
    {.path = "plot.short_names", .kind = K_INT, .def = "0", .min = 0, .off = AT(plot.short_names),
     .help = "show only the last K components of layer paths (0: all)"},
    {.path = "plot.errors", .kind = K_BOOL, .def = "false", .off = AT(plot.errors),
     .help = "jackknife standard errors under the cell values (when annotated)"},
};

#define NKEYS (sizeof keys / sizeof keys[0])

static const key_spec *find_key(const char *path)
{
    for (size_t i = 0; i < NKEYS; i++)
        if (!strcmp(keys[i].path, path)) return &keys[i];
    return NULL;
}

/* The section a key belongs to, or NULL at the top level. */
static const key_spec *section_of(const key_spec *k)
{
    const char *dot = strrchr(k->path, '.');
    size_t n = dot ? (size_t)(dot - k->path) : 0;
    for (size_t i = 0; dot && i < NKEYS; i++)
        if (!strncmp(keys[i].path, k->path, n) && !keys[i].path[n]) return &keys[i];
    return NULL;
}

static void *field_of(const mk_config *cfg, size_t off)
{
    return off == NO_FIELD ? NULL : (char *)cfg + off;
}

/* ------------------------------------------------------ did you mean --- */

/* The closest known key, when close enough to be a likely typo. */
static const char *suggest(const char *path)
{
    const char *best = NULL;
    size_t bestd = (size_t)-1;
    for (size_t i = 0; i < NKEYS; i++) {
        size_t d = mk_edit_distance(path, keys[i].path);
        if (d < bestd) bestd = d, best = keys[i].path;
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
} ctx;

static mk_err entry_path(const ctx *c, const node *e, const char *prefix, char *path, size_t size)
{
    if (strchr(e->key, '.'))
        return fail_node(c->source, e, 1, "key '%s' holds a '.'; write nested keys indented "
                                          "under their section instead", e->key);
    snprintf(path, size, "%s%s%s", prefix, *prefix ? "." : "", e->key);
    return MK_OK;
}

static mk_err check_duplicate(const ctx *c, const node *map, const node *e, const char *path)
{
    for (const node *d = map->kids; d != e; d = d->next)
        if (!strcmp(d->key, e->key))
            return fail_node(c->source, e, 1, "duplicate key '%s' (first given at line %d)",
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
            return fail_node(c->source, e, 1, "%s", msg);
        }
        if (k->kind == K_MAP && e->kind == N_MAP) MK_TRY(check_keys(c, e, path));
    }
    return MK_OK;
}

/* ------------------------------------------------- values -> fields --- */

static mk_err need_scalar(const ctx *c, const key_spec *k, const node *n, const char *what)
{
    if (n->kind == N_SCALAR) return MK_OK;
    return fail_node(c->source, n, 0, "'%s' must be %s, got %s", k->path, what, kind_word(n));
}

static mk_err conv_bool(const ctx *c, const key_spec *k, const node *n, int *field);

static mk_err conv_map(const ctx *c, const key_spec *k, const node *n, int *given)
{
    if (k->switchable && n->kind == N_SCALAR) return conv_bool(c, k, n, given);
    if (n->kind != N_MAP)
        return fail_node(c->source, n, 0, "'%s' must be a mapping of keys, got %s", k->path,
                         kind_word(n));
    if (given) *given = 1;
    return MK_OK;
}

static mk_err conv_string(const ctx *c, const key_spec *k, const node *n, char **field)
{
    MK_TRY(need_scalar(c, k, n, "a string"));
    if (!*n->text && !k->empty_ok) return fail_node(c->source, n, 0, "'%s' must not be empty", k->path);
    return dup_into(field, n->text, strlen(n->text));
}

static mk_err add_entry(const ctx *c, const key_spec *k, const node *n, char **items, int *count)
{
    if (n->kind != N_SCALAR)
        return fail_node(c->source, n, 0, "'%s' must be a list of strings, got %s in it",
                         k->path, kind_word(n));
    if (!*n->text || n->null)
        return fail_node(c->source, n, 0, "'%s' must not have empty entries", k->path);
    MK_TRY(dup_into(&items[*count], n->text, strlen(n->text)));
    ++*count;
    return MK_OK;
}

/* A list of non-empty strings; a single string is a one-entry list. */
static mk_err conv_list(const ctx *c, const key_spec *k, const node *n, char ***items, int *count)
{
    if (n->kind == N_MAP)
        return fail_node(c->source, n, 0, "'%s' must be a list of strings, got a mapping", k->path);
    size_t len = 0;
    for (const node *i = n->kids; i; i = i->next) len++;
    if (n->kind == N_SEQ && len == 0)
        return fail_node(c->source, n, 0, "'%s' must list at least one entry", k->path);
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
        return fail_node(c->source, n, 0, "'%s' must be an integer, got '%s'", k->path, n->text);
    errno = 0;
    long long v = strtoll(n->text, NULL, 10);
    if (errno == ERANGE && v > 0)
        return fail_node(c->source, n, 0, "'%s' must be an integer of at most %lld, got '%s'",
                         k->path, v, n->text);
    if (v < k->min)
        return fail_node(c->source, n, 0, "'%s' must be at least %" PRId64 ", got '%s'", k->path,
                         k->min, n->text);
    *field = v;
    return MK_OK;
}

static mk_err conv_u64(const ctx *c, const key_spec *k, const node *n, uint64_t *field)
{
    MK_TRY(need_scalar(c, k, n, "an integer"));
    errno = 0;
    unsigned long long v = is_decimal(n->text, 0) ? strtoull(n->text, NULL, 10) : 0;
    if (!is_decimal(n->text, 0) || errno == ERANGE)
        return fail_node(c->source, n, 0, "'%s' must be an integer from 0 to %" PRIu64 ", got '%s'",
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
    return fail_node(c->source, n, 0, "'%s' must be true or false, got '%s'", k->path, n->text);
}

static void join_choices(const key_spec *k, char *buf, size_t size)
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
    join_choices(k, list, sizeof list);
    return fail_node(c->source, n, 0, "'%s' must be one of %s, got '%s'", k->path, list, n->text);
}

static mk_err conv_double(const ctx *c, const key_spec *k, const node *n, double *field)
{
    MK_TRY(need_scalar(c, k, n, "a number"));
    char *end;
    errno = 0;
    double v = strtod(n->text, &end);
    if (end == n->text || *end || (errno == ERANGE && fabs(v) >= 1.0) || !isfinite(v)) /* underflow is a value */
        return fail_node(c->source, n, 0, "'%s' must be a finite number, got '%s'", k->path, n->text);
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
    return fail_node(c->source, f, 1, "unknown key '%s' (a model has file, name and layers%s%s%s)", path,
                     near ? "; did you mean '" : "", near ? near : "", near ? "'?" : "");
}

/* One entry of `models:`, converted as x's keys are and named in messages
 * as models[I].KEY. */
static mk_err conv_model(const ctx *c, const node *e, int i, mk_model_cfg *m)
{
    char path[MK_PATH_MAX];
    if (e->kind != N_MAP)
        return fail_node(c->source, e, 0, "'models[%d]' must be a mapping with the keys file, name and layers, got %s",
                         i, kind_word(e));
    for (const node *f = e->kids; f; f = f->next) {
        snprintf(path, sizeof path, "models[%d].%s", i, f->key);
        MK_TRY(model_key_known(c, e, f, path));
    }
    static const char *const like[] = {"x.file", "x.name", "x.layers"};
    for (int k = 0; k < 3; k++) {
        key_spec spec = *find_key(like[k]);
        snprintf(path, sizeof path, "models[%d].%s", i, model_fields[k]);
        spec.path = path;
        const node *v = *map_slot((node *)e, model_fields[k], strlen(model_fields[k]));
        if (v && v->null) return fail_node(c->source, v, 0, "'%s' has no value", path);
        if (!v && k == 1) MK_TRY(default_model_name(m->files[0], &m->name));
        else if (!v) return fail_node(c->source, e, 0, "missing required key '%s'", path);
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
        return fail_node(c->source, n, 0, "'models' must be a list of models (each a mapping with the keys file, "
                         "name and layers), got %s", n->kind == N_SEQ ? "an empty list" : kind_word(n));
    mk_err err = MK_OK;
    *models = mk_calloc(len, sizeof **models, "the models", &err);
    if (err) return err;
    int i = 0;
    for (const node *e = n->kids; e; e = e->next, i++) {
        ++*count; /* before converting: a half-converted entry is freed too */
        MK_TRY(conv_model(c, e, i, &(*models)[i]));
        for (int j = 0; j < i; j++)
            if (!strcmp((*models)[j].name, (*models)[i].name))
                return fail_node(c->source, e, 0, "models[%d] and models[%d] are both named '%s': give each model "
                                 "its own name (key 'name')", j, i, (*models)[i].name);
    }
    return MK_OK;
}

static mk_err convert(const ctx *c, const key_spec *k, const node *n)
{
    void *f = field_of(c->cfg, k->off);
    switch (k->kind) {
    case K_MAP: return conv_map(c, k, n, f);
    case K_STRING: return conv_string(c, k, n, f);
    case K_LIST: return conv_list(c, k, n, f, field_of(c->cfg, k->off_count));
    case K_INT: return conv_int(c, k, n, f);
    case K_BOOL: return conv_bool(c, k, n, f);
    case K_U64: return conv_u64(c, k, n, f);
    case K_ENUM: return conv_enum(c, k, n, f);
    case K_DOUBLE: return conv_double(c, k, n, f);
    case K_MODELS: return conv_models(c, n, f, field_of(c->cfg, k->off_count));
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
    return dup_into(name, base, n);
}

static mk_err default_name(const ctx *c, const key_spec *k)
{
    char **const *list = field_of(c->cfg, find_key(k->def_from)->off);
    if (!*list) return mk_fail(MK_EINTERNAL, "'%s' is needed before '%s'", k->def_from, k->path);
    return default_model_name((*list)[0], field_of(c->cfg, k->off));
}

static mk_err apply_default(const ctx *c, const key_spec *k)
{
    const key_spec *s = section_of(k);
    if (k->required && s && !s->required)
        return fail_at(c->source, NULL, 0, "missing required key '%s' (required when '%s' is given)",
                       k->path, s->path);
    if (k->required) return fail_at(c->source, NULL, 0, "missing required key '%s'", k->path);
    if (k->def_from) return default_name(c, k);
    if (!k->def) return MK_OK;
    node d = {.kind = N_SCALAR, .text = (char *)k->def};
    return convert(c, k, &d);
}

static mk_err apply_key(const ctx *c, const key_spec *k, const node *n)
{
    if (!n || (n->null && k->kind == K_MAP && !k->required)) return apply_default(c, k);
    if (n->null) return fail_node(c->source, n, 0, "'%s' has no value", k->path);
    return convert(c, k, n);
}

/* Table order puts a section before its keys, so its absence is known here. */
static int section_given(const mk_config *cfg, const key_spec *s);

static mk_err apply_keys(const ctx *c)
{
    for (size_t i = 0; i < NKEYS; i++) {
        const key_spec *s = section_of(&keys[i]);
        if (s) {
            const node *sec = tree_get(c->root, s->path);
            int on = s->switchable ? section_given(c->cfg, s) : sec && sec->kind == N_MAP;
            if (!on) continue;
        }
        MK_TRY(apply_key(c, &keys[i], tree_get(c->root, keys[i].path)));
    }
    return MK_OK;
}

/* Keys valid alone but not together: named with their line where given. */
static mk_err key_fail(const ctx *c, const char *path, const char *msg)
{
    const node *n = tree_get(c->root, path);
    return n ? fail_node(c->source, n, 1, "%s", msg) : fail_at(c->source, NULL, 0, "%s", msg);
}

/* Before the other keys: without models, nothing else matters. */
static mk_err check_models_given(const ctx *c)
{
    const node *x = tree_get(c->root, "x");
    if (x && x->null) return fail_node(c->source, x, 0, "'x' has no value");
    if (!x && !tree_get(c->root, "models"))
        return fail_at(c->source, NULL, 0, "missing required key 'x' (or a 'models' list)");
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

static mk_err check_combinations(const ctx *c)
{
    const mk_config *cfg = c->cfg;
    MK_TRY(check_models(c));
    if (!(cfg->rbf_threshold >= 1e-150 && cfg->rbf_threshold <= 1e150)) /* its square scales every distance */
        return key_fail(c, "rbf_threshold", "'rbf_threshold' must be between 1e-150 and 1e150");
    if (cfg->jackknife == 1)
        return key_fail(c, "jackknife", "'jackknife' is 0 (no standard errors) or at least 2 groups");
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
    node **slot = map_slot(map, key, n);
    node *e = *slot;
    mk_err err = MK_OK;
    if (e && e->kind == N_MAP) {
        *out = e;
        return MK_OK;
    }
    if (e && !e->null)
        return fail_node(c->source, e, 0, "'%.*s' must be a mapping of keys, got %s", (int)n, key,
                         kind_word(e));
    node *sec = mk_calloc(1, sizeof *sec, "the configuration tree", &err);
    if (!sec) return err;
    if ((err = dup_into(&sec->key, key, n))) {
        free(sec);
        return err;
    }
    sec->kind = N_MAP;
    sec->set = arg;
    if (e) { /* a null "y:" in the file: the override gives it keys */
        sec->next = e->next;
        e->next = NULL;
        node_free(e);
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
    if (!err) err = dup_into(&v->key, path, len);
    if (err) {
        node_free(v);
        return err;
    }
    node **slot = map_slot(map, path, len);
    if (*slot) {
        v->next = (*slot)->next;
        (*slot)->next = NULL;
        node_free(*slot);
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
        return fail_at(c->source, arg, 0, "%s", msg);
    }
    if ((*k)->kind == K_MAP && !(*k)->switchable)
        return fail_at(c->source, arg, 0, "'%s' is a section; set its keys one by one, such as '%s'",
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
    MK_TRY(parse_tree(eq + 1, strlen(eq + 1), c->source, arg, &v));
    if (!v) return mk_fail(MK_EUSAGE, "--set '%s': the value is empty", arg);
    return tree_put(c, k->path, v, arg);
}

/* ------------------------------------------------------- resolved YAML --- */

/* Writes one character of s, escaped when a double-quoted YAML scalar would
 * refuse it or read it as a line break; returns its length in bytes. */
static size_t emit_char(FILE *f, const unsigned char *p)
{
    if (*p < 0x80) {
        if (*p == '"' || *p == '\\') fprintf(f, "\\%c", *p);
        else if (*p == '\n') fputs("\\n", f);
        else if (*p == '\t') fputs("\\t", f);
        else if (*p < 0x20 || *p == 0x7f) fprintf(f, "\\x%02X", *p);
        else fputc(*p, f);
        return 1;
    }
    size_t n = *p < 0xE0 ? 2 : *p < 0xF0 ? 3 : 4;
    for (size_t i = 1; i < n; i++)
        if ((p[i] & 0xC0) != 0x80) n = 1; /* not UTF-8 (libyaml never hands us this) */
    uint32_t cp = (uint32_t)(*p & (0x7F >> n));
    for (size_t i = 1; i < n; i++) cp = cp << 6 | (p[i] & 0x3F);
    int odd = (cp >= 0x80 && cp <= 0x9F) || cp == 0x2028 || cp == 0x2029 || cp == 0xFEFF ||
              cp == 0xFFFE || cp == 0xFFFF;
    if (odd && n > 1) fprintf(f, "\\u%04" PRIX32, cp);
    else fwrite(p, 1, n, f);
    return n;
}

static void emit_quoted(FILE *f, const char *s)
{
    fputc('"', f);
    for (const unsigned char *p = (const unsigned char *)s; *p;) p += emit_char(f, p);
    fputc('"', f);
}

static void emit_list(FILE *f, char *const *items, int count, int scalar_one)
{
    if (scalar_one && count == 1) {
        fputc(' ', f);
        emit_quoted(f, items[0]);
        return;
    }
    fputs(" [", f);
    for (int i = 0; i < count; i++) {
        fputs(i ? ", " : "", f);
        emit_quoted(f, items[i]);
    }
    fputc(']', f);
}

/* A block sequence of mappings, one model each. */
static void emit_models(FILE *f, const mk_model_cfg *models, int count)
{
    for (int i = 0; i < count; i++) {
        fputs("\n  - file:", f);
        emit_list(f, models[i].files, models[i].nfiles, 1);
        fputs("\n    name: ", f);
        emit_quoted(f, models[i].name);
        fputs("\n    layers:", f);
        emit_list(f, models[i].layers, models[i].nlayers, 0);
    }
}

static void emit_value(FILE *f, const key_spec *k, const mk_config *cfg)
{
    const void *v = field_of(cfg, k->off);
    switch (k->kind) {
    case K_MAP:
        if (k->switchable && !*(const int *)v) fputs(" false", f);
        break;
    case K_STRING:
        fputc(' ', f);
        emit_quoted(f, *(char *const *)v);
        break;
    case K_LIST: emit_list(f, *(char **const *)v, *(const int *)field_of(cfg, k->off_count), k->scalar_one); break;
    case K_MODELS: emit_models(f, *(mk_model_cfg *const *)v, *(const int *)field_of(cfg, k->off_count)); break;
    case K_INT: fprintf(f, " %" PRId64, *(const int64_t *)v); break;
    case K_BOOL: fputs(*(const int *)v ? " true" : " false", f); break;
    case K_U64: fprintf(f, " %" PRIu64, *(const uint64_t *)v); break;
    case K_ENUM: fprintf(f, " %s", k->choices[*(const int *)v]); break;
    case K_DOUBLE: fprintf(f, " %.17g", *(const double *)v); break;
    }
}

static int section_given(const mk_config *cfg, const key_spec *s)
{
    return !s || s->off == NO_FIELD || *(const int *)field_of(cfg, s->off);
}

static mk_err write_resolved(mk_config *cfg)
{
    char *buf = NULL;
    size_t size = 0;
    FILE *f = open_memstream(&buf, &size);
    if (!f) return mk_fail(MK_ENOMEM, "out of memory writing the resolved configuration");
    fputs("# mpicka resolved configuration\n", f);
    for (size_t i = 0; i < NKEYS; i++) {
        const key_spec *k = &keys[i], *s = section_of(k);
        if (!section_given(cfg, k->kind == K_MAP && !k->switchable ? k : s)) continue;
        if (k->kind == K_MODELS && !cfg->models) continue;
        const char *leaf = strrchr(k->path, '.');
        fprintf(f, "%s%s:", s ? "  " : "", leaf ? leaf + 1 : k->path);
        emit_value(f, k, cfg);
        fputc('\n', f);
    }
    int bad = ferror(f);
    if (fclose(f) || bad) {
        free(buf);
        return mk_fail(MK_ENOMEM, "out of memory writing the resolved configuration");
    }
    cfg->resolved = buf;
    return MK_OK;
}

/* The next line of a resolved text that matters for a comparison, or NULL. */
static const char *next_line(const char *s, size_t *len)
{
    while (s && *s) {
        size_t n = strcspn(s, "\n");
        if (s[0] != '#' && strncmp(s, "output:", 7)) {
            *len = n;
            return s;
        }
        s += n + (s[n] == '\n');
    }
    *len = 0;
    return NULL;
}

int mk_config_first_difference(const char *ra, const char *rb, char *a, char *b, size_t len)
{
    size_t na, nb;
    for (;;) {
        ra = next_line(ra, &na);
        rb = next_line(rb, &nb);
        if (!ra && !rb) return 0;
        if (!ra || !rb || na != nb || strncmp(ra, rb, na)) break;
        ra += na + (ra[na] == '\n');
        rb += nb + (rb[nb] == '\n');
    }
    snprintf(a, len, "%.*s", (int)na, ra ? ra : "(end)");
    snprintf(b, len, "%.*s", (int)nb, rb ? rb : "(end)");
    if (!ra) snprintf(a, len, "(no more keys)");
    if (!rb) snprintf(b, len, "(no more keys)");
    return 1;
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
    MK_TRY(parse_tree(text ? text : "", text ? len : 0, c->source, NULL, &c->root));
    if (!c->root || (c->root->kind == N_SCALAR && c->root->null))
        return fail_at(c->source, NULL, 0, "the configuration is empty");
    if (c->root->kind != N_MAP)
        return fail_node(c->source, c->root, 0, "the configuration must be a mapping of keys, got %s",
                         kind_word(c->root));
    return MK_OK;
}

mk_err mk_config_parse(const char *text, size_t len, const char *source, char *const *sets,
                       int nsets, mk_config *cfg)
{
    memset(cfg, 0, sizeof *cfg);
    ctx c = {.source = source ? source : "<config>", .cfg = cfg};
    mk_err err;
    MK_GOTO(read_root(&c, text, len), fail);
    for (int i = 0; i < nsets; i++) MK_GOTO(apply_set(&c, sets[i]), fail);
    MK_GOTO(check_keys(&c, c.root, ""), fail);
    MK_GOTO(check_models_given(&c), fail);
    MK_GOTO(apply_keys(&c), fail);
    MK_GOTO(check_combinations(&c), fail);
    derive_models(cfg);
    MK_GOTO(write_resolved(cfg), fail);
    node_free(c.root);
    return MK_OK;
fail:
    node_free(c.root);
    mk_config_free(cfg);
    return err;
}

void mk_config_free(mk_config *cfg)
{
    if (!cfg) return;
    for (size_t i = 0; i < NKEYS; i++) {
        const key_spec *k = &keys[i];
        if (k->kind == K_STRING) free(*(char **)field_of(cfg, k->off));
        if (k->kind == K_LIST) free_strings(*(char ***)field_of(cfg, k->off), *(int *)field_of(cfg, k->off_count));
    }
    for (int i = 0; i < cfg->nmodels; i++) {
        free_strings(cfg->models[i].files, cfg->models[i].nfiles);
        free_strings(cfg->models[i].layers, cfg->models[i].nlayers);
        free(cfg->models[i].name);
    }
    free(cfg->models);
    free(cfg->resolved);
    memset(cfg, 0, sizeof *cfg);
}

/* ------------------------------------------------------------- files --- */

/* The whole stream; stops past MK_CONFIG_MAX so a huge file costs little. */
static mk_err read_all(FILE *f, const char *path, char **out, size_t *len)
{
    size_t cap = 4096, n = 0;
    char *buf = malloc(cap);
    while (buf) {
        n += fread(buf + n, 1, cap - n - 1, f);
        if (n < cap - 1 || n > MK_CONFIG_MAX) break; /* end, error or too large */
        char *bigger = realloc(buf, cap * 2);
        if (!bigger) free(buf);
        buf = bigger;
        cap *= 2;
    }
    if (!buf) return mk_fail(MK_ENOMEM, "out of memory reading config '%s'", path);
    buf[n] = '\0';
    *out = buf;
    *len = n;
    if (ferror(f)) return mk_fail(MK_EIO, "cannot read config '%s': %s", path, strerror(errno));
    return MK_OK;
}

static mk_err check_text(const char *path, const char *text, size_t len)
{
    if (len > MK_CONFIG_MAX)
        return mk_fail(MK_ECONFIG, "config '%s' is larger than %zu MiB; is it the right file?",
                       path, MK_CONFIG_MAX >> 20);
    const char *nul = memchr(text, '\0', len);
    if (nul)
        return mk_fail(MK_ECONFIG, "config '%s' holds a NUL byte (at offset %zu); is it a text file?",
                       path, (size_t)(nul - text));
    return MK_OK;
}

mk_err mk_read_text_file(const char *path, char **text, size_t *len)
{
    *text = NULL;
    *len = 0;
    FILE *f = fopen(path, "rb");
    if (!f) return mk_fail(MK_EIO, "cannot read config '%s': %s", path, strerror(errno));
    struct stat st;
    char *buf = NULL;
    size_t n = 0;
    mk_err err = MK_OK;
    if (fstat(fileno(f), &st) != 0)
        err = mk_fail(MK_EIO, "cannot read config '%s': %s", path, strerror(errno));
    else if (S_ISDIR(st.st_mode)) /* fopen() opens folders; say why reading one fails */
        err = mk_fail(MK_EIO, "cannot read config '%s': %s", path, strerror(EISDIR));
    if (!err) err = read_all(f, path, &buf, &n);
    fclose(f);
    if (!err) err = check_text(path, buf, n);
    if (err) {
        free(buf);
        return err;
    }
    *text = buf;
    *len = n;
    return MK_OK;
}

/* ---------------------------------------------------------- reference --- */

static void describe_kind(const key_spec *k, char *buf, size_t size)
{
    char list[128];
    switch (k->kind) {
    case K_MAP: snprintf(buf, size, k->switchable ? "section, or false" : "section"); break;
    case K_STRING: snprintf(buf, size, "string"); break;
    case K_LIST: snprintf(buf, size, k->scalar_one ? "string or list of strings" : "list of strings"); break;
    case K_INT: snprintf(buf, size, "integer >= %" PRId64, k->min); break;
    case K_BOOL: snprintf(buf, size, "true or false"); break;
    case K_U64: snprintf(buf, size, "unsigned integer"); break;
    case K_DOUBLE: snprintf(buf, size, "number"); break;
    case K_MODELS: snprintf(buf, size, "list of models"); break;
    case K_ENUM:
        join_choices(k, list, sizeof list);
        snprintf(buf, size, "one of %s", list);
        break;
    }
}

static void describe_default(const key_spec *k, char *buf, size_t size)
{
    const key_spec *s = section_of(k);
    if (k->required && s && !s->required) snprintf(buf, size, "required in %s", s->path);
    else if (k->required) snprintf(buf, size, "required");
    else if (k->def_from) snprintf(buf, size, "default: base name of %s", k->def_from);
    else if (k->def) snprintf(buf, size, "default: %s", k->def);
    else snprintf(buf, size, "optional");
}

void mk_config_print_reference(FILE *out)
{
    fputs("Configuration keys (YAML; keys of a section are indented under it, and any key\n"
          "can be overridden with --set KEY=VALUE, e.g. --set batch_size=512 or\n"
          "--set \"x.layers=[conv1, 'layer1/*']\"):\n\n",
          out);
    for (size_t i = 0; i < NKEYS; i++) {
        char kind[160], need[160];
        describe_kind(&keys[i], kind, sizeof kind);
        describe_default(&keys[i], need, sizeof need);
        fprintf(out, "  %-12s %-26s %s\n      %s\n", keys[i].path, kind, need, keys[i].help);
    }
}
