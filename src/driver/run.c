#include "mpicka/run.h"

#include <math.h>
#include <mpi.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include "mpicka/accum.h"
#include "mpicka/blas.h"
#include "mpicka/checkpoint.h"
#include "mpicka/ckafile.h"
#include "mpicka/cli.h"
#include "mpicka/config.h"
#include "mpicka/exact.h"
#include "mpicka/hsic.h"
#include "mpicka/job.h"
#include "mpicka/lineup.h"
#include "mpicka/log.h"
#include "mpicka/output.h"
#include "mpicka/par.h"
#include "mpicka/plan.h"
#include "mpicka/plotcmd.h"
#include "mpicka/progress.h"
#include "mpicka/reader.h"
#include "mpicka/source.h"

/* Where the time goes, per rank, in seconds (reported by the summary and the
 * benchmark; also stored in cka.h5). */
enum {
    PH_READ = MK_READER_READ, PH_CENTRE = MK_READER_CENTRE, PH_WAIT = MK_READER_WAIT, /* from the reader */
    PH_GRAM = MK_READER_TIMES, PH_UCENTRE, PH_PAIRS, PH_PERMUTE, PH_SETUP, PH_REDUCE, PH_WRITE, PH_COUNT
};
static const char *const phase_names[PH_COUNT] = {"read", "centre", "wait", "gram", "ucentre", "pairs",
                                                  "permute", "setup", "reduce", "write"};

typedef struct {
    MPI_Comm comm;
    int rank, nranks;
    double phase[PH_COUNT];
    mk_config cfg;
    mk_lineup lu;         /* the models; rank 0 inspects them, every rank gets them */
    mk_plan plan;
    int64_t groups;       /* jackknife groups in use (0: none) */
    mk_todo todo;         /* the batches this run computes */
    mk_nodes saved;       /* rank 0: the partial sums a checkpoint brought */
    double *scale;        /* per flat layer: the power of two its values are multiplied by */
    double *mu0;          /* exact: the shift of the feature sums (mpicka/exact.h) */
    char *fingerprint;    /* rank 0 */
    double seconds_before;   /* rank 0: time of the segments a checkpoint brought */
    int threads;          /* this rank's threads for the Grams and pairs */
    int64_t segments_before; /* and how many they were */
    double last_checkpoint;
    int restart;
    int force;            /* overwrite results, or discard a checkpoint, of another config */
    int progress;         /* as in run_args */
    mk_outdir outdir;     /* rank 0: the locked output folder */
    double t0;
} run_ctx;

/* Per-rank working memory for one minibatch. */
typedef struct {
    mk_source **srcs;     /* per model */
    mk_reader *reader;
    mk_hsic_ws ws;
    double *v;            /* the centred kernels of every layer, stacked in the flat order */
    double *vperm;        /* the columns', permuted */
    int64_t *perm;
    mk_exact exact;       /* estimator: exact */
    double *leaf;         /* what one batch adds (see mk_job_sums_len) */
    mk_accum *acc;
    mk_par *par;          /* this rank's threads for the Grams and pairs */
} batch_mem;

/* ---- collective verdicts ---- */

/* Every rank learns whether any rank failed; the lowest failing rank's code
 * and message become everyone's. */
static mk_err agree(MPI_Comm comm, mk_err local)
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
static mk_err bcast_bytes(MPI_Comm comm, char **buf, int64_t *len)
{
    int rank;
    MPI_Comm_rank(comm, &rank);
    MPI_Bcast(len, 1, MPI_INT64_T, 0, comm);
    mk_err err = MK_OK;
    if (rank != 0) *buf = mk_malloc((size_t)*len + 1, "a broadcast buffer", &err);
    MK_TRY(agree(comm, err));
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
    "with itself, or of a list of models) from HDF5 activations; see the README.",
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
    MK_TRY(agree(c->comm, err));
    MK_TRY(bcast_bytes(c->comm, &text, &len));
    text[len] = '\0';
    err = mk_config_parse(text, (size_t)len, a->config, a->sets, a->nsets, &c->cfg);
    free(text);
    return agree(c->comm, err);
}

/* ---- inspection of the inputs (rank 0) and the plan ---- */

static mk_err make_plan(run_ctx *c)
{
    MK_TRY(mk_job_plan(&c->cfg, &c->lu, &c->plan));
    c->groups = mk_job_jackknife_groups(&c->cfg, &c->plan);
    return MK_OK;
}

/* ---- checkpoints ---- */

/* Valid once the memory check has passed (then it is far below 2^53). */
static int64_t leaf_len(const run_ctx *c) { return (int64_t)mk_job_sums_len(&c->cfg, &c->lu, &c->plan); }


