/* The run configuration: YAML file + --set overrides -> validated mk_config.
 *
 * One table of keys (in config.c) drives parsing, validation, defaults, the
 * "unknown key, did you mean" error, the reference printed by --help and the
 * resolved YAML echoed into every result. Not collective: the driver has
 * rank 0 read the file and broadcast the text; every rank parses that text. */
#ifndef MPICKA_CONFIG_H
#define MPICKA_CONFIG_H

#include <stdint.h>
#include <stdio.h>

#include "mpicka/error.h"
#include "mpicka/estimator.h"
#include "mpicka/measures.h"
#include "mpicka/plot.h"

typedef struct {
    char **files;   /* HDF5 paths or glob patterns as written (relative to the working
                       directory): shards concatenated along the example axis, in order */
    int nfiles;     /* >= 1 */
    char *name;     /* display name; default: first file's base name without extension
                       (and without a "-<rank>-of-<world>" shard suffix) */
    char **layers;  /* dataset paths or glob patterns, in the order given */
    int nlayers;    /* >= 1 */
    /* Set from the top-level keys (not keys of the model's own section): */
    const char *ids;/* the sample-ID dataset, never a layer of a glob (NULL: "ids") */
    int check_ids;  /* `ids` is on: read and check the IDs dataset when present */
    int order;      /* layer_order: mk_layer_order (mpicka/source.h), 0 auto */
} mk_model_cfg;

/* Sample IDs: x's and y's must agree, batch by batch. */
typedef struct {
    int enabled;    /* default 1; `ids: false` turns the check off */
    char *dataset;  /* default "ids" */
} mk_ids_cfg;

/* The heatmap `mpicka run` draws beside cka.h5: its file, and how it looks
 * in the struct `mpicka plot` fills from its options (mpicka/plot.h). */
typedef struct {
    int enabled;           /* default 1; `plot: false` turns it off */
    char *file;            /* default "cka.png"; .svg and .pdf work too */
    /* Defaults as mk_plot_opts_default, except the title: the config's "" (its
     * default) asks for the default title, "X vs Y". The config owns the title. */
    mk_plot_opts style;
} mk_plot_cfg;

/* Periodic checkpoints in the output folder (a signal always writes one). */
typedef struct {
    int enabled;       /* default 1; `checkpoint: false` turns periodic ones off */
    int64_t every;     /* batches between checkpoints, 0: not by count (default) */
    int64_t seconds;   /* seconds between checkpoints, 0: not by time (default 600) */
} mk_checkpoint_cfg;

typedef struct {
    mk_model_cfg x;        /* valid only when has_x */
    mk_model_cfg y;        /* valid only when has_y */
    int has_x;             /* x given: then `models` is not */
    int has_y;             /* 0: x is compared with itself */
    mk_model_cfg *models;  /* the `models:` list (unique names), or NULL: x (and y) */
    int nmodels;
    int64_t batch_size;    /* MK_MIN_BATCH..MK_MAX_BATCH (4..46341, mpicka/plan.h), default 256 */
    int64_t epochs;        /* >= 1, default 1 */
    int shuffle;           /* default 0 */
    int64_t shuffle_block; /* >= 1, default 1: examples shuffled together (mk_plan_set_block) */
    uint64_t seed;         /* default 0 */
    mk_precision precision;/* default float64 */
    mk_estimator estimator;/* default hsic1 */
    mk_kernel kernel;      /* default linear */
    double rbf_threshold;  /* 1e-150..1e150, default 1: RBF bandwidth as a fraction of the median distance */
    int debiased;          /* exact: HSIC_1 on the full data (default) or Kornblith's biased CKA */
    int64_t jackknife;     /* groups of batches for the standard errors (0: none; default 20) */
    int64_t permutations;  /* permutations of y per batch for the p-values (default 0: none) */
    char *output;          /* output folder, required */
    int64_t progress_seconds; /* >= 0, default 30: progress line interval in a log */
    int64_t threads;       /* per rank for Grams and pairs; 0 (default): SLURM_CPUS_PER_TASK, else 1 */
    mk_plot_cfg plot;
    mk_checkpoint_cfg checkpoint;
    mk_ids_cfg ids;
    int layer_order;       /* 0 auto (default), 1 creation, 2 natural (mk_layer_order) */
    mk_measure *measures;  /* the `measures:` list, each kind once (NULL: none, CKA only); any but
                              cka needs estimator exact */
    int nmeasures;
    char *resolved;        /* every key with its final value, as YAML that parses back to this config */
    int session;           /* parsed by mk_config_parse_session: resolved leaves out the keys of files */
} mk_config;

/* The models of a config in order: x (and y), or the `models:` list. */
int mk_config_nmodels(const mk_config *cfg);
const mk_model_cfg *mk_config_model(const mk_config *cfg, int k);

/* Parse YAML text. `source` names it in messages (the config path). `sets` are
 * "dotted.key=VALUE" overrides applied after the file, VALUE parsed as YAML
 * (so "[a, b]" is a list). cfg needs no initialisation; free it with
 * mk_config_free. On error (MK_EUSAGE for a --set without KEY=VALUE shape,
 * MK_ECONFIG otherwise) cfg is left zeroed and the message names the source,
 * line and key, or the --set argument. */
mk_err mk_config_parse(const char *text, size_t len, const char *source,
                       char *const *sets, int nsets, mk_config *cfg);

/* The same for a library session (mpicka/session.h): no models (x, y and
 * models are refused, as are the keys of files: shuffle, shuffle_block,
 * epochs other than 1, checkpoint, ids, layer_order, each with MK_ECONFIG
 * saying to export instead), and output may be absent (NULL). An empty
 * text is every default. */
mk_err mk_config_parse_session(const char *text, size_t len, const char *source, char *const *sets, int nsets,
                               mk_config *cfg);

/* Read a config file into a NUL-terminated malloc'd buffer: MK_EIO when it
 * cannot be read, MK_ECONFIG when it holds a NUL byte or exceeds 16 MiB. */
mk_err mk_read_text_file(const char *path, char **text, size_t *len);

/* Frees what mk_config_parse allocated and zeroes cfg; NULL and a zeroed
 * cfg are fine. */
void mk_config_free(mk_config *cfg);

/* The argument after --set: KEY=VALUE in one word. `next` (the word after it,
 * or NULL) turns a forgotten '=' into a hint: "--set batch_size 50" answers
 * "write --set batch_size=50". MK_EUSAGE when malformed. */
mk_err mk_config_check_set(const char *arg, const char *next);

/* The first line where two resolved configurations differ, ignoring the
 * `output` line and comments: 0 when none, else 1 and "LINE_A" / "LINE_B"
 * into a and b. */
int mk_config_first_difference(const char *ra, const char *rb, char *a, char *b, size_t len);

/* The annotated list of keys, types, defaults (for --help). */
void mk_config_print_reference(FILE *out);

#endif
