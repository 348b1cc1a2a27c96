/* The key table of the configuration: every key's kind, default, bounds and
 * help, in the order of the resolved YAML and --help, and the lookups of
 * sections and fields that config.c and emit.c share. */

#include <stddef.h>
#include <string.h>

#include "config_impl.h"
#include "mpicka/plan.h"
#include "mpicka/plot.h"

/* ---------------------------------------------------------- key table --- */

#define AT(member) offsetof(mk_config, member)

static const char *const precisions[] = {"float32", "float64", NULL};
static const char *const annotations[] = {"auto", "true", "false", NULL}; /* mk_annotate's order */
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

const key_spec mk__keys[] = {
    MODEL_KEYS(x, 0, AT(has_x), "the model whose layers are compared (required unless models is given)"),
    MODEL_KEYS(y, 0, AT(has_y), "a second model, compared with x (omit it to compare x with itself)"),
    {.path = "models", .kind = K_MODELS, .off = AT(models), .off_count = AT(nmodels),
     .help = "instead of x and y, any number of models, each with the keys file, name (unique) and layers as "
             "x has them: every layer of every model against every other, in one pass"},
    {.path = "batch_size", .kind = K_INT, .def = "256", .min = MK_MIN_BATCH, .max = MK_MAX_BATCH,
     .off = AT(batch_size),
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
    /* rbf_threshold's square scales every distance: the bounds keep the square a finite, non-zero double */
    {.path = "rbf_threshold", .kind = K_DOUBLE, .def = "1", .lo = 1e-150, .hi = 1e150, .off = AT(rbf_threshold),
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
    {.path = "measures", .kind = K_MEASURES, .off = AT(measures), .off_count = AT(nmeasures),
     .help = "measures besides CKA: from the exact estimator's covariances a list of cca, svcca, pwcca, "
             "procrustes, shape, regression (and cka), with parameters as `svcca: {keep: 0.99}` or `{k: 20}`, "
             "`shape: {alpha: 0.5}`; from each minibatch's Grams (any estimator) rsa "
             "`{method: pearson|spearman, distance: euclidean|correlation}`, mutual_knn, cknna, jaccard "
             "`{k: 10}` (docs/maths.md)"},
    {.path = "plot", .kind = K_MAP, .switchable = 1, .def = "true", .off = AT(plot.enabled),
     .help = "the heatmap drawn beside cka.h5 (`plot: false`: none)"},
    {.path = "plot.file", .kind = K_STRING, .def = "cka.png", .off = AT(plot.file),
     .help = "its file name in the output folder (.png, .svg or .pdf)"},
    {.path = "plot.title", .kind = K_STRING, .def = "", .empty_ok = 1, .off = AT(plot.style.title),
     .help = "title (empty: \"X vs Y\" from the models' names)"},
    {.path = "plot.cmap", .kind = K_ENUM, .def = "magma", .choices = mk_plot_cmaps, .off = AT(plot.style.cmap),
     .help = "colour map"},
    {.path = "plot.vmin", .kind = K_DOUBLE, .def = "0", .off = AT(plot.style.vmin),
     .help = "value at the bottom of the colour map"},
    {.path = "plot.vmax", .kind = K_DOUBLE, .def = "1", .off = AT(plot.style.vmax),
     .help = "value at the top of the colour map"},
    {.path = "plot.annotate", .kind = K_ENUM, .def = "auto", .choices = annotations,
     .off = AT(plot.style.annotate), .help = "values in the cells (auto: when they fit)"},
    {.path = "plot.half", .kind = K_BOOL, .def = "false", .off = AT(plot.style.half),
     .help = "lower triangle only, for a self comparison"},
    {.path = "plot.invert_y", .kind = K_BOOL, .def = "false", .off = AT(plot.style.invert_y),
     .help = "first layer at the bottom"},
    {.path = "plot.short_names", .kind = K_INT, .def = "0", .min = 0, .off = AT(plot.style.short_names),
     .help = "show only the last K components of layer paths ('/' or '.' separate them; 0: all)"},
    {.path = "plot.errors", .kind = K_BOOL, .def = "false", .off = AT(plot.style.errors),
     .help = "jackknife standard errors under the cell values (when annotated)"},
};


const size_t mk__nkeys = sizeof mk__keys / sizeof mk__keys[0];

/* The section a key belongs to, or NULL at the top level. */
const key_spec *mk__section_of(const key_spec *k)
{
    const char *dot = strrchr(k->path, '.');
    size_t n = dot ? (size_t)(dot - k->path) : 0;
    for (size_t i = 0; dot && i < mk__nkeys; i++)
        if (!strncmp(mk__keys[i].path, k->path, n) && !mk__keys[i].path[n]) return &mk__keys[i];
    return NULL;
}

void *mk__field_of(const mk_config *cfg, size_t off)
{
    return off == NO_FIELD ? NULL : (char *)cfg + off;
}

/* Whether the keys of section s (NULL: the top level) are in use. */
int mk__section_given(const mk_config *cfg, const key_spec *s)
{
    return !s || s->off == NO_FIELD || *(const int *)mk__field_of(cfg, s->off);
}

