#include "mpicka/job.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "mpicka/exact.h"
#include "mpicka/gram_measures.h"
#include "mpicka/hsic.h"
#include "mpicka/log.h"
#include "mpicka/par.h"

mk_err mk_job_plan(const mk_config *cfg, const mk_lineup *lu, mk_plan *plan)
{
    const mk_model *x = &lu->models[0];
    const mk_layer *first = &x->layers[0];
    if (first->n < MK_MIN_BATCH)
        return mk_fail(MK_EINPUT, "%s: dataset '%s' has %lld examples; at least %d are needed", x->file,
                       first->path, (long long)first->n, MK_MIN_BATCH);
    if (cfg->batch_size > first->n && cfg->estimator != MK_EST_EXACT)
        return mk_fail(MK_ECONFIG, "batch_size %lld is larger than n = %lld, the examples in %s; set batch_size to at "
                       "most %lld", (long long)cfg->batch_size, (long long)first->n, x->file, (long long)first->n);
    MK_TRY(mk_plan_init(plan, first->n, cfg->batch_size, cfg->epochs, cfg->shuffle, cfg->seed));
    mk_plan_set_block(plan, cfg->shuffle_block);
    if (cfg->estimator == MK_EST_EXACT) mk_plan_keep_all(plan);
    return MK_OK;
}

int64_t mk_job_jackknife_groups(const mk_config *cfg, const mk_plan *plan)
{
    int64_t g = cfg->jackknife < plan->total ? cfg->jackknife : plan->total;
    return cfg->estimator == MK_EST_EXACT || g < 2 ? 0 : g;
}

/* hxy | hxx | hyy (rows*cols + rows + cols values): a minibatch's HSICs. */
int64_t mk_job_base_len(const mk_lineup *lu)
{
    int64_t nx = mk_lineup_rows(lu), ny = mk_lineup_cols(lu);
    return nx * ny + nx + ny;
}

int64_t mk_job_gram_groups(const mk_config *cfg, const mk_plan *plan)
{
    int64_t g = cfg->jackknife < plan->total ? cfg->jackknife : plan->total;
    return g < 2 ? 0 : g;
}

/* The Gram measures' (sum, count) of every value, per jackknife group (one
 * slot without groups). */
double mk_job_gram_len(const mk_config *cfg, const mk_lineup *lu, const mk_plan *plan)
{
    double outs = 0.0, slots = (double)mk_job_gram_groups(cfg, plan);
    for (int k = 0; k < cfg->nmeasures; k++) outs += mk_gram_measure(cfg->measures[k].kind);
    return (slots > 1.0 ? slots : 1.0) * 2.0 * outs * mk_lineup_rows(lu) * (double)mk_lineup_cols(lu);
}

/* The exact estimator's S (mpicka/exact.h): the blocks its pairs read. */
static double exact_s_len(const mk_lineup *lu)
{
    int64_t P = mk_lineup_features(lu), y_col = 0, end = 0;
    double len = 0.0;
    for (int l = 0; lu->cross && l < mk_lineup_rows(lu); l++) y_col += mk_lineup_layer(lu, l, NULL)->p;
    for (int l = 0; l < lu->nlayers; l++) {
        int64_t p = mk_lineup_layer(lu, l, NULL)->p;
        end += p;
        len += (double)mk_exact_rows_len(p, end, P, y_col);
    }
    return len;
}

/* What the exact estimator's workspace takes (mk_exact_bytes); if even the
 * widths do not fit, every pair's strips. */
static double exact_bytes(const mk_lineup *lu, int64_t m, mk_precision prec)
{
    int L = lu->nlayers;
    int64_t *p = malloc((size_t)L * sizeof *p), y_col = 0, P = mk_lineup_features(lu);
    if (!p) return mk_exact_bytes(1, &P, 0, m, prec);
    for (int l = 0; l < L; l++) p[l] = mk_lineup_layer(lu, l, NULL)->p;
    for (int l = 0; lu->cross && l < mk_lineup_rows(lu); l++) y_col += p[l];
    double bytes = mk_exact_bytes(L, p, y_col, m, prec);
    free(p);
    return bytes;
}

