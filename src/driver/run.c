#include "mpicka/run.h"

#include "run_impl.h"

#include <math.h>
#include <mpi.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include "mpicka/blas.h"
#include "mpicka/cli.h"
#include "mpicka/log.h"
#include "mpicka/measure_sums.h"
#include "mpicka/plotcmd.h"
#include "mpicka/progress.h"

static const char *const phase_names[PH_COUNT] = {"read", "centre", "wait", "gram", "ucentre", "pairs",
                                                  "permute", "setup", "reduce", "measures", "write"};

/* ---- collective verdicts ---- */

/* Every rank learns whether any rank failed; the lowest failing rank's code
 * and message become everyone's. */
mk_err mk__agree(MPI_Comm comm, mk_err local)
{
    int rank;
    MPI_Comm_rank(comm, &rank);
    int mine = local != MK_OK ? rank : INT32_MAX, first;
    MPI_Allreduce(&mine, &first, 1, MPI_INT, MPI_MIN, comm);
    if (first == INT32_MAX) return MK_OK;
    char msg[2048];
    int code = (int)local;
    snprintf(msg, sizeof msg, "%s", mk_errmsg());
    MPI_Bcast(&code, 1, MPI_INT, first, comm);
    MPI_Bcast(msg, (int)sizeof msg, MPI_CHAR, first, comm);
    if (first != 0 && rank == 0) {
        char full[2100];
        snprintf(full, sizeof full, "%s (on rank %d)", msg, first);
        mk_set_errmsg(full);
    } else {
        mk_set_errmsg(msg);
    }
    return (mk_err)code;
}

/* Broadcast a malloc'd buffer from rank 0; other ranks get a fresh copy. */
mk_err mk__bcast_bytes(MPI_Comm comm, char **buf, int64_t *len)
{
    int rank;
    MPI_Comm_rank(comm, &rank);
    MPI_Bcast(len, 1, MPI_INT64_T, 0, comm);
    mk_err err = MK_OK;
    if (rank != 0) *buf = mk_malloc((size_t)*len + 1, "a broadcast buffer", &err);
    MK_TRY(mk__agree(comm, err));
    MPI_Bcast(*buf, (int)*len, MPI_CHAR, 0, comm);
    return MK_OK;
}

/* ---- arguments and config ---- */

typedef struct {
    const char *config;
    char **sets; /* malloc'd */
    int nsets;
    int help;
    int restart;
    int force;
    int progress; /* mk_progress_mode, or -1 for auto */
} run_args;

enum { O_SET, O_PROGRESS, O_QUIET, O_RESTART, O_FORCE, O_COUNT };

static const mk_opt run_opts[O_COUNT] = {
    [O_SET] = {"--set", NULL, MK_OPT_LIST, "KEY=VALUE", .check = mk_config_check_set,
               .help = "override a config key (dotted for nested keys), e.g.\n"
                       "--set batch_size=512 --set x.file=acts.h5 --set 'x.layers=[a, b]'"},
    [O_PROGRESS] = {"--progress", NULL, MK_OPT_STRING, "MODE",
                    .help = "bar (a live line for a terminal), lines (one every\n"
                            "progress_seconds, for a log) or none; default: bar when\n"
                            "stderr is a terminal, else lines (under mpirun: lines)"},
    [O_QUIET] = {"--quiet", "-q", MK_OPT_FLAG, .help = "--progress none (errors and the summary still print)"},
    [O_RESTART] = {"--restart", NULL, MK_OPT_FLAG,
                   .help = "discard the output folder's checkpoint instead of resuming"},
    [O_FORCE] = {"--force", NULL, MK_OPT_FLAG,
                 .help = "overwrite the results (or checkpoint) of another config in\n"
                         "the output folder, which is refused otherwise"},
};

static const mk_cli_cmd run_cmd = {
    "run", "mpirun -np N mpicka run CONFIG [--set KEY=VALUE]...",
    "Computes the minibatch CKA matrix between the layers of two models (or of one model\n"
    "with itself, or of a list of models) from HDF5 activations; see docs/running.md.",
    run_opts, O_COUNT, (const char *const[]){"CONFIG"}, 1};