static mk_err fingerprint_model(FILE *f, const mk_model *model)
{
    char **files;
    int count;
    MK_TRY(mk_model_files(model, &files, &count));
    for (int i = 0; i < count; i++) {
        struct stat st;
        int known = stat(files[i], &st) == 0;
        fprintf(f, "file %s, %lld bytes, modified %lld.%09ld\n", files[i], known ? (long long)st.st_size : -1LL,
                known ? (long long)st.st_mtim.tv_sec : -1LL, known ? st.st_mtim.tv_nsec : 0L);
    }
    mk_model_files_free(files, count);
    for (int l = 0; l < model->nlayers; l++)
        fprintf(f, "  %s %s %s\n", model->layers[l].path, model->layers[l].shape, model->layers[l].dtype);
    return MK_OK;
}

/* What shapes the sums: a checkpoint from anything else must not be resumed. */
static mk_err make_fingerprint(run_ctx *c)
{
    size_t size;
    FILE *f = open_memstream(&c->fingerprint, &size);
    if (!f) return mk_fail(MK_ENOMEM, "cannot make the run's fingerprint");
    const mk_config *k = &c->cfg;
    fprintf(f, "batch_size %lld, epochs %lld, shuffle %d, seed %llu, precision %d\n", (long long)k->batch_size,
            (long long)k->epochs, k->shuffle, (unsigned long long)k->seed, (int)k->precision);
    if (k->shuffle && k->shuffle_block > 1) fprintf(f, "shuffle_block %lld\n", (long long)k->shuffle_block);
    fprintf(f, "estimator %d, kernel %d, rbf_threshold %.17g, jackknife %lld, permutations %lld\n", (int)k->estimator,
            (int)k->kernel, k->kernel == MK_KERNEL_RBF ? k->rbf_threshold : 0.0, (long long)c->groups,
            (long long)k->permutations);
    mk_err err = MK_OK;
    if (c->lu.listed) fprintf(f, "models %d\n", c->lu.nmodels);
    for (int mod = 0; mod < c->lu.nmodels && !err; mod++) err = fingerprint_model(f, &c->lu.models[mod]);
    fprintf(f, "sums format 2, layer scales");
    for (int l = 0; l < c->lu.nlayers; l++) fprintf(f, " %a", c->scale[l]);
    fputc('\n', f);
    if (fclose(f) != 0 && !err) err = mk_fail(MK_ENOMEM, "cannot make the run's fingerprint");
    return err;
}

static char *checkpoint_path(const run_ctx *c)
{
    size_t len = strlen(c->cfg.output) + 32;
    char *path = malloc(len);
    if (path) snprintf(path, len, "%s/checkpoint.h5", c->cfg.output);
    return path;
}

/* The first line where two fingerprints differ, for the message. */
static void first_difference(const char *a, const char *b, char *out, size_t len)
{
    while (*a && *a == *b) {
        const char *na = strchr(a, '\n'), *nb = strchr(b, '\n');
        if (!na || !nb || na - a != nb - b || strncmp(a, b, (size_t)(na - a))) break;
        a = na + 1;
        b = nb + 1;
    }
    snprintf(out, len, "it has '%.*s', this run '%.*s'", (int)strcspn(b, "\n"), b, (int)strcspn(a, "\n"), a);
}

static mk_err load_checkpoint(run_ctx *c)
{
    char *path = checkpoint_path(c);
    if (!path) return mk_fail(MK_ENOMEM, "out of memory");
    mk_err err = MK_OK;
    if (c->restart) unlink(path);
    if (access(path, F_OK) != 0) {
        free(path);
        return mk_todo_all(&c->plan, &c->todo);
    }
    mk_checkpoint ck;
    err = mk_checkpoint_read(path, &ck);
    if (!err && strcmp(ck.fingerprint, c->fingerprint) && c->force) {
        mk_warn("%s was made by another configuration or other inputs: discarded (--force)", path);
        mk_checkpoint_free(&ck);
        unlink(path);
        free(path);
        return mk_todo_all(&c->plan, &c->todo);
    }
    if (!err && strcmp(ck.fingerprint, c->fingerprint)) {
        char diff[1024];
        first_difference(c->fingerprint, ck.fingerprint, diff, sizeof diff);
        err = mk_fail(MK_ECONFIG, "%s was made by another configuration or other inputs (%s); rerun with --restart "
                      "(or --force) to discard it", path, diff);
    }
    if (!err) err = mk_checkpoint_validate(&ck, path, &c->plan, leaf_len(c));
    if (!err) {
        mk_info("mpicka: resuming from %s: %lld of %lld batches left", path, (long long)ck.todo.batches,
                (long long)c->plan.total);
        c->todo = ck.todo;
        c->saved = ck.nodes;
        c->seconds_before = ck.seconds;
        c->segments_before = ck.segments;
        ck.todo = (mk_todo){0};
        ck.nodes = (mk_nodes){0};
    }
    mk_checkpoint_free(&ck);
    free(path);
    return err;
}

/* Every rank's partial sums (and the saved ones) meet on rank 0. */
static mk_err gather(run_ctx *c, batch_mem *b, mk_accum **merged)
{
    return agree(c->comm, mk_accum_gather(b->acc, c->rank == 0 ? &c->saved : NULL, c->comm, merged));
}