/* The values summed per batch. Minibatch estimators: the base, then the
 * base again in the slot of the batch's jackknife group (zeros in the
 * others), then the cross HSICs of each permutation, then the Gram
 * measures' sums (mk_job_gram_len). Exact: the
 * feature-space sums (mpicka/exact.h). Both end with one count per layer
 * read, 1 when the layer varied in the batch: a layer that never did is
 * constant (dead). In double, so that no size a user can ask for overflows
 * before the memory check refuses it. */
double mk_job_sums_len(const mk_config *cfg, const mk_lineup *lu, const mk_plan *plan)
{
    double nx = mk_lineup_rows(lu), ny = mk_lineup_cols(lu), L = lu->nlayers;
    if (cfg->estimator == MK_EST_EXACT) {
        double P = (double)mk_lineup_features(lu);
        return exact_s_len(lu) + P + L * P + L * L + mk_job_gram_len(cfg, lu, plan) + L;
    }
    return (nx * ny + nx + ny) * (1.0 + (double)mk_job_jackknife_groups(cfg, plan)) +
           (double)cfg->permutations * nx * ny + mk_job_gram_len(cfg, lu, plan) + L;
}

/* Writing the result must never overwrite an input. */
static mk_err check_not_file(const mk_config *cfg, const char *file)
{
    struct stat in, out;
    if (stat(file, &in) != 0) return MK_OK;
    const char *outputs[] = {"", "/cka.h5", "/cka.csv", "/checkpoint.h5"};
    for (int i = 0; i < 5; i++) {
        char path[4200];
        if (i < 4) snprintf(path, sizeof path, "%s%s", cfg->output, outputs[i]);
        else snprintf(path, sizeof path, "%s/%s", cfg->output, cfg->plot.file);
        if (stat(path, &out) == 0 && out.st_dev == in.st_dev && out.st_ino == in.st_ino)
            return mk_fail(MK_ECONFIG, "output '%s' would overwrite the input '%s'; choose another output folder",
                           cfg->output, file);
    }
    return MK_OK;
}

static mk_err check_not_input(const mk_config *cfg, const mk_model *model)
{
    for (int f = 0; f < model->nfiles; f++) MK_TRY(check_not_file(cfg, model->files[f]));
    return MK_OK;
}

/* When the sums take most of the memory, batch size and layer widths are not
 * the cause: the permutations and jackknife groups multiply the pair sums. */
static mk_err sums_fail(const mk_config *cfg, const mk_lineup *lu, const mk_plan *plan, const mk_job_memory *mem,
                        double have)
{
    double gib = 1073741824.0, pairs = (double)mk_lineup_rows(lu) * mk_lineup_cols(lu);
    return mk_fail(MK_EINPUT, "a rank would need about %.1f GiB but this machine has %.1f GiB: the sums take %.1f "
                   "GiB, a copy of the %.0f layer pairs' sums per permutation (permutations: %lld) and per jackknife "
                   "group (%lld), in each of the accumulator tree's levels; lower permutations or jackknife, or "
                   "compare fewer layers", (mem->total + MK_LIBRARY_BYTES) / gib, have / gib, mem->sums / gib, pairs,
                   (long long)cfg->permutations, (long long)mk_job_jackknife_groups(cfg, plan));
}

double mk_job_machine_bytes(void)
{
    return (double)sysconf(_SC_PHYS_PAGES) * (double)sysconf(_SC_PAGESIZE);
}

int mk_job_keeps_first(const mk_config *cfg, const mk_lineup *lu, const mk_plan *plan)
{
    mk_job_memory mem;
    mk_job_memory_estimate(cfg, lu, plan, &mem);
    double have = mk_job_machine_bytes();
    return have <= 0 || mem.total + mem.first + MK_LIBRARY_BYTES <= have;
}