static void usage(FILE *out)
{
    mk_cli_help(out, &run_cmd);
    fputs("On SIGTERM or SIGUSR1 every rank stops at the next batch, the checkpoint is\n"
          "written and the exit status is 75; the same command then resumes.\n\nConfig keys:\n",
          out);
    mk_config_print_reference(out);
}

static mk_err parse_progress(const char *word, int *mode)
{
    static const char *const modes[] = {"none", "bar", "lines"}; /* in mk_progress_mode order */
    _Static_assert(MK_PROGRESS_NONE == 0 && MK_PROGRESS_BAR == 1 && MK_PROGRESS_LINES == 2, "modes[]");
    for (int i = 0; i < 3; i++)
        if (!strcmp(word, modes[i])) {
            *mode = i;
            return MK_OK;
        }
    return mk_fail(MK_EUSAGE, "run: --progress %s: expected bar, lines or none", word);
}

/* The options into a; the --set list moves to a (mk_run_main frees it). */
static mk_err read_args(mk_opt_val *v, run_args *a)
{
    a->restart = v[O_RESTART].given;
    a->force = v[O_FORCE].given;
    a->sets = v[O_SET].list;
    a->nsets = v[O_SET].given;
    v[O_SET].list = NULL;
    if (v[O_PROGRESS].given) MK_TRY(parse_progress(v[O_PROGRESS].text, &a->progress));
    if (v[O_QUIET].given && a->progress > MK_PROGRESS_NONE)
        return mk_fail(MK_EUSAGE, "run: --quiet and --progress %s contradict each other", v[O_PROGRESS].text);
    if (v[O_QUIET].given) a->progress = MK_PROGRESS_NONE;
    return MK_OK;
}

static mk_err parse_args(int argc, char **argv, run_args *a)
{
    mk_opt_val v[O_COUNT];
    memset(a, 0, sizeof *a);
    a->progress = -1;
    mk_err err = mk_cli_parse(&run_cmd, argc, argv, v, &a->config, &a->help);
    if (!err && !a->help) err = read_args(v, a);
    mk_cli_free(&run_cmd, v);
    return err;
}

/* Rank 0 reads the file; every rank parses the same text. */
static mk_err load_config(run_ctx *c, const run_args *a)
{
    char *text = NULL;
    int64_t len = 0;
    mk_err err = MK_OK;
    if (c->rank == 0) {
        size_t n = 0;
        err = mk_read_text_file(a->config, &text, &n);
        len = (int64_t)n;
    }
    MK_TRY(mk__agree(c->comm, err));
    MK_TRY(mk__bcast_bytes(c->comm, &text, &len));
    text[len] = '\0';
    err = mk_config_parse(text, (size_t)len, a->config, a->sets, a->nsets, &c->cfg);
    free(text);
    if (!err && c->rank == 0) mk_job_warn_config_folder(&c->cfg, a->config);
    return mk__agree(c->comm, err);
}

/* ---- inspection of the inputs (rank 0) and the plan ---- */

static mk_err make_plan(run_ctx *c)
{
    MK_TRY(mk_job_plan(&c->cfg, &c->lu, &c->plan));
    c->groups = mk_job_jackknife_groups(&c->cfg, &c->plan);
    return MK_OK;
}

static mk_err inspect(run_ctx *c)
{
    MK_TRY(mk_lineup_inspect(&c->cfg, &c->lu));
    MK_TRY(make_plan(c));
    MK_TRY(mk_job_preflight(&c->cfg, &c->lu, &c->plan));
    mk_job_warn_ids(&c->cfg, &c->lu);
    MK_TRY(mk__check_old_results(c));
    MK_TRY(mk_output_prepare(c->cfg.output, c->cfg.plot.enabled ? c->cfg.plot.file : NULL, &c->outdir));
    MK_TRY(mk__probe_layers(c));
    MK_TRY(mk__make_fingerprint(c));
    return mk__load_checkpoint(c);
}