/* The todo list less what every rank has done in `steps` lockstep steps. */
static mk_err remaining(const run_ctx *c, int64_t steps, mk_todo *left)
{
    mk_err err = MK_OK;
    left->spans = mk_malloc((size_t)c->todo.count * sizeof *left->spans, "the batch list", &err);
    if (err) return err;
    memcpy(left->spans, c->todo.spans, (size_t)c->todo.count * sizeof *left->spans);
    left->count = c->todo.count;
    left->batches = c->todo.batches;
    for (int r = c->nranks - 1; r >= 0 && !err; r--) { /* from the end: earlier positions stay put */
        int64_t lo, hi;
        mk_plan_rank_range(c->todo.batches, r, c->nranks, &lo, &hi);
        err = mk_todo_remove(left, lo, lo + (steps < hi - lo ? steps : hi - lo));
    }
    return err;
}

/* Collective. */
static mk_err write_checkpoint(run_ctx *c, batch_mem *b, int64_t steps)
{
    mk_accum *merged;
    MK_TRY(gather(c, b, &merged));
    mk_err err = MK_OK;
    if (c->rank == 0) {
        mk_todo left = {0};
        mk_nodes nodes = {0};
        char *path = checkpoint_path(c);
        err = path ? remaining(c, steps, &left) : mk_fail(MK_ENOMEM, "out of memory");
        if (!err) err = mk_accum_nodes(merged, &nodes);
        mk_reader_hold_hdf5(b->reader);
        if (!err)
            err = mk_checkpoint_write(path, c->fingerprint, &left, &nodes, c->seconds_before + MPI_Wtime() - c->t0,
                                      c->segments_before + 1);
        mk_reader_release_hdf5(b->reader);
        mk_todo_free(&left);
        mk_nodes_free(&nodes);
        free(path);
        mk_accum_free(merged);
    }
    c->last_checkpoint = MPI_Wtime();
    return agree(c->comm, err);
}

static volatile sig_atomic_t stop_signal;

static void on_signal(int sig) { stop_signal = sig; }

static void catch_signals(void)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGUSR1, &sa, NULL);
}

/* Collective, after each step: stop on a signal any rank received, or save a
 * checkpoint when rank 0's clock or the batch count says it is time. */
static mk_err between_steps(run_ctx *c, batch_mem *b, int64_t steps, int64_t done_before, int64_t done_now)
{
    const mk_checkpoint_cfg *k = &c->cfg.checkpoint;
    int due = k->enabled && ((k->every > 0 && done_now / k->every > done_before / k->every) ||
                             (k->seconds > 0 && MPI_Wtime() - c->last_checkpoint >= (double)k->seconds));
    int flags[2] = {stop_signal, c->rank == 0 && due}, any[2];
    MPI_Allreduce(flags, any, 2, MPI_INT, MPI_MAX, c->comm);
    if (!any[0] && !any[1]) return MK_OK;
    if (any[0] && done_now == c->plan.total) return MK_OK; /* finished anyway */
    MK_TRY(write_checkpoint(c, b, steps));
    if (!any[0]) return MK_OK;
    char *path = checkpoint_path(c);
    mk_err err = mk_fail(MK_ESTOPPED, "stopped by signal %d after %lld of %lld batches; the checkpoint is in %s: "
                         "run the same command again to resume", any[0], (long long)done_now,
                         (long long)c->plan.total, path ? path : c->cfg.output);
    free(path);
    return err;
}

/* ---- the first batch: each layer's scale, and the exact sums' shift ---- */

/* The largest |value| of a block as read (float or double). */
static double raw_absmax(const void *buf, int in_f32, int64_t count)
{
    double most = 0.0;
    for (int64_t k = 0; k < count; k++) {
        double v = fabs(in_f32 ? ((const float *)buf)[k] : ((const double *)buf)[k]);
        most = v > most ? v : most;
    }
    return most;
}

/* The scale of one layer from its first examples (in buf, k by p), and
 * the column means of the scaled values into mean. A layer whose centred
 * values would overflow or underflow the Grams is brought near 1 by a power
 * of two fixed for the whole run: CKA is invariant to it, and the same
 * factor in every batch keeps the HSIC sums comparable. */
static mk_err layer_scale(const mk_model *model, const mk_layer *lay, const void *buf, int64_t k, mk_precision prec,
                          double *work, double *mean, double *scale)
{
    mk_centring how = {.scale = 1.0};
    int64_t bad = mk_centre(buf, lay->in_f32, k, lay->p, MK_PREC_FLOAT64, mean, work, &how);
    if (bad >= 0) /* the probe reads examples 0..k-1: the row is the example */
        return mk_fail(MK_EDATA, "%s: dataset '%s' holds NaN or Inf at example %lld", model->file, lay->path,
                       (long long)bad);
    if (!isfinite(how.amax)) { /* finite values whose differences overflow */
        how.scale = ldexp(1.0, -ilogb(raw_absmax(buf, lay->in_f32, k * lay->p)) - 2);
        mk_centre(buf, lay->in_f32, k, lay->p, MK_PREC_FLOAT64, mean, work, &how);
    }
    double more = mk_safe_scale(how.amax, lay->p, prec);
    *scale = how.scale * more;
    if (more != 1.0) { /* the means of the values as scaled, for the exact sums' shift */
        how.scale = *scale;
        mk_centre(buf, lay->in_f32, k, lay->p, MK_PREC_FLOAT64, mean, work, &how);
    }
    return MK_OK;
}