/* A rank that cannot hold its buffers should say so before reading anything. */
static mk_err check_memory(const mk_config *cfg, const mk_lineup *lu, const mk_plan *plan)
{
    mk_job_memory mem;
    mk_job_memory_estimate(cfg, lu, plan, &mem);
    double have = mk_job_machine_bytes(), gib = 1073741824.0;
    if (have <= 0 || mem.total + MK_LIBRARY_BYTES <= have) return MK_OK;
    if (cfg->estimator == MK_EST_EXACT)
        return mk_fail(MK_EINPUT, "estimator exact: a rank would need about %.1f GiB but this machine has %.1f GiB: "
                       "the cross-products of all %lld features (of %s%s) take %.1f GiB and their sums %.1f GiB; "
                       "compare fewer or narrower layers, or use a minibatch estimator (estimator: hsic1)",
                       (mem.total + MK_LIBRARY_BYTES) / gib, have / gib, (long long)mk_lineup_features(lu),
                       lu->models[0].file, lu->nmodels > 1 ? " and the other models" : "", mem.grams / gib,
                       mem.sums / gib);
    if (mem.sums >= mem.blocks + mem.grams + mem.stacked + mem.caches) return sums_fail(cfg, lu, plan, &mem, have);
    int at = 0;
    const mk_layer *wide = mk_lineup_widest(lu, &at);
    const mk_model *owner = &lu->models[at];
    return mk_fail(MK_EINPUT, "a rank would need about %.1f GiB but this machine has %.1f GiB: the widest layer, "
                   "'%s' in %s with %lld features, takes %.1f GiB of read-ahead blocks and the U-centred Grams "
                   "%.1f GiB; lower batch_size or compare fewer or narrower layers",
                   (mem.total + MK_LIBRARY_BYTES) / gib, have / gib, wide->path, owner->file, (long long)wide->p,
                   mem.blocks / gib, mem.stacked / gib);
}

mk_err mk_job_preflight(const mk_config *cfg, const mk_lineup *lu, const mk_plan *plan)
{
    MK_TRY(check_memory(cfg, lu, plan));
    for (int k = 0; k < lu->nmodels; k++) MK_TRY(check_not_input(cfg, &lu->models[k]));
    return MK_OK;
}

void mk_job_warn_ids(const mk_config *cfg, const mk_lineup *lu)
{
    const mk_model *with = NULL, *without = NULL;
    for (int k = 0; k < lu->nmodels; k++) {
        if (lu->models[k].ids && !with) with = &lu->models[k];
        if (!lu->models[k].ids && !without) without = &lu->models[k];
    }
    if (!cfg->ids.enabled || !with || !without) return;
    mk_warn("%s has sample IDs ('%s') but %s has none: the examples of %s are not checked to be the same", with->file,
            with->ids, without->file, lu->cross ? "x and y" : "the models");
}

static void layer_bytes(const mk_lineup *lu, int64_t m, mk_precision prec, double *work, double *read)
{
    for (int l = 0; l < lu->nlayers; l++) {
        const mk_layer *layer = mk_lineup_layer(lu, l, NULL);
        double w = (double)(m * layer->p) * (double)mk_prec_size(prec);
        double r = layer->in_f32 == (prec == MK_PREC_FLOAT32) ? 0.0
                   : (double)(m * layer->p) * (layer->in_f32 ? 4.0 : 8.0);
        if (w > *work) *work = w;
        if (r > *read) *read = r;
    }
}

/* After the pass, on every rank (each computes a share of the pairs,
 * src/driver/spread.c): a copy of the second moments (S and s; rank 0's
 * are its summed sums, counted once more here as the other ranks' copy),
 * the eigenvectors of the layers its pairs use (at most all), the matrices
 * (rank 0 gathers them), and per thread one pair's work: its
 * cross-products, their rotation, the whitened block, an SVD with its
 * vectors and workspace and PWCCA's loadings, not all at once: measured at
 * 4 to 6 blocks of the widest layer squared, estimated at 8
 * (src/measures/measures.c). */
static double measures_bytes(const mk_config *cfg, const mk_lineup *lu)
{
    const char *names[2];
    int outputs = 0;
    for (int k = 0; k < cfg->nmeasures; k++)
        if (!mk_gram_measure(cfg->measures[k].kind)) outputs += mk_measure_outputs(cfg->measures[k].kind, names);
    if (!outputs) return 0.0;
    double vectors = 0.0, widest = (double)mk_lineup_widest(lu, NULL)->p, P = (double)mk_lineup_features(lu);
    for (int l = 0; l < lu->nlayers; l++) vectors += (double)mk_lineup_layer(lu, l, NULL)->p * mk_lineup_layer(lu, l, NULL)->p;
    double cells = (double)mk_lineup_rows(lu) * mk_lineup_cols(lu) * outputs;
    double moments = exact_s_len(lu) + P;
    return 8.0 * (moments + vectors + cells + 8.0 * widest * widest * mk_par_threads_wanted(cfg->threads));
}