static mk_err share_model(run_ctx *c, mk_model *model)
{
    char *buf = NULL;
    int64_t len = 0;
    mk_err err = MK_OK;
    if (c->rank == 0) err = mk_model_pack(model, &buf, &len);
    MK_TRY(mk__agree(c->comm, err));
    MK_TRY(mk__bcast_bytes(c->comm, &buf, &len));
    if (c->rank != 0) err = mk_model_unpack(buf, len, model);
    free(buf);
    return mk__agree(c->comm, err);
}

static mk_err share_todo(run_ctx *c)
{
    mk_err err = MK_OK;
    MPI_Bcast(&c->todo.count, 1, MPI_INT, 0, c->comm);
    MPI_Bcast(&c->todo.batches, 1, MPI_INT64_T, 0, c->comm);
    if (c->rank != 0) c->todo.spans = mk_malloc((size_t)c->todo.count * sizeof *c->todo.spans, "the batch list", &err);
    MK_TRY(mk__agree(c->comm, err));
    MPI_Bcast(c->todo.spans, 2 * c->todo.count, MPI_INT64_T, 0, c->comm);
    return MK_OK;
}

static mk_err share_lineup(run_ctx *c)
{
    MK_TRY(mk__agree(c->comm, c->rank == 0 ? MK_OK : mk_lineup_init(&c->cfg, &c->lu)));
    for (int k = 0; k < c->lu.nmodels; k++) MK_TRY(share_model(c, &c->lu.models[k]));
    return mk__agree(c->comm, c->rank == 0 ? MK_OK : mk_lineup_layout(&c->lu));
}

/* A tail batch too small for a k-NN measure's k is left out of its mean. */
static void warn_short_tail(const run_ctx *c)
{
    mk_gram_spec gs;
    mk_gram_spec_init(&gs, c->cfg.measures, c->cfg.nmeasures, c->plan.m);
    int k = mk_gram_short_batch(&gs, c->plan.last_size);
    if (k >= 0)
        mk_warn("the last batch of each epoch has %lld examples, too few for %s's k = %lld nearest neighbours: "
                "%s leaves it out of its mean (as every k-NN measure whose k is above %lld)",
                (long long)c->plan.last_size, mk_measure_names[c->cfg.measures[k].kind],
                (long long)c->cfg.measures[k].k, mk_measure_names[c->cfg.measures[k].kind],
                (long long)(c->plan.last_size - 1));
}

static mk_err setup(run_ctx *c)
{
    MK_TRY(mk__agree(c->comm, c->rank == 0 ? inspect(c) : MK_OK));
    MK_TRY(share_lineup(c));
    if (c->rank != 0) MK_TRY(make_plan(c)); /* cannot fail: rank 0's did not */
    MK_TRY(mk__share_probe(c));
    MK_TRY(share_todo(c));
    if (c->plan.dropped)
        mk_warn("%lld example(s) at the end of each epoch are left out: a batch needs at least %d",
                (long long)c->plan.dropped, MK_MIN_BATCH);
    warn_short_tail(c);
    if (c->todo.batches < c->nranks)
        mk_warn("%d of %d ranks will be idle: there are only %lld batch(es) to compute", c->nranks -
                (int)c->todo.batches, c->nranks, (long long)c->todo.batches);
    return MK_OK;
}

/* ---- results (rank 0) ---- */

/* Each phase's largest time over the ranks, and the largest peak memory. */
static void report_phases(run_ctx *c)
{
    double worst[PH_COUNT];
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    long rss = ru.ru_maxrss, max_rss;
    MPI_Reduce(c->phase, worst, PH_COUNT, MPI_DOUBLE, MPI_MAX, 0, c->comm);
    MPI_Reduce(&rss, &max_rss, 1, MPI_LONG, MPI_MAX, 0, c->comm);
    if (c->rank != 0) return;
    char line[512];
    int off = snprintf(line, sizeof line, "  time per phase (slowest rank):");
    for (int p = 0; p < PH_COUNT; p++)
        off += snprintf(line + off, sizeof line - (size_t)off, " %s %.3f s%s", phase_names[p], worst[p],
                        p + 1 < PH_COUNT ? "," : "");
    mk_info("%s; peak memory per rank %.1f MiB", line, (double)max_rss / 1024.0);
}