/* Rank 0, before the run: reads the first min(m, n) examples of every
 * layer (a fixed set, so any rank count gets the same numbers). The exact
 * sums are shifted by their means (near the mean, S - n d d^T cancels
 * little). */
static mk_err probe_layers(run_ctx *c)
{
    int64_t k = c->plan.m < c->plan.n ? c->plan.m : c->plan.n, col = 0, P = mk_lineup_features(&c->lu);
    int L = c->lu.nlayers;
    mk_err err = MK_OK;
    mk_source *src = NULL;
    int64_t *rows = mk_malloc((size_t)k * sizeof *rows, "row numbers", &err);
    double *buf = NULL, *work = NULL, *mean = NULL;
    c->scale = err ? NULL : mk_malloc((size_t)L * sizeof *c->scale, "layer scales", &err);
    if (!err) c->mu0 = mk_calloc((size_t)P, sizeof *c->mu0, "the shift of the exact sums", &err);
    for (int64_t i = 0; !err && i < k; i++) rows[i] = i;
    /* Once, for the widest layer: fresh pages for every layer cost more
     * than reading it (a page fault each). */
    int64_t p = mk_lineup_widest(&c->lu, NULL)->p;
    if (!err) buf = mk_malloc((size_t)(k * p) * sizeof(double), "a probe block", &err);
    if (!err) work = mk_malloc((size_t)(k * p) * sizeof(double), "a probe block", &err);
    if (!err) mean = mk_malloc((size_t)(3 * p) * sizeof *mean, "column means", &err);
    for (int mod = 0, flat = 0; mod < c->lu.nmodels && !err; mod++) {
        const mk_model *model = &c->lu.models[mod];
        err = mk_source_open(model, mk_lineup_cache_share(&c->lu, mod), &src);
        for (int l = 0; l < model->nlayers && !err; l++, flat++) {
            const mk_layer *lay = &model->layers[l];
            err = mk_source_read(src, l, rows, k, buf);
            if (!err) err = layer_scale(model, lay, buf, k, c->cfg.precision, work, mean, &c->scale[flat]);
            if (!err) memcpy(c->mu0 + col, mean, (size_t)lay->p * sizeof *mean);
            col += lay->p;
        }
        mk_source_close(src);
        src = NULL;
    }
    free(rows), free(buf), free(work), free(mean);
    return err;
}

/* Every rank gets rank 0's scales and shift. */
static mk_err share_probe(run_ctx *c)
{
    int L = c->lu.nlayers;
    int64_t P = mk_lineup_features(&c->lu);
    mk_err err = MK_OK;
    if (c->rank != 0) {
        c->scale = mk_malloc((size_t)L * sizeof *c->scale, "layer scales", &err);
        if (!err) c->mu0 = mk_malloc((size_t)P * sizeof *c->mu0, "the shift of the exact sums", &err);
    }
    MK_TRY(agree(c->comm, err));
    MPI_Bcast(c->scale, L, MPI_DOUBLE, 0, c->comm);
    MPI_Bcast(c->mu0, (int)P, MPI_DOUBLE, 0, c->comm);
    return MK_OK;
}

/* Results of another configuration are not overwritten without --force; a
 * rerun of the same one is. */
static mk_err check_old_results(const run_ctx *c)
{
    size_t len = strlen(c->cfg.output) + 16;
    char *path = malloc(len), a[512], b[512];
    if (!path) return mk_fail(MK_ENOMEM, "out of memory");
    snprintf(path, len, "%s/cka.h5", c->cfg.output);
    mk_err err = MK_OK;
    if (!c->force && access(path, F_OK) == 0) {
        mk_ckafile old;
        const char *config = mk_ckafile_read(path, &old) == MK_OK ? mk_ckafile_text(&old, "config") : NULL;
        if (!config)
            err = mk_fail(MK_ECONFIG, "output folder '%s' holds a cka.h5 whose configuration cannot be read; choose "
                          "another output folder, or pass --force to overwrite it", c->cfg.output);
        else if (mk_config_first_difference(config, c->cfg.resolved, a, b, sizeof a))
            err = mk_fail(MK_ECONFIG, "output folder '%s' holds the results of another configuration (it has '%s', "
                          "this run '%s'); choose another output folder, or pass --force to overwrite them",
                          c->cfg.output, a, b);
        mk_ckafile_free(&old);
    }
    free(path);
    return err;
}

