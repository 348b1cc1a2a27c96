/* The configuration's text in: the file read whole, then libyaml's events
 * built into the private tree (config_impl.h) that overrides edit and the
 * key table reads. Errors name the line (or the --set argument) a value
 * came from, with hints for libyaml's likeliest slips. */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <yaml.h>

#include "config_impl.h"
#include "mpicka/file.h"

#define MK_CONFIG_MAX ((size_t)16 << 20) /* a config is a page of text, not data */
#define MK_DEPTH_MAX 32                   /* the schema nests 2 deep; this stops runaways */

/* ---------------------------------------------------------------- tree --- */

void mk__node_free(node *n)
{
    while (n) {
        node *next = n->next;
        mk__node_free(n->kids);
        free(n->key);
        free(n->text);
        free(n);
        n = next;
    }
}

const char *mk__kind_word(const node *n)
{
    return n->kind == N_MAP ? "a mapping" : n->kind == N_SEQ ? "a list" : "a single value";
}

static int is_null_word(const char *s)
{
    return !*s || !strcmp(s, "~") || !strcmp(s, "null") || !strcmp(s, "Null") || !strcmp(s, "NULL");
}

/* The entry slot for key[0..n) in map: the pointer to it, or the empty tail. */
node **mk__map_slot(node *map, const char *key, size_t n)
{
    node **s = &map->kids;
    for (; *s; s = &(*s)->next)
        if (!strncmp((*s)->key, key, n) && !(*s)->key[n]) break;
    return s;
}

/* The value at a dotted path, or NULL. Keys holding '.' never get this far. */
node *mk__tree_get(node *root, const char *path)
{
    node *n = root;
    while (n && n->kind == N_MAP) {
        size_t len = strcspn(path, ".");
        n = *mk__map_slot(n, path, len);
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
mk_err mk__fail_at(const char *source, const char *set, int line, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    mk_err err = vfail_at(source, set, line, fmt, ap);
    va_end(ap);
    return err;
}

/* An error about a node's value (its line) or about its key (the key's line). */
__attribute__((format(printf, 4, 5)))
mk_err mk__fail_node(const char *source, const node *n, int at_key, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    mk_err err = vfail_at(source, n->set, at_key ? n->key_line : n->line, fmt, ap);
    va_end(ap);
    return err;
}

mk_err mk__dup_into(char **field, const char *s, size_t n)
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
        return mk__fail_at(r->source, r->set, mark_line(r, &ev->start_mark),
                       "NUL characters are not allowed");
    return mk__dup_into(text, v, len);
}

static mk_err scalar_node(const reader *r, const yaml_event_t *ev, node **out)
{
    mk_err err = MK_OK;
    node *n = node_new(r, N_SCALAR, ev, &err);
    if (!n) return err;
    err = scalar_text(r, ev, &n->text);
    if (err) {
        mk__node_free(n);
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
        err = mk__fail_at(r->source, r->set, *line, "keys must be plain strings");
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
        return mk__fail_at(r->source, r->set, mark_line(r, &start->start_mark),
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
        mk__node_free(n);
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
        return mk__fail_at(r->source, r->set, mark_line(r, &ev->start_mark),
                       "'&%s' is an anchor with no value" MK_QUOTE_GLOBS, anchor_of(ev));
    switch (ev->type) {
    case YAML_SCALAR_EVENT: return scalar_node(r, ev, out);
    case YAML_SEQUENCE_START_EVENT: return collection(r, ev, N_SEQ, depth, out);
    case YAML_MAPPING_START_EVENT: return collection(r, ev, N_MAP, depth, out);
    case YAML_ALIAS_EVENT:
        return mk__fail_at(r->source, r->set, mark_line(r, &ev->start_mark),
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
    if (!is_end) return mk__fail_at(r->source, r->set, line, "only one YAML document is allowed");
    return MK_OK;
}

/* YAML text -> tree. `set` is the override the text is the value of, or NULL. */
mk_err mk__parse_tree(const char *text, size_t len, const char *source, const char *set,
                         node **root)
{
    reader r = {.source = source, .set = set, .text = text};
    *root = NULL;
    if (!yaml_parser_initialize(&r.yp)) return mk_fail(MK_ENOMEM, "out of memory reading YAML");
    yaml_parser_set_input_string(&r.yp, (const unsigned char *)text, len);
    mk_err err = read_stream(&r, root);
    yaml_parser_delete(&r.yp);
    if (err) {
        mk__node_free(*root);
        *root = NULL;
    }
    return err;
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
    int fd;
    MK_TRY(mk_open_regular(path, "config", MK_EIO, &fd)); /* a FIFO would block, a folder read as empty */
    FILE *f = fdopen(fd, "rb");
    if (!f) {
        close(fd);
        return mk_fail(MK_EIO, "cannot read config '%s': %s", path, strerror(errno));
    }
    char *buf = NULL;
    size_t n = 0;
    mk_err err = read_all(f, path, &buf, &n);
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