void mk_job_memory_estimate(const mk_config *cfg, const mk_lineup *lu, const mk_plan *plan, mk_job_memory *mem)
{
    int64_t m = plan->m < plan->n ? plan->m : plan->n;
    double work = 0.0, read = 0.0;
    layer_bytes(lu, m, cfg->precision, &work, &read);
    int ny = mk_lineup_cols(lu), depth = 2, L = lu->nlayers;
    for (int64_t b = plan->total; b > 1; b >>= 1) depth++;
    double rows = (double)mk_row_len(cfg->estimator, m) * 8.0;
    mem->blocks = 2.0 * work + read;
    mem->stacked = 0.0;
    if (cfg->estimator == MK_EST_EXACT) {
        mem->grams = exact_bytes(lu, m, cfg->precision);
    } else {
        mem->grams = 2.0 * (double)(m * m) * (double)mk_prec_size(cfg->precision); /* one in the background */
        mem->stacked = ((double)L + (cfg->permutations ? ny : 0)) * rows;
        if (cfg->kernel == MK_KERNEL_RBF) mem->grams += (double)mk_tri_len(m) * 8.0;
    }
    mem->sums = (double)(depth + 1) * mk_job_sums_len(cfg, lu, plan) * 8.0;
    mem->caches = 0.0;
    for (int k = 0; k < lu->nmodels; k++)
        mem->caches += (double)mk_source_cache_bytes(&lu->models[k], mk_lineup_cache_share(lu, k));
    mem->measures = measures_bytes(cfg, lu);
    mk_gram_spec gs; /* the Gram measures' layers of one batch, kept for all layers */
    mk_gram_spec_init(&gs, cfg->measures, cfg->nmeasures, m);
    mem->measures += mk_gram_bytes(&gs, L, (int64_t)mk_lineup_rows(lu) * ny, mk_par_threads_wanted(cfg->threads));
    if (cfg->estimator == MK_EST_EXACT && gs.outs) /* their Grams: the exact estimator forms none of its own */
        mem->grams += (double)(m * m) * (double)mk_prec_size(cfg->precision);
    mem->total = mem->blocks + mem->grams + mem->stacked + mem->sums + mem->caches + mem->measures;
    mem->first = 0.0;
    for (int l = 0; l < L; l++) {
        const mk_layer *layer = mk_lineup_layer(lu, l, NULL);
        mem->first += (double)(m * layer->p) * (layer->in_f32 ? 4.0 : 8.0);
    }
}

/* The file path next to the config (dir "/" file) when that exists and
 * file, relative and no glob, does not exist from the working folder. */
static int only_next_to_config(const char *file, const char *dir, size_t dlen, char *there, size_t size)
{
    if (file[0] == '/' || strpbrk(file, "*?[") || access(file, F_OK) == 0) return 0;
    snprintf(there, size, "%.*s/%s", (int)dlen, dir, file);
    return access(there, F_OK) == 0;
}

void mk_job_warn_config_folder(const mk_config *cfg, const char *config_path)
{
    const char *slash = strrchr(config_path, '/');
    if (!slash || (slash == config_path + 1 && config_path[0] == '.')) return;
    size_t dlen = slash == config_path ? 1 : (size_t)(slash - config_path);
    char there[8192], cwd[4096];
    if (!getcwd(cwd, sizeof cwd)) snprintf(cwd, sizeof cwd, ".");
    for (int k = 0; k < mk_config_nmodels(cfg); k++) {
        const mk_model_cfg *m = mk_config_model(cfg, k);
        for (int f = 0; f < m->nfiles; f++)
            if (only_next_to_config(m->files[f], config_path, dlen, there, sizeof there))
                mk_warn("input '%s' is read from the working folder '%s', where it is not, but '%s' exists next "
                        "to the config: relative paths are from the working folder, not the config's; write that "
                        "path in the config, or run from '%.*s'", m->files[f], cwd, there, (int)dlen, config_path);
    }
}