static mk_err inspect(run_ctx *c)
{
    MK_TRY(mk_lineup_inspect(&c->cfg, &c->lu));
    MK_TRY(make_plan(c));
    MK_TRY(mk_job_preflight(&c->cfg, &c->lu, &c->plan));
    mk_job_warn_ids(&c->cfg, &c->lu);
    MK_TRY(check_old_results(c));
    MK_TRY(mk_output_prepare(c->cfg.output, c->cfg.plot.enabled ? c->cfg.plot.file : NULL, &c->outdir));
    MK_TRY(probe_layers(c));
    MK_TRY(make_fingerprint(c));
    return load_checkpoint(c);
}

static mk_err share_model(run_ctx *c, mk_model *model)
{
    char *buf = NULL;
    int64_t len = 0;
    mk_err err = MK_OK;
    if (c->rank == 0) err = mk_model_pack(model, &buf, &len);
    MK_TRY(agree(c->comm, err));
    MK_TRY(bcast_bytes(c->comm, &buf, &len));
    if (c->rank != 0) err = mk_model_unpack(buf, len, model);
    free(buf);
    return agree(c->comm, err);
}

static mk_err share_todo(run_ctx *c)
{
    mk_err err = MK_OK;
    MPI_Bcast(&c->todo.count, 1, MPI_INT, 0, c->comm);
    MPI_Bcast(&c->todo.batches, 1, MPI_INT64_T, 0, c->comm);
    if (c->rank != 0) c->todo.spans = mk_malloc((size_t)c->todo.count * sizeof *c->todo.spans, "the batch list", &err);
    MK_TRY(agree(c->comm, err));
    MPI_Bcast(c->todo.spans, 2 * c->todo.count, MPI_INT64_T, 0, c->comm);
    return MK_OK;
}

static mk_err share_lineup(run_ctx *c)
{
    MK_TRY(agree(c->comm, c->rank == 0 ? MK_OK : mk_lineup_init(&c->cfg, &c->lu)));
    for (int k = 0; k < c->lu.nmodels; k++) MK_TRY(share_model(c, &c->lu.models[k]));
    return agree(c->comm, c->rank == 0 ? MK_OK : mk_lineup_layout(&c->lu));
}

static mk_err setup(run_ctx *c)
{
    MK_TRY(agree(c->comm, c->rank == 0 ? inspect(c) : MK_OK));
    MK_TRY(share_lineup(c));
    if (c->rank != 0) MK_TRY(make_plan(c)); /* cannot fail: rank 0's did not */
    MK_TRY(share_probe(c));
    MK_TRY(share_todo(c));
    if (c->plan.dropped)
        mk_warn("%lld example(s) at the end of each epoch are left out: a batch needs at least %d",
                (long long)c->plan.dropped, MK_MIN_BATCH);
    if (c->todo.batches < c->nranks)
        mk_warn("%d of %d ranks will be idle: there are only %lld batch(es) to compute", c->nranks -
                (int)c->todo.batches, c->nranks, (long long)c->todo.batches);
    return MK_OK;
}

/* ---- the batches ---- */


/* The exact estimator's layers: in the flat order. */
static mk_err alloc_exact(run_ctx *c, batch_mem *b, int64_t m)
{
    int L = c->lu.nlayers;
    mk_err err = MK_OK;
    int64_t *p = mk_malloc((size_t)L * sizeof *p, "layer widths", &err);
    if (err) return err;
    for (int l = 0; l < L; l++) p[l] = mk_lineup_layer(&c->lu, l, NULL)->p;
    err = mk_exact_init(&b->exact, L, p, m, c->cfg.precision);
    free(p);
    return err;
}

static mk_err alloc_minibatch(run_ctx *c, batch_mem *b, int64_t m)
{
    const mk_config *k = &c->cfg;
    mk_hsic_opts opts = {k->estimator, k->kernel, k->rbf_threshold};
    mk_err err = MK_OK;
    int64_t len = mk_row_len(k->estimator, m), ny = mk_lineup_cols(&c->lu);
    MK_TRY(mk_hsic_ws_init(&b->ws, m, 0, k->precision, &opts)); /* the reader centres */
    b->v = mk_malloc((size_t)(c->lu.nlayers * len) * sizeof(double), "centred kernels", &err);
    if (!err && k->permutations) b->vperm = mk_malloc((size_t)(ny * len) * sizeof(double), "permuted kernels", &err);
    if (!err && k->permutations) b->perm = mk_malloc((size_t)m * sizeof(int64_t), "a permutation", &err);
    return err;
}

static mk_err alloc_mem(run_ctx *c, batch_mem *b)
{
    mk_err err = MK_OK;
    int64_t m = c->plan.m < c->plan.n ? c->plan.m : c->plan.n;
    MK_TRY(mk_par_create(c->threads, &b->par));
    MK_TRY(c->cfg.estimator == MK_EST_EXACT ? alloc_exact(c, b, m) : alloc_minibatch(c, b, m));
    b->ws.par = b->exact.par = b->par;
    b->leaf = mk_malloc((size_t)leaf_len(c) * sizeof(double), "a batch's sums", &err);
    if (!err) err = mk_accum_create(leaf_len(c), &b->acc);
    return err;
}