/* A layer whose summed HSIC with itself is not positive has no CKA (NaN):
 * said to be constant only when it was constant in every batch. A sum that
 * is not finite is an error, never a 0 in the matrix. h and varied hold
 * flat layers first .. first+count-1. */
static mk_err check_layers(const mk_lineup *lu, const double *h, const double *varied, int first, int count)
{
    for (int l = 0; l < count; l++) {
        int k;
        const char *path = mk_lineup_layer(lu, first + l, &k)->path, *file = lu->models[k].file;
        if (!isfinite(h[l]))
            return mk_fail(MK_EDATA, "%s: layer '%s' has a summed HSIC with itself of %g: its values are too large "
                           "for the sums", file, path, h[l]);
        if (h[l] > 0.0) continue;
        if (varied[l] == 0.0)
            mk_warn("%s: layer '%s' is constant in every batch (a dead layer): its CKA is NaN", file, path);
        else
            mk_warn("%s: layer '%s' has an HSIC with itself of %g though it varies in %.0f batch(es): its CKA is "
                    "undefined (NaN)", file, path, h[l], varied[l]);
    }
    return MK_OK;
}

/* "DIR/cka_measures.png" for plot.file "cka.png": the small multiples'
 * file beside the heatmap (malloc'd). */
static char *measures_figure(const char *dir, const char *file)
{
    const char *dot = strrchr(file, '.');
    int stem = dot && dot != file ? (int)(dot - file) : (int)strlen(file);
    size_t len = strlen(dir) + strlen(file) + 16;
    char *fig = malloc(len);
    if (fig) snprintf(fig, len, "%s/%.*s_measures%s", dir, stem, file, file + stem);
    return fig;
}

/* The heatmap is a view of cka.h5: if it cannot be drawn, the run still
 * succeeded, so it is a warning. A run with measures also gets their small
 * multiples beside it (cka.png: cka_measures.png). */
static void draw_plot(const mk_config *cfg)
{
    const mk_plot_cfg *pc = &cfg->plot;
    mk_plot_opts opts = pc->style;
    if (!opts.title[0]) opts.title = NULL; /* the config's "" asks for the default title */
    size_t len = strlen(cfg->output) + strlen(pc->file) + 16;
    char *h5 = malloc(len), *fig = malloc(len);
    if (h5 && fig) {
        snprintf(h5, len, "%s/cka.h5", cfg->output);
        snprintf(fig, len, "%s/%s", cfg->output, pc->file);
        if (mk_plot_result(h5, &opts, NULL, fig) == MK_OK)
            mk_info("  drew %s", fig);
        else
            mk_warn("no heatmap: %s", mk_errmsg());
    }
    int beyond = 0; /* measures besides cka */
    for (int m = 0; m < cfg->nmeasures; m++) beyond |= cfg->measures[m].kind != MK_MEASURE_CKA;
    char *many = h5 ? measures_figure(cfg->output, pc->file) : NULL;
    if (many && !beyond && unlink(many) == 0) /* as measures.csv: no figure of an earlier run's measures */
        mk_info("  removed %s of an earlier run (this one has no measures)", many);
    if (many && beyond) {
        opts.title = NULL; /* the run's title is the CKA heatmap's */
        if (mk_plot_measures(h5, &opts, "all", many) == MK_OK)
            mk_info("  drew %s", many);
        else
            mk_warn("no figure of the measures: %s", mk_errmsg());
    }
    free(many);
    free(h5);
    free(fig);
}

/* The matrices the sums give: CKA, and its standard errors and p-values
 * when asked for (NULL otherwise). hsic holds the base (hxy | hxx | hyy). */
