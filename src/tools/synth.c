/* `mpicka synth`: synthetic activations (data model in mpicka/synth.h).
 *
 * The options are a table of the shared parser (mpicka/cli.h); this file
 * reads them into the plan of the layers, and synth_gen.c generates and
 * writes the file. */
#include "mpicka/synth.h"

#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mpicka/cli.h"
#include "synth_gen.h"

#define SYNTH_MAX_LAYERS 100000
#define SYNTH_MAX_LATENT 65536
/* HDF5 refuses chunks of 4 GiB or more. */
#define SYNTH_MAX_CHUNK_BYTES ((uint64_t)UINT32_MAX)

/* ---- options ------------------------------------------------------------ */

enum { O_N, O_LAYERS, O_FEATURES, O_DTYPE, O_CORR, O_LATENT, O_NOISE, O_OFFSET, O_RELU, O_SEED, O_NAMES,
       O_CHUNK, O_GZIP, O_BLOCK, O_COUNT };

static const mk_opt synth_table[O_COUNT] = {
    [O_N] = {"--n", NULL, MK_OPT_INT, "N", 1, INT64_MAX, .deflt = "1024", .help = "examples (rows of every dataset)"},
    [O_LAYERS] = {"--layers", NULL, MK_OPT_INT, "L", 1, SYNTH_MAX_LAYERS, .deflt = "4", .help = "number of layers"},
    [O_FEATURES] = {"--features", NULL, MK_OPT_STRING, "S[,S..]", .deflt = "64",
                    .help = "feature shape per layer, \"64\" or \"8x4x4\" (rank 1-4),\ncycled over layers"},
    [O_DTYPE] = {"--dtype", NULL, MK_OPT_STRING, "T[,T..]", .deflt = "f32",
                 .help = "type per layer, cycled: f16 f32 f64 i8 i16 i32 i64 u8\n(integers store round(16*value))"},
    [O_CORR] = {"--corr", NULL, MK_OPT_REAL, "R", 0.0, 1.0, .deflt = "0.9",
                .help = "correlation of consecutive latent states, in [0,1]"},
    [O_LATENT] = {"--latent", NULL, MK_OPT_INT, "K", 1, SYNTH_MAX_LATENT, .deflt = "16", .help = "latent dimensions"},
    [O_NOISE] = {"--noise", NULL, MK_OPT_REAL, "S", 0.0, HUGE_VAL, .deflt = "0.1",
                 .help = "std of independent per-feature noise"},
    [O_OFFSET] = {"--offset", NULL, MK_OPT_REAL, "C", -HUGE_VAL, HUGE_VAL, .deflt = "0",
                  .help = "added to every value"},
    [O_RELU] = {"--relu", NULL, MK_OPT_FLAG, .help = "apply max(0, .) before the offset"},
    [O_SEED] = {"--seed", NULL, MK_OPT_UINT64, "S", .deflt = "0", .help = "seed, unsigned 64-bit"},
    [O_NAMES] = {"--names", NULL, MK_OPT_STRING, "A,B,..",
                 .help = "dataset paths, one per layer; '/' makes groups (default layer1..layerL)"},
    [O_CHUNK] = {"--chunk", NULL, MK_OPT_INT, "ROWS", 0, INT64_MAX, .deflt = "0",
                 .help = "rows per chunk; 0: contiguous layout"},
    [O_GZIP] = {"--gzip", NULL, MK_OPT_INT, "LEVEL", 0, 9,
                .help = "deflate level 0-9 with the shuffle filter; needs --chunk > 0 (default off)"},
    [O_BLOCK] = {"--block", NULL, MK_OPT_INT, "ROWS", 1, INT64_MAX, .deflt = "4096",
                 .help = "rows generated and written per write call\n(bounds memory; no effect on the data)"},
};