static void free_mem(run_ctx *c, batch_mem *b)
{
    mk_reader_stop(b->reader, c->phase);
    b->reader = NULL;
    for (int k = 0; b->srcs && k < c->lu.nmodels; k++) mk_source_close(b->srcs[k]);
    free(b->srcs);
    mk_hsic_ws_free(&b->ws);
    mk_exact_free(&b->exact);
    free(b->v);
    free(b->vperm);
    free(b->perm);
    free(b->leaf);
    mk_accum_free(b->acc);
    mk_par_free(b->par);
}

static double lap(double *since)
{
    double now = MPI_Wtime(), dt = now - *since;
    *since = now;
    return dt;
}

/* A block too large for the Grams, after the scale its layer got from the
 * first batch. */
static mk_err too_large(const run_ctx *c, const mk_block *blk, const char *what)
{
    const mk_model *model = &c->lu.models[blk->model];
    const mk_layer *layer = &model->layers[blk->layer];
    double scale = c->scale[c->lu.offset[blk->model] + blk->layer];
    return mk_fail(MK_EDATA, "%s: dataset '%s', batch %lld (examples %lld..%lld): %s (centred values up to %g after "
                   "the scale 2^%d fixed from the first examples); the layer's values change by too many orders of "
                   "magnitude between batches%s", model->file, layer->path, (long long)blk->g,
                   (long long)blk->rows[0], (long long)blk->rows[blk->m - 1], what, blk->amax, ilogb(scale),
                   c->cfg.precision == MK_PREC_FLOAT32 ? "; precision: float64 has a wider range" : "");
}

/* The layer varied in this batch: its count at the end of the leaf. */
static void count_varied(const run_ctx *c, batch_mem *b, const mk_block *blk)
{
    b->leaf[leaf_len(c) - c->lu.nlayers + c->lu.offset[blk->model] + blk->layer] = blk->constant ? 0.0 : 1.0;
}

/* A layer's block becomes its Gram at once, so only one layer's activations
 * are held at a time (plus the one being read ahead); the Gram's centred
 * kernel is computed in the background, alongside the next layer's Gram,
 * when the rank has a thread for it. */
static mk_err layer_row(run_ctx *c, batch_mem *b, const mk_block *blk)
{
    const mk_layer *layer = &c->lu.models[blk->model].layers[blk->layer];
    int64_t len = mk_row_len(c->cfg.estimator, blk->m);
    double clock = MPI_Wtime(), *v = b->v + (c->lu.offset[blk->model] + blk->layer) * len;
    count_varied(c, b, blk);
    if (mk_block_overflows(blk->amax, layer->p, c->cfg.precision)) return too_large(c, blk, "its Gram would overflow");
    if (mk_gram(&b->ws, blk->data, blk->m, layer->p)) return too_large(c, blk, "its Gram overflows");
    c->phase[PH_GRAM] += lap(&clock);
    mk_kernel_start(&b->ws, blk->m, v);
    c->phase[PH_UCENTRE] += lap(&clock); /* the wait for the previous kernel, or this one run here */
    return MK_OK;
}

/* HSIC sums must not be poisoned: a batch's own HSIC of a layer is finite
 * (it bounds the layer's cross terms by Cauchy-Schwarz). h holds flat
 * layers first .. first+count-1. */
static mk_err check_self(const run_ctx *c, const mk_block *blk, const double *h, int first, int count)
{
    for (int l = 0; l < count; l++) {
        if (isfinite(h[l])) continue;
        int k;
        const mk_layer *layer = mk_lineup_layer(&c->lu, first + l, &k);
        return mk_fail(MK_EDATA, "%s: dataset '%s', batch %lld (examples %lld..%lld): its HSIC with itself is %g, "
                       "not a finite number", c->lu.models[k].file, layer->path, (long long)blk->g,
                       (long long)blk->rows[0], (long long)blk->rows[blk->m - 1], h[l]);
    }
    return MK_OK;
}

/* The columns' kernels in v: y's (cross) or all. The rows' length, and so
 * where y's start, depends on the batch's size (a tail batch is smaller). */
static const double *cols_of(const run_ctx *c, const batch_mem *b, int64_t m)
{
    return c->lu.cross ? b->v + mk_lineup_rows(&c->lu) * mk_row_len(c->cfg.estimator, m) : b->v;
}

/* The permutation test: y's examples reordered within the batch, R times.
 * Permuting a centred kernel's rows and columns is centring the permuted
 * one, so only the pair products are recomputed. */
static mk_err permuted_pairs(run_ctx *c, batch_mem *b, int64_t g, int64_t m, double *out)
{
    int nx = mk_lineup_rows(&c->lu), ny = mk_lineup_cols(&c->lu);
    mk_estimator est = c->cfg.estimator;
    int64_t len = mk_row_len(est, m);
    const double *vy = cols_of(c, b, m);
    for (int64_t r = 0; r < c->cfg.permutations; r++) {
        mk_plan_test_perm(&c->plan, g, r, m, b->perm);
        for (int j = 0; j < ny; j++) mk_permute_row(est, vy + j * len, m, b->perm, b->vperm + j * len);
        MK_TRY(mk_pairs(b->par, est, b->v, nx, b->vperm, ny, m, out + r * nx * ny, NULL, NULL));
    }
    return MK_OK;
}

