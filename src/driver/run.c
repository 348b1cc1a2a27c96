#include "mpicka/run.h"

#include "run_impl.h"

#include <mpi.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include "mpicka/blas.h"
#include "mpicka/cli.h"
#include "mpicka/finish.h"
#include "mpicka/gram_measures.h"
#include "mpicka/log.h"
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

/* Rank 0 makes the CKA matrices and checks the layers' sums; then every
 * rank computes its share of the measures beyond CKA; rank 0 writes. The
 * result is written: a checkpoint of this run would only resume it. */
static mk_err reduce_and_write(run_ctx *c, batch_mem *b)
{
    mk_err err = MK_OK;
    double *total = NULL, clock = MPI_Wtime();
    mk_matrices mx = {0};
    mk_accum *merged;
    MK_TRY(mk__gather(c, b, &merged));
    if (c->rank == 0) total = mk_malloc((size_t)mk__leaf_len(c) * sizeof(double), "the HSIC sums", &err);
    if (!err && c->rank == 0) mk_accum_total(merged, total);
    mk_accum_free(merged);
    c->phase[PH_REDUCE] += mk__lap(&clock);
    if (!err && c->rank == 0) err = mk_finish_matrices(&b->core, total, &mx);
    err = mk__agree(c->comm, err);
    c->phase[PH_WRITE] += mk__lap(&clock);
    if (!err && mk_finish_has_moments(&c->cfg)) /* collective: every rank goes on, or none */
        err = mk__spread_measures(c, b, total, &mx.measures);
    if (!err && c->rank == 0) err = mk_finish_gram(&b->core, total, &mx);
    c->phase[PH_MEASURES] += mk__lap(&clock);
    if (!err && c->rank == 0) {
        mk_run_facts facts = {c->nranks, c->threads, MPI_Wtime() - c->t0, 0.0, c->segments_before + 1};
        facts.seconds_total = c->seconds_before + facts.seconds;
        err = mk_finish_write(&b->core, &mx, &facts);
    }
    if (!err && c->rank == 0) mk__drop_checkpoint(c);
    c->phase[PH_WRITE] += mk__lap(&clock);
    free(total);
    mk_matrices_free(&mx);
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