static const mk_cli_cmd synth_cmd = {
    "synth", "mpicka synth OUT.h5 [options]",
    "Write synthetic layer activations (one dataset of shape (n, features...) per layer)\n"
    "to OUT.h5. Not MPI; the data do not depend on --block, --chunk or --gzip.",
    synth_table, O_COUNT, (const char *const[]){"OUT.h5"}, 1};

/* The options into o; --gzip is -1 when off. */
static mk_err read_opts(const mk_opt_val *v, const char *const *args, struct synth_opts *o)
{
    *o = (struct synth_opts){.out = args[0], .n = v[O_N].i, .layers = v[O_LAYERS].i, .latent = v[O_LATENT].i,
                             .chunk = v[O_CHUNK].i, .gzip = v[O_GZIP].given ? v[O_GZIP].i : -1,
                             .block = v[O_BLOCK].i, .corr = v[O_CORR].r, .noise = v[O_NOISE].r,
                             .offset = v[O_OFFSET].r, .seed = v[O_SEED].u, .relu = v[O_RELU].given,
                             .features = v[O_FEATURES].text, .dtypes = v[O_DTYPE].text, .names = v[O_NAMES].text};
    if (o->gzip >= 0 && o->chunk == 0)
        return mk_fail(MK_EUSAGE, "synth: --gzip %" PRId64 " needs a chunked layout (--chunk ROWS > 0)",
                       o->gzip);
    return MK_OK;
}

/* ---- layer plan --------------------------------------------------------- */

struct shape {
    int rank;
    hsize_t dims[SYNTH_MAX_RANK];
    size_t p;
};

/* Split a comma-separated list in place; empty items are errors. */
static mk_err split_list(const char *opt, const char *text, char **copy, char ***items, int *count)
{
    mk_err err = MK_OK;
    int n = 1;
    for (const char *c = text; *c; c++) n += (*c == ',');
    *copy = mk_malloc(strlen(text) + 1, "an option list", &err);
    *items = *copy ? mk_calloc((size_t)n, sizeof **items, "an option list", &err) : NULL;
    if (err != MK_OK) {
        free(*copy);
        *copy = NULL;
        return err;
    }
    strcpy(*copy, text);
    char *s = *copy;
    for (int i = 0; i < n; i++) {
        (*items)[i] = s;
        char *comma = strchr(s, ',');
        if (comma) *comma = '\0';
        if (s[0] == '\0') {
            err = mk_fail(MK_EUSAGE, "synth: %s '%s': item %d is empty", opt, text, i + 1);
            break;
        }
        s = comma ? comma + 1 : s + strlen(s);
    }
    if (err != MK_OK) {
        free(*items);
        free(*copy);
        *items = NULL;
        *copy = NULL;
        return err;
    }
    *count = n;
    return MK_OK;
}

/* One shape, "64" or "8x4x4"; the product must fit in memory arithmetic. */
static mk_err parse_shape(const char *item, const char *whole, struct shape *sh)
{
    sh->rank = 0;
    sh->p = 1;
    const char *s = item;
    for (;;) {
        char *end = (char *)s;
        errno = 0;
        long long d = (*s >= '0' && *s <= '9') ? strtoll(s, &end, 10) : 0;
        if (d < 1 || errno != 0 || (*end != 'x' && *end != '\0') || sh->rank == SYNTH_MAX_RANK)
            return mk_fail(MK_EUSAGE, "synth: --features '%s': bad shape '%s' "
                           "(expected 1 to %d positive sizes joined by 'x', e.g. 64 or 8x4x4)",
                           whole, item, SYNTH_MAX_RANK);
        if ((unsigned long long)d > SIZE_MAX / sizeof(double) / sh->p)
            return mk_fail(MK_EUSAGE, "synth: --features '%s': shape '%s' is too large", whole, item);
        sh->dims[sh->rank++] = (hsize_t)d;
        sh->p *= (size_t)d;
        if (*end == '\0') return MK_OK;
        s = end + 1;
    }
}