typedef struct {
    double *hsic, *cka, *stderr_, *pvalue;
    double *measures; /* mk_measures_outputs matrices, or NULL when none is asked for */
    double *measures_se; /* the Gram measures' standard errors (with jackknife groups), or NULL */
} matrices;

static void free_matrices(matrices *mx)
{
    free(mx->hsic);
    free(mx->cka);
    free(mx->stderr_);
    free(mx->pvalue);
    free(mx->measures);
    free(mx->measures_se);
}

/* A mean over fewer batches than the run's is said, per measure: a batch
 * gives no value where a layer is constant in it, an RDM is flat or a tail
 * batch is too small for k (docs/maths.md). */
static void warn_left_out(const run_ctx *c, const double *slots, int64_t n)
{
    double *count = malloc((size_t)n * sizeof *count), batches = (double)c->plan.total;
    if (!count) return;
    mk_gram_counts(n, mk_job_gram_groups(&c->cfg, &c->plan), slots, count);
    int64_t cells = (int64_t)mk_lineup_rows(&c->lu) * mk_lineup_cols(&c->lu);
    for (int m = 0, o = 0; m < c->cfg.nmeasures; m++) {
        if (!mk_gram_measure(c->cfg.measures[m].kind)) continue;
        int64_t some = 0, none = 0;
        double fewest = batches;
        for (int64_t k = o * cells; k < (o + 1) * cells; k++) {
            some += count[k] > 0.0 && count[k] < batches, none += count[k] == 0.0;
            if (count[k] > 0.0 && count[k] < fewest) fewest = count[k];
        }
        if (some)
            mk_warn("%s: %lld of its %lld layer pairs are the mean of fewer batches than the run's %.0f (as few as "
                    "%.0f): the others gave no value (a layer constant in the batch, an RDM of equal entries, or "
                    "too few examples for k)", mk_measure_names[c->cfg.measures[m].kind], (long long)some,
                    (long long)cells, batches, fewest);
        if (none)
            mk_warn("%s: %lld of its %lld layer pairs have no value in any batch (NaN)",
                    mk_measure_names[c->cfg.measures[m].kind], (long long)none, (long long)cells);
        o++;
    }
    free(count);
}

/* The Gram measures' means over the batches and their standard errors,
 * into their places among every measure's matrices (mx->measures: the
 * second-moment measures' from mk__spread_measures, or allocated here);
 * the standard errors of the others are NaN. Rank 0. */
static mk_err gram_matrices(run_ctx *c, const double *total, matrices *mx)
{
    const mk_config *k = &c->cfg;
    int64_t cells = (int64_t)mk_lineup_rows(&c->lu) * mk_lineup_cols(&c->lu), G = mk_job_gram_groups(k, &c->plan);
    int64_t all = (int64_t)mk_measures_outputs(k->measures, k->nmeasures) * cells, n = 0;
    for (int m = 0; m < k->nmeasures; m++) n += mk_gram_measure(k->measures[m].kind) * cells;
    if (!n) return MK_OK;
    mk_err err = MK_OK;
    double *mean = mk_malloc((size_t)(2 * n) * sizeof *mean, "the Gram measures", &err), *se = mean + n;
    if (!err && !mx->measures) mx->measures = mk_malloc((size_t)all * sizeof *mx->measures, "the measures", &err);
    if (!err && G) mx->measures_se = mk_malloc((size_t)all * sizeof *mx->measures_se, "the measures", &err);
    if (!err) {
        const double *sums = total + mk__gram_at(c);
        mk_gram_finish(n, G, sums, mean, se);
        warn_left_out(c, sums, n);
        for (int64_t q = 0; mx->measures_se && q < all; q++) mx->measures_se[q] = NAN;
        const char *names[2];
        for (int m = 0, o = 0, g = 0; m < k->nmeasures; o += mk_measure_outputs(k->measures[m].kind, names), m++) {
            if (!mk_gram_measure(k->measures[m].kind)) continue;
            memcpy(mx->measures + o * cells, mean + g * cells, (size_t)cells * sizeof *mean);
            if (mx->measures_se) memcpy(mx->measures_se + o * cells, se + g * cells, (size_t)cells * sizeof *se);
            g++;
        }
    }
    free(mean);
    return err;
}