static mk_err do_minibatch(run_ctx *c, batch_mem *b)
{
    int nx = mk_lineup_rows(&c->lu), ny = mk_lineup_cols(&c->lu);
    int64_t base = mk_job_base_len(&c->lu);
    mk_block blk;
    for (int k = 0; k < c->lu.nlayers; k++) {
        MK_TRY(mk_reader_next(b->reader, &blk));
        MK_TRY(layer_row(c, b, &blk));
    }
    double *hxy = b->leaf, *hxx = hxy + nx * ny, *hyy = hxx + nx, clock = MPI_Wtime();
    mk_kernel_wait(&b->ws);
    c->phase[PH_UCENTRE] += lap(&clock);
    const double *vy = c->lu.cross ? cols_of(c, b, blk.m) : NULL; /* NULL: all against all */
    MK_TRY(mk_pairs(b->par, c->cfg.estimator, b->v, nx, vy, ny, blk.m, hxy, hxx, hyy));
    MK_TRY(check_self(c, &blk, hxx, 0, nx));
    if (c->lu.cross) MK_TRY(check_self(c, &blk, hyy, nx, ny));
    double *slots = b->leaf + base, *perms = slots + base * c->groups;
    memset(slots, 0, (size_t)(base * c->groups) * sizeof *slots);
    if (c->groups) memcpy(slots + base * mk_plan_group(&c->plan, blk.g, c->groups), b->leaf, (size_t)base * sizeof *slots);
    c->phase[PH_PAIRS] += lap(&clock);
    MK_TRY(permuted_pairs(c, b, blk.g, blk.m, perms));
    c->phase[PH_PERMUTE] += lap(&clock);
    return mk_accum_add(b->acc, blk.g, b->leaf);
}

static mk_err do_exact(run_ctx *c, batch_mem *b)
{
    int L = c->lu.nlayers;
    mk_block blk;
    for (int k = 0; k < L; k++) {
        MK_TRY(mk_reader_next(b->reader, &blk));
        count_varied(c, b, &blk);
        if (mk_block_overflows(blk.amax, mk_lineup_features(&c->lu), c->cfg.precision))
            return too_large(c, &blk, "the cross-products of all features would overflow");
        mk_exact_put(&b->exact, c->lu.offset[blk.model] + blk.layer, blk.data, blk.mean, blk.m);
    }
    double clock = MPI_Wtime();
    mk_exact_batch(&b->exact, blk.m, b->leaf);
    for (int64_t k = 0; k < leaf_len(c) - L; k++)
        if (!isfinite(b->leaf[k])) return too_large(c, &blk, "the feature sums of the batch overflow");
    c->phase[PH_GRAM] += lap(&clock);
    return mk_accum_add(b->acc, blk.g, b->leaf);
}

static mk_err do_batch(run_ctx *c, batch_mem *b)
{
    return c->cfg.estimator == MK_EST_EXACT ? do_exact(c, b) : do_minibatch(c, b);
}

static mk_err open_sources(run_ctx *c, batch_mem *b)
{
    mk_err err = MK_OK;
    b->srcs = mk_calloc((size_t)c->lu.nmodels, sizeof *b->srcs, "the sources", &err);
    for (int k = 0; k < c->lu.nmodels && !err; k++) {
        err = mk_source_open(&c->lu.models[k], mk_lineup_cache_share(&c->lu, k), &b->srcs[k]);
        if (!err) err = mk_source_set_workers(b->srcs[k], c->threads); /* inflating, beside the Grams */
    }
    return err;
}

static mk_err start_reader(run_ctx *c, batch_mem *b, int64_t lo, int64_t hi)
{
    return mk_reader_start(&c->plan, c->cfg.precision, b->srcs, &c->lu, c->scale, &c->todo, lo, hi, &b->reader);
}

/* Batches done, this run's and before, after `steps` lockstep steps. */
static int64_t done_after(const run_ctx *c, int64_t steps)
{
    int64_t q = c->todo.batches / c->nranks, r = c->todo.batches % c->nranks;
    int64_t now = r * (steps < q + 1 ? steps : q + 1) + (c->nranks - r) * (steps < q ? steps : q);
    return c->plan.total - c->todo.batches + now;
}

/* All ranks step together, so that a failure on one rank (a NaN, a damaged
 * chunk) stops every rank at the same batch instead of leaving them waiting. */