static mk_err parse_dtype(const char *item, const char *whole, enum synth_dtype *dt)
{
    for (int i = 0; i < DT_COUNT; i++)
        if (strcmp(item, mk_synth_dtypes[i].name) == 0) {
            *dt = (enum synth_dtype)i;
            return MK_OK;
        }
    return mk_fail(MK_EUSAGE, "synth: --dtype '%s': unknown type '%s' (f16 f32 f64 i8 i16 i32 i64 u8)",
                   whole, item);
}

/* A cycled list longer than --layers is almost certainly a mistake. */
static mk_err check_list_len(const char *opt, const char *text, int count, int64_t layers)
{
    if (count > layers)
        return mk_fail(MK_EUSAGE, "synth: %s '%s' has %d items but --layers is %" PRId64,
                       opt, text, count, layers);
    return MK_OK;
}

/* A list cycled over the layers (--features, --dtype): set gets each
 * layer's item. */
typedef mk_err (*layer_item_fn)(const char *item, const char *whole, struct synth_plan *pl, int l);

static mk_err plan_cycled(const char *opt, const char *text, int64_t layers, struct synth_plan *pl,
                          layer_item_fn set)
{
    char *copy, **items;
    int count;
    mk_err err = MK_OK;
    MK_TRY(split_list(opt, text, &copy, &items, &count));
    MK_GOTO(check_list_len(opt, text, count, layers), done);
    for (int l = 0; l < pl->nlayers; l++) MK_GOTO(set(items[l % count], text, pl, l), done);
done:
    free(items);
    free(copy);
    return err;
}

static mk_err set_shape(const char *item, const char *whole, struct synth_plan *pl, int l)
{
    struct shape sh;
    MK_TRY(parse_shape(item, whole, &sh));
    struct synth_layer *ly = &pl->layers[l];
    ly->rank = sh.rank;
    memcpy(ly->dims, sh.dims, sizeof sh.dims);
    ly->p = sh.p;
    if (sh.p > pl->pmax) pl->pmax = sh.p;
    return MK_OK;
}

static mk_err set_dtype(const char *item, const char *whole, struct synth_plan *pl, int l)
{
    MK_TRY(parse_dtype(item, whole, &pl->layers[l].dt));
    pl->any_conv |= mk_synth_dtypes[pl->layers[l].dt].conv != CONV_HDF5;
    return MK_OK;
}

/* HDF5 would reject these later with a message naming neither option nor name. */
static mk_err check_names(const struct synth_plan *pl)
{
    for (int a = 0; a < pl->nlayers; a++) {
        const char *na = pl->layers[a].name;
        size_t la = strlen(na);
        if (na[la - 1] == '/' || strstr(na, "//"))
            return mk_fail(MK_EUSAGE, "synth: --names: '%s' is not a dataset path", na);
        for (int b = 0; b < pl->nlayers; b++) {
            const char *nb = pl->layers[b].name;
            if (a == b || strncmp(na, nb, la) != 0) continue;
            if (nb[la] == '\0')
                return mk_fail(MK_EUSAGE, "synth: --names: '%s' is given twice", na);
            if (nb[la] == '/')
                return mk_fail(MK_EUSAGE, "synth: --names: '%s' is both a dataset and the group of '%s'",
                               na, nb);
        }
    }
    return MK_OK;
}

static mk_err plan_names(const struct synth_opts *o, struct synth_plan *pl)
{
    mk_err err = MK_OK;
    char *copy = NULL, **items = NULL;
    int count = pl->nlayers;
    if (o->names) {
        MK_TRY(split_list("--names", o->names, &copy, &items, &count));
        if (count != pl->nlayers) {
            err = mk_fail(MK_EUSAGE, "synth: --names '%s' has %d names but --layers is %d",
                          o->names, count, pl->nlayers);
            goto done;
        }
    }
    for (int l = 0; l < pl->nlayers; l++) {
        char def[32];
        snprintf(def, sizeof def, "layer%d", l + 1);
        const char *name = items ? items[l] : def;
        pl->layers[l].name = mk_malloc(strlen(name) + 1, "a dataset name", &err);
        if (err != MK_OK) goto done;
        strcpy(pl->layers[l].name, name);
    }
    if (o->names) err = check_names(pl);
done:
    free(items);
    free(copy);
    return err;
}