static mk_err make_matrices(run_ctx *c, batch_mem *b, const double *total, matrices *mx)
{
    int nx = mk_lineup_rows(&c->lu), ny = mk_lineup_cols(&c->lu);
    int64_t base = mk_job_base_len(&c->lu), cells = (int64_t)nx * ny;
    mk_err err = MK_OK;
    mx->hsic = mk_malloc((size_t)base * sizeof(double), "the HSIC sums", &err);
    if (!err) mx->cka = mk_malloc((size_t)cells * sizeof(double), "the CKA matrix", &err);
    if (!err && c->groups) mx->stderr_ = mk_malloc((size_t)cells * sizeof(double), "standard errors", &err);
    if (!err && c->cfg.permutations) mx->pvalue = mk_malloc((size_t)cells * sizeof(double), "p-values", &err);
    if (err) return err;
    double *hxy = mx->hsic, *hxx = hxy + cells, *hyy = hxx + nx;
    if (c->cfg.estimator == MK_EST_EXACT)
        mk_exact_hsic(&b->exact, total, c->plan.n, c->cfg.debiased, nx, ny, c->lu.cross ? nx : 0, hxy, hxx, hyy);
    else
        memcpy(mx->hsic, total, (size_t)base * sizeof(double));
    mk_cka_from_sums(nx, ny, hxy, hxx, hyy, mx->cka);
    if (mx->stderr_) err = mk_jackknife_stderr(nx, ny, total, c->groups, total + base, mx->stderr_);
    if (mx->pvalue) mk_perm_pvalue(nx, ny, hxy, c->cfg.permutations, total + base * (1 + c->groups), mx->pvalue);
    MK_TRY(err);
    const double *varied = total + mk__leaf_len(c) - c->lu.nlayers;
    err = check_layers(&c->lu, hxx, varied, 0, nx);
    if (!err && c->lu.cross) err = check_layers(&c->lu, hyy, varied + nx, nx, ny);
    return err;
}

static mk_err write_results(run_ctx *c, const matrices *mx)
{
    int nx = mk_lineup_rows(&c->lu), ny = mk_lineup_cols(&c->lu);
    const double *hxy = mx->hsic, *hxx = hxy + nx * ny, *hyy = hxx + nx;
    mk_result res = {&c->cfg, &c->lu, &c->plan, mx->cka, hxy, hxx, hyy, mx->stderr_, mx->pvalue, c->groups,
                     c->nranks, c->threads, MPI_Wtime() - c->t0, 0.0, c->segments_before + 1, mx->measures,
                     mx->measures_se};
    res.seconds_total = c->seconds_before + res.seconds;
    mk_err err = mk_output_write(&res);
    if (!err) mk_output_summary(stdout, &res);
    if (!err && c->cfg.plot.enabled) draw_plot(&c->cfg);
    return err;
}

/* Whether cfg lists a measure of the second moments (exact only). */
static int has_moment_measures(const mk_config *cfg)
{
    for (int m = 0; m < cfg->nmeasures; m++)
        if (cfg->measures[m].kind != MK_MEASURE_CKA && !mk_gram_measure(cfg->measures[m].kind)) return 1;
    return 0;
}

/* Rank 0 makes the CKA matrices and checks the layers' sums; then every
 * rank computes its share of the measures beyond CKA; rank 0 writes. The
 * result is written: a checkpoint of this run would only resume it. */
