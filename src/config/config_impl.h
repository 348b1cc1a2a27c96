/* Private to src/config: the tree the YAML is read into (yamltree.c), the key
 * table that drives the conversions (config.c), and what the emitter
 * (emit.c) reads of both. One naming rule: what this header declares with
 * external linkage is named mk__* (two underscores: not part of the API in
 * include/, and clear of other files' names in the library). */
#ifndef MPICKA_CONFIG_IMPL_H
#define MPICKA_CONFIG_IMPL_H

#include <stddef.h>
#include <stdio.h>
#include <stdint.h>

#include "mpicka/config.h"

#define MK_PATH_MAX 256 /* longest dotted key we look up */
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

void mk__node_free(node *n);
const char *mk__kind_word(const node *n);
/* The entry slot for key[0..n) in map: the pointer to it, or the empty tail. */
node **mk__map_slot(node *map, const char *key, size_t n);
/* The value at a dotted path, or NULL. Keys holding '.' never get this far. */
node *mk__tree_get(node *root, const char *path);
/* YAML text -> tree. `set` is the override the text is the value of, or NULL. */
mk_err mk__parse_tree(const char *text, size_t len, const char *source, const char *set, node **root);

/* Prefix + message: "SOURCE:LINE: ..." for values from the file, "--set ARG:
 * ..." for values from an override, "SOURCE: ..." when line is 0. */
__attribute__((format(printf, 4, 5)))
mk_err mk__fail_at(const char *source, const char *set, int line, const char *fmt, ...);
/* An error about a node's value (its line) or about its key (the key's line). */
__attribute__((format(printf, 4, 5)))
mk_err mk__fail_node(const char *source, const node *n, int at_key, const char *fmt, ...);
/* *field = a copy of s[0..n); MK_ENOMEM when out of memory. */
mk_err mk__dup_into(char **field, const char *s, size_t n);

/* ----------------------------------------------------------- key table --- */

typedef enum { K_MAP, K_STRING, K_LIST, K_INT, K_BOOL, K_U64, K_ENUM, K_DOUBLE, K_MODELS, K_MEASURES } key_kind;

typedef struct {
    const char *path;           /* dotted; a section comes right before its keys */
    key_kind kind;
    int required;               /* in a section: required when the section is given */
    int switchable;             /* K_MAP: on by default (defaults apply), `false` turns it off */
    int empty_ok;               /* K_STRING: "" is a value */
    int scalar_one;             /* K_LIST: one entry is echoed (and documented) as a plain string */
    const char *def;            /* default as YAML text, NULL: none */
    const char *def_from;       /* K_STRING: default is that key's base name */
    int64_t min, max;           /* K_INT: its bounds; max 0: none but int64's */
    double lo, hi;              /* K_DOUBLE: its bounds; both 0: none */
    const char *const *choices; /* K_ENUM: NULL-terminated; the index is stored */
    size_t off;                 /* the field; for K_MAP its "given" flag or NO_FIELD */
    size_t off_count;           /* K_LIST, K_MODELS: its int count */
    const char *help;
} key_spec;

#define NO_FIELD ((size_t)-1)

extern const key_spec mk__keys[]; /* in the order of the resolved YAML and --help */
extern const size_t mk__nkeys;

/* The section a key belongs to, or NULL at the top level. */
const key_spec *mk__section_of(const key_spec *k);
/* The field at offset off of cfg; NULL for NO_FIELD. */
void *mk__field_of(const mk_config *cfg, size_t off);
/* Whether the keys of section s (NULL: the top level) are in use. */
int mk__section_given(const mk_config *cfg, const key_spec *s);
/* A K_ENUM's choices as "a, b, c" into buf. */
void mk__join_choices(const key_spec *k, char *buf, size_t size);

/* ------------------------------------------------------------ measures --- */

/* measures_cfg.c: the `measures:` list (a name, or a one-entry mapping of a
 * name to its parameters, per item) into cfg->measures; its resolved YAML;
 * and the check that the estimator can give them. */
mk_err mk__conv_measures(const char *source, const node *n, mk_config *cfg);
void mk__emit_measures(FILE *f, const mk_config *cfg);
mk_err mk__check_measures(const char *source, const node *n, const mk_config *cfg);

/* ---------------------------------------------------------------- emit --- */

/* cfg->resolved = every key with its final value, as YAML. */
mk_err mk__write_resolved(mk_config *cfg);
/* The top-level keys of a run from files that a library session refuses
 * when given (config.c), and leaves out of its resolved YAML (emit.c), so
 * that a session's resolved config parses back as a session's. */
int mk__file_only_key(const char *path);

#endif