/* Sizes whose arithmetic would overflow, caught before anything is allocated. */
static mk_err check_sizes(const struct synth_opts *o, const struct synth_plan *pl)
{
    for (int l = 0; l < pl->nlayers; l++) {
        const struct synth_layer *ly = &pl->layers[l];
        uint64_t row_bytes = (uint64_t)ly->p * mk_synth_dtypes[ly->dt].size;
        if ((uint64_t)o->n > UINT64_MAX / row_bytes)
            return mk_fail(MK_EUSAGE, "synth: --n %" PRId64 ": layer '%s' would exceed 2^64 bytes",
                           o->n, ly->name);
        if (ly->p > SIZE_MAX / sizeof(double) / (size_t)o->latent)
            return mk_fail(MK_EUSAGE, "synth: --latent %" PRId64 ": the weights of layer '%s' do not fit "
                           "in memory", o->latent, ly->name);
        if (o->chunk > 0 && mk__synth_chunk_rows(o) > SYNTH_MAX_CHUNK_BYTES / row_bytes)
            return mk_fail(MK_EUSAGE, "synth: --chunk %" PRId64 ": a chunk of layer '%s' would exceed "
                           "HDF5's 4 GiB limit", o->chunk, ly->name);
    }
    return MK_OK;
}

static void plan_free(struct synth_plan *pl)
{
    if (pl->layers)
        for (int l = 0; l < pl->nlayers; l++) free(pl->layers[l].name);
    free(pl->layers);
    memset(pl, 0, sizeof *pl);
}

static mk_err plan_build(const struct synth_opts *o, struct synth_plan *pl)
{
    mk_err err = MK_OK;
    memset(pl, 0, sizeof *pl);
    pl->layers = mk_calloc((size_t)o->layers, sizeof *pl->layers, "the layer list", &err);
    if (err != MK_OK) return err;
    pl->nlayers = (int)o->layers;
    MK_GOTO(plan_cycled("--features", o->features, o->layers, pl, set_shape), fail);
    MK_GOTO(plan_cycled("--dtype", o->dtypes, o->layers, pl, set_dtype), fail);
    MK_GOTO(plan_names(o, pl), fail);
    MK_GOTO(check_sizes(o, pl), fail);
    return MK_OK;
fail:
    plan_free(pl);
    return err;
}

static void print_summary(const struct synth_opts *o, const struct synth_plan *pl)
{
    double bytes = 0;
    for (int l = 0; l < pl->nlayers; l++)
        bytes += (double)o->n * (double)pl->layers[l].p * (double)mk_synth_dtypes[pl->layers[l].dt].size;
    printf("wrote %s: n=%" PRId64 ", %d layers, features %s, dtype %s, corr %g, latent %" PRId64
           ", noise %g, offset %g%s, seed %" PRIu64 " (%.1f MiB of data)\n",
           o->out, o->n, pl->nlayers, o->features, o->dtypes, o->corr, o->latent, o->noise, o->offset,
           o->relu ? ", relu" : "", o->seed, bytes / (1024.0 * 1024.0));
}

/* The file the command line describes, written. */
static mk_err synth_command(const mk_opt_val *v, const char *const *args)
{
    struct synth_opts o;
    struct synth_plan pl;
    MK_TRY(read_opts(v, args, &o));
    MK_TRY(plan_build(&o, &pl));
    mk_err err = mk__synth_write(&o, &pl);
    if (err == MK_OK) print_summary(&o, &pl);
    plan_free(&pl);
    return err;
}

mk_err mk_synth_main(int argc, char **argv) { return mk_cli_main(&synth_cmd, argc, argv, synth_command); }