static mk_err reduce_and_write(run_ctx *c, batch_mem *b)
{
    mk_err err = MK_OK;
    double *total = NULL, clock = MPI_Wtime();
    matrices mx = {0};
    mk_accum *merged;
    MK_TRY(mk__gather(c, b, &merged));
    if (c->rank == 0) total = mk_malloc((size_t)mk__leaf_len(c) * sizeof(double), "the HSIC sums", &err);
    if (!err && c->rank == 0) mk_accum_total(merged, total);
    mk_accum_free(merged);
    c->phase[PH_REDUCE] += mk__lap(&clock);
    if (!err && c->rank == 0) err = make_matrices(c, b, total, &mx);
    err = mk__agree(c->comm, err);
    c->phase[PH_WRITE] += mk__lap(&clock);
    if (!err && has_moment_measures(&c->cfg)) /* collective: every rank goes on, or none */
        err = mk__spread_measures(c, b, total, &mx.measures);
    if (!err && c->rank == 0) err = gram_matrices(c, total, &mx);
    c->phase[PH_MEASURES] += mk__lap(&clock);
    if (!err && c->rank == 0) err = write_results(c, &mx);
    if (!err && c->rank == 0) mk__drop_checkpoint(c);
    c->phase[PH_WRITE] += mk__lap(&clock);
    free(total);
    free_matrices(&mx);
    MK_TRY(mk__agree(c->comm, err));
    report_phases(c);
    return MK_OK;
}

/* ---- entry ---- */

/* BLAS runs single-threaded, whatever OPENBLAS_NUM_THREADS or the binding
 * says (some OpenBLAS calls change their bits with the thread count); the
 * rank's own threads (mpicka/par.h) share out fixed blocks instead, so the
 * bits do not depend on them. Collective: warns when the ranks on rank 0's
 * node want more cores than it has. */
static void set_threads(run_ctx *c)
{
    mk_blas_set_threads(1);
    c->threads = mk_par_threads_wanted(c->cfg.threads);
    MPI_Comm node;
    int local, wanted;
    MPI_Comm_split_type(c->comm, MPI_COMM_TYPE_SHARED, 0, MPI_INFO_NULL, &node);
    MPI_Comm_size(node, &local);
    MPI_Allreduce(&c->threads, &wanted, 1, MPI_INT, MPI_SUM, node);
    MPI_Comm_free(&node);
    long cores = sysconf(_SC_NPROCESSORS_ONLN);
    if (cores > 0 && wanted > cores)
        mk_warn("%d rank(s) x %d thread(s) = %d threads on a node of %ld cores: the ranks will slow each other "
                "down (set threads, or Slurm's --cpus-per-task)", local, c->threads, wanted, cores);
}

static mk_err run(run_ctx *c, const run_args *a)
{
    batch_mem b = {0};
    mk_err err = mk__stop_before_batches(c);
    if (!err) err = load_config(c, a);
    if (!err) set_threads(c);
    if (!err) err = setup(c);
    if (!err) err = mk__stop_before_batches(c);
    if (!err) err = mk__compute(c, &b);
    if (!err) err = reduce_and_write(c, &b);
    mk__free_mem(c, &b);
    return err;
}

mk_err mk_run_main(int argc, char **argv)
{
    run_ctx c = {.comm = MPI_COMM_WORLD, .outdir = {.lock = -1}};
    run_args a;
    MPI_Comm_rank(c.comm, &c.rank);
    MPI_Comm_size(c.comm, &c.nranks);
    mk_log_init(c.rank);
    c.t0 = MPI_Wtime();
    mk_err err = parse_args(argc, argv, &a);
    c.progress = a.progress;
    c.restart = a.restart;
    c.force = a.force;
    if (!err && a.help && c.rank == 0) usage(stdout);
    if (!err && !a.help) err = run(&c, &a); /* the signal handlers are main's first act */
    mk_error_report(err);
    if (err && c.rank == 0 && c.outdir.ncreated && (err == MK_EDATA || err == MK_EINPUT))
        mk__drop_checkpoint(&c); /* of data that must change anyway, in a folder made now */
    if (c.rank == 0) mk_output_release(&c.outdir, c.cfg.output, err != MK_OK);
    free(a.sets);
    mk_config_free(&c.cfg);
    mk_todo_free(&c.todo);
    mk_nodes_free(&c.saved);
    free(c.fingerprint);
    free(c.scale);
    free(c.mu0);
    mk_kept_free(&c.kept);
    mk_lineup_free(&c.lu);
    return err;
}