static mk_err compute(run_ctx *c, batch_mem *b)
{
    int64_t lo, hi, steps = (c->todo.batches + c->nranks - 1) / c->nranks;
    mk_plan_rank_range(c->todo.batches, c->rank, c->nranks, &lo, &hi);
    mk_err err = alloc_mem(c, b);
    if (!err) err = open_sources(c, b);
    MK_TRY(agree(c->comm, err));
    if (c->cfg.estimator == MK_EST_EXACT) memcpy(b->exact.mu0, c->mu0, (size_t)b->exact.P * sizeof(double));
    MK_TRY(agree(c->comm, start_reader(c, b, lo, hi)));
    c->phase[PH_SETUP] = MPI_Wtime() - c->t0;
    mk_progress progress;
    mk_progress_mode mode = c->progress >= 0 ? (mk_progress_mode)c->progress : mk_progress_auto(stderr);
    mk_progress_start(&progress, stderr, c->rank == 0 ? mode : MK_PROGRESS_NONE, (double)c->cfg.progress_seconds,
                      c->plan.total, c->plan.m, done_after(c, 0));
    c->last_checkpoint = MPI_Wtime();
    for (int64_t s = 0; s < steps && !err; s++) {
        err = agree(c->comm, lo + s < hi ? do_batch(c, b) : MK_OK);
        if (!err) err = between_steps(c, b, s + 1, done_after(c, s), done_after(c, s + 1));
        mk_progress_update(&progress, done_after(c, s + 1));
    }
    mk_progress_finish(&progress);
    MK_TRY(err);
    mk_reader_stop(b->reader, c->phase);
    b->reader = NULL;
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

/* The heatmap is a view of cka.h5: if it cannot be drawn, the run still
 * succeeded, so it is a warning. */
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
    free(h5);
    free(fig);
}

/* The matrices the sums give: CKA, and its standard errors and p-values
 * when asked for (NULL otherwise). hsic holds the base (hxy | hxx | hyy). */
typedef struct {
    double *hsic, *cka, *stderr_, *pvalue;
} matrices;

static void free_matrices(matrices *mx)
{
    free(mx->hsic);
    free(mx->cka);
    free(mx->stderr_);
    free(mx->pvalue);
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
    return err;
}

static mk_err finish(run_ctx *c, batch_mem *b, const double *total)
{
    int nx = mk_lineup_rows(&c->lu), ny = mk_lineup_cols(&c->lu);
    matrices mx = {0};
    mk_err err = make_matrices(c, b, total, &mx);
    if (err) {
        free_matrices(&mx);
        return err;
    }
    const double *hxy = mx.hsic, *hxx = hxy + nx * ny, *hyy = hxx + nx;
    const double *varied = total + leaf_len(c) - c->lu.nlayers;
    err = check_layers(&c->lu, hxx, varied, 0, nx);
    if (!err && c->lu.cross) err = check_layers(&c->lu, hyy, varied + nx, nx, ny);
    if (err) {
        free_matrices(&mx);
        return err;
    }
    mk_result res = {&c->cfg, &c->lu, &c->plan, mx.cka, hxy, hxx, hyy, mx.stderr_, mx.pvalue, c->groups,
                     c->nranks, c->threads, MPI_Wtime() - c->t0, 0.0, c->segments_before + 1};
    res.seconds_total = c->seconds_before + res.seconds;
    err = mk_output_write(&res);
    if (!err) mk_output_summary(stdout, &res);
    if (!err && c->cfg.plot.enabled) draw_plot(&c->cfg);
    free_matrices(&mx);
    return err;
}

/* The result is written: a checkpoint of this run would only resume it. */
static void drop_checkpoint(const run_ctx *c)
{
    char *path = checkpoint_path(c);
    if (path) unlink(path);
    free(path);
}

static mk_err reduce_and_write(run_ctx *c, batch_mem *b)
{
    mk_err err = MK_OK;
    double *total = NULL, clock = MPI_Wtime();
    mk_accum *merged;
    MK_TRY(gather(c, b, &merged));
    if (c->rank == 0) total = mk_malloc((size_t)leaf_len(c) * sizeof(double), "the HSIC sums", &err);
    if (!err && c->rank == 0) mk_accum_total(merged, total);
    mk_accum_free(merged);
    c->phase[PH_REDUCE] += lap(&clock);
    if (!err && c->rank == 0) err = finish(c, b, total);
    if (!err && c->rank == 0) drop_checkpoint(c);
    c->phase[PH_WRITE] += lap(&clock);
    free(total);
    MK_TRY(agree(c->comm, err));
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
    mk_err err = load_config(c, a);
    if (!err) set_threads(c);
    if (!err) err = setup(c);
    if (!err) err = compute(c, &b);
    if (!err) err = reduce_and_write(c, &b);
    free_mem(c, &b);
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
    if (!err && !a.help) {
        catch_signals();
        err = run(&c, &a);
    }
    mk_error_report(err);
    if (err && c.rank == 0 && c.outdir.ncreated && (err == MK_EDATA || err == MK_EINPUT))
        drop_checkpoint(&c); /* of data that must change anyway, in a folder made now */
    if (c.rank == 0) mk_output_release(&c.outdir, c.cfg.output, err != MK_OK);
    free(a.sets);
    mk_config_free(&c.cfg);
    mk_todo_free(&c.todo);
    mk_nodes_free(&c.saved);
    free(c.fingerprint);
    free(c.scale);
    free(c.mu0);
    mk_lineup_free(&c.lu);
    return err;
}
