#include "mpicka/check.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "mpicka/blas.h"
#include "mpicka/cli.h"
#include "mpicka/config.h"
#include "mpicka/gram_measures.h"
#include "mpicka/hsic.h"
#include "mpicka/job.h"
#include "mpicka/lineup.h"
#include "mpicka/log.h"
#include "mpicka/output.h"
#include "mpicka/par.h"
#include "mpicka/plan.h"
#include "mpicka/source.h"

#define MK_MAX_PROBLEMS 64

/* Every problem found, so that the user fixes them all in one go. */
typedef struct {
    int count;
    mk_err first;
} problems;

static void note(problems *pr, mk_err err)
{
    if (err == MK_OK) return;
    if (!pr->count) pr->first = err;
    pr->count++;
    fprintf(stderr, "mpicka: %s: %s\n", mk_errname(err), mk_errmsg());
}

typedef struct {
    const char *config;
    char **sets;
    int nsets, ranks;
    int per_node;       /* --ranks-per-node; 0: from Slurm or assumed */
    double node_gib;    /* --node-memory; 0: from Slurm or this machine */
} check_args;

enum { O_RANKS, O_PER_NODE, O_NODE_MEMORY, O_SET, O_COUNT };

static const mk_opt check_opts[O_COUNT] = {
    [O_RANKS] = {"--ranks", "-n", MK_OPT_INT, "RANKS", 1, 1 << 24, .deflt = "1",
                 .help = "the number of MPI ranks planned"},
    [O_PER_NODE] = {"--ranks-per-node", NULL, MK_OPT_INT, "N", 1, 1 << 24,
                    .help = "ranks on one node, for the node's memory (default SLURM_NTASKS_PER_NODE,\n"
                            "else SLURM_TASKS_PER_NODE, else one per core of this machine)"},
    [O_NODE_MEMORY] = {"--node-memory", NULL, MK_OPT_REAL, "GIB", 0, 1e9, .min_open = 1,
                       .help = "a node's memory (default SLURM_MEM_PER_NODE, else this machine's)"},
    [O_SET] = {"--set", NULL, MK_OPT_LIST, "KEY=VALUE", .check = mk_config_check_set,
               .help = "as for mpicka run"},
};

static const mk_cli_cmd check_cmd = {
    "check", "mpicka check CONFIG [-n RANKS] [--set KEY=VALUE]...",
    "Validates the config and every input as `mpicka run` would (all problems at once)\n"
    "and prints the plan: layers, batches, batches and memory per rank, work and an\n"
    "estimate of the time from a short measurement of this machine's BLAS.",
    check_opts, O_COUNT, (const char *const[]){"CONFIG"}, 1};

static void read_args(const mk_opt_val *v, const char *const *args, check_args *a)
{
    a->config = args[0];
    a->sets = v[O_SET].list;
    a->nsets = v[O_SET].given;
    a->ranks = (int)v[O_RANKS].i;
    a->per_node = (int)v[O_PER_NODE].i;
    a->node_gib = v[O_NODE_MEMORY].r;
}

/* ---- validation ---- */

/* Each pattern on its own, so that every bad one is reported. */
static int inspect_model(const mk_model_cfg *cfg, mk_model *model, problems *pr)
{
    mk_err err = mk_model_inspect(cfg, model);
    if (!err) return 1;
    mk_model_cfg one = *cfg;
    mk_model part;
    one.nlayers = 0; /* the file alone first: its problem would repeat for every layer */
    if (mk_model_inspect(&one, &part) != MK_OK) {
        note(pr, err);
        return 0;
    }
    mk_model_free(&part);
    int before = pr->count;
    for (int i = 0; i < cfg->nlayers; i++) {
        one.layers = &cfg->layers[i];
        one.nlayers = 1;
        mk_err e = mk_model_inspect(&one, &part);
        note(pr, e);
        if (!e) mk_model_free(&part);
    }
    if (pr->count == before) note(pr, err); /* every layer is fine alone: their n differ */
    return 0;
}

/* Where `run` would create the output folder, it must be able to. */
static mk_err check_output(const char *dir)
{
    char path[4096];
    struct stat st;
    snprintf(path, sizeof path, "%s", dir);
    while (stat(path, &st) != 0) {
        char *slash = strrchr(path, '/');
        if (!slash) {
            snprintf(path, sizeof path, ".");
            break;
        }
        *slash = '\0';
        if (!*path) snprintf(path, sizeof path, "/");
    }
    if (stat(path, &st) != 0 || !S_ISDIR(st.st_mode))
        return mk_fail(MK_EIO, "output '%s': '%s' is not a folder", dir, path);
    if (access(path, W_OK | X_OK) != 0)
        return mk_fail(MK_EIO, "output '%s': folder '%s' is not writable", dir, path);
    return MK_OK;
}

/* ---- the plan ---- */

/* Multiply-adds per second of this machine's BLAS on a Gram of m by p
 * (working precision) and, in float64, on the pair product of L rows. */
static void measure_blas(int64_t m, int64_t p, int nlayers, mk_precision prec, double *gram_rate, double *pair_rate)
{
    int64_t t = mk_tri_len(m), rows = nlayers < 64 ? nlayers : 64;
    if (p > 2048) p = 2048;
    size_t xb = (size_t)(m * p) * mk_prec_size(prec), vb = (size_t)(rows * t) * sizeof(double);
    void *x = calloc(1, xb), *c = calloc(1, (size_t)(m * m) * sizeof(double));
    double *v = calloc(1, vb), *h = calloc((size_t)(rows * rows), sizeof(double));
    *gram_rate = *pair_rate = 0.0;
    if (x && c && v && h) {
        for (size_t k = 0; k < xb / 4; k++) ((float *)x)[k] = (float)(k % 7) * 0.125f;
        for (size_t k = 0; k < vb / 8; k++) v[k] = (double)(k % 5) * 0.5;
        int reps = 0;
        double t0 = mk_now();
        do {
            if (prec == MK_PREC_FLOAT32) mk_ssyrk((int)m, (int)p, x, c);
            else mk_dsyrk((int)m, (int)p, x, c);
        } while (++reps < 200 && mk_now() - t0 < 0.2);
        *gram_rate = (double)reps * (double)(m * m) * (double)p / 2.0 / (mk_now() - t0);
        reps = 0;
        t0 = mk_now();
        do mk_dsyrk((int)rows, (int)t, v, h);
        while (++reps < 200 && mk_now() - t0 < 0.2);
        *pair_rate = (double)reps * (double)(rows * rows) / 2.0 * (double)t / (mk_now() - t0);
    }
    free(x), free(c), free(v), free(h);
}

/* A model, with its share of the data each batch reads. */
static void print_model(const char *axis, const mk_model *model, const mk_plan *plan)
{
    double gb = (double)plan->total * (double)plan->m * (double)mk_model_features(model) * 4e-9;
    printf("  %s: %s (%s), %d layer(s), %lld features, %.3g GB read as float32\n", axis, model->name, model->file,
           model->nlayers, (long long)mk_model_features(model), gb);
    if (model->nfiles > 1) {
        printf("    %d shards, concatenated in this order:\n", model->nfiles);
        for (int f = 0; f < model->nfiles; f++)
            printf("      %s: n = %lld\n", model->files[f], (long long)(model->first[f + 1] - model->first[f]));
    }
    printf("    layer order of globs: %s\n", model->order == MK_ORDER_CREATION ? "creation (the file tracks it)"
                                                                           : "natural (by name)");
    if (model->ids) printf("    sample IDs: '%s'\n", model->ids);
    for (int l = 0; l < model->nlayers; l++) {
        const mk_layer *layer = &model->layers[l];
        printf("    %-32s %-24s %-8s %lld features\n", layer->path, layer->shape, layer->dtype,
               (long long)layer->p);
    }
}


#define MIB (1024.0 * 1024.0)
#define GIB (1024.0 * MIB)

/* Ranks step together (a failure on one stops all at the same batch), so a
 * rank without a batch in a step waits for the others. */
static void warn_idle(int64_t batches, int ranks)
{
    if (batches < ranks) {
        mk_warn("%d of %d ranks will be idle: there are only %lld batch(es) to compute", ranks - (int)batches, ranks,
                (long long)batches);
        return;
    }
    int64_t steps = (batches + ranks - 1) / ranks, last = batches - (steps - 1) * ranks;
    int64_t enough = (batches + steps - 1) / steps; /* ranks for the same number of steps */
    double busy = (double)batches / ((double)steps * ranks);
    char fewer[128] = "";
    if (enough < ranks) snprintf(fewer, sizeof fewer, "; %lld ranks would take as long", (long long)enough);
    if (busy < 0.9)
        mk_warn("%lld of %d ranks will be idle in the last of %lld steps, %.0f%% of the ranks' time (%lld batches on "
                "%d ranks)%s", (long long)(ranks - last), ranks, (long long)steps, 100.0 * (1.0 - busy),
                (long long)batches, ranks, fewer);
}

/* The largest count in Slurm's SLURM_TASKS_PER_NODE ("4(x2),3"), or a plain
 * count (SLURM_NTASKS_PER_NODE); 0 when unset or unreadable. */
static int slurm_count(const char *name)
{
    const char *s = getenv(name);
    long most = 0;
    while (s && *s) {
        char *end;
        long v = strtol(s, &end, 10);
        if (end == s || v < 1 || v > 1 << 24) return 0;
        most = v > most ? v : most;
        s = end;
        if (*s == '(') { /* "(xK)": K nodes with that count */
            s = strchr(s, ')');
            if (!s) return 0;
            s++;
        }
        if (*s == ',') s++;
        else if (*s) return 0;
    }
    return (int)most;
}

/* Ranks on one node, at most all of them, and where the number comes from. */
static int ranks_per_node(const check_args *a, const char **from)
{
    long n = a->per_node;
    *from = "--ranks-per-node";
    if (!n && (n = slurm_count("SLURM_NTASKS_PER_NODE"))) *from = "SLURM_NTASKS_PER_NODE";
    if (!n && (n = slurm_count("SLURM_TASKS_PER_NODE"))) *from = "SLURM_TASKS_PER_NODE, its fullest node";
    if (!n) {
        n = sysconf(_SC_NPROCESSORS_ONLN);
        *from = "assumed: one per core of this machine; give --ranks-per-node";
    }
    return n < 1 ? 1 : n < a->ranks ? (int)n : a->ranks;
}

/* A node's memory in bytes (0: unknown), and where the number comes from. */
static double node_memory(const check_args *a, const char **from)
{
    *from = "--node-memory";
    if (a->node_gib > 0.0) return a->node_gib * GIB;
    const char *slurm = getenv("SLURM_MEM_PER_NODE");
    char *end;
    double mib = slurm ? strtod(slurm, &end) : 0.0;
    *from = "SLURM_MEM_PER_NODE, the job's memory on a node";
    if (slurm && end != slurm && !*end && mib > 0.0) return mib * MIB;
    *from = "this machine's memory; give --node-memory for another node";
    return mk_job_machine_bytes();
}

/* The ranks on one node together against that node's memory. */
static void print_node(const check_args *a, double per_rank)
{
    const char *rank_from, *mem_from;
    int ranks = ranks_per_node(a, &rank_from);
    double need = ranks * per_rank, have = node_memory(a, &mem_from);
    printf("  memory per node: %d rank(s) (%s) x %.1f MiB = %.2f GiB", ranks, rank_from, per_rank / MIB, need / GIB);
    if (!(have > 0.0)) {
        printf("\n");
        return;
    }
    printf(", of %.1f GiB (%s)\n", have / GIB, mem_from);
    if (need > 0.9 * have)
        mk_warn("%d rank(s) on a node need about %.2f GiB (%d x %.1f MiB), %s the node's %.1f GiB (%s): put fewer "
                "ranks on a node, or need less per rank (batch_size, fewer or narrower layers)", ranks, need / GIB,
                ranks, per_rank / MIB, need > have ? "more than" : "over 90% of", have / GIB, mem_from);
}


/* When the measures' memory is held: after the pass (the second moments'),
 * during it (each batch's RDMs and neighbours for the Gram measures), or both. */
static const char *measures_when(const mk_config *cfg)
{
    int moments = 0, grams = 0;
    for (int m = 0; m < cfg->nmeasures; m++) {
        if (cfg->measures[m].kind == MK_MEASURE_CKA) continue;
        grams |= mk_gram_measure(cfg->measures[m].kind);
        moments |= !mk_gram_measure(cfg->measures[m].kind);
    }
    return moments && grams ? "after the pass, and each batch's RDMs and neighbours of every layer"
           : grams          ? "each batch's RDMs and neighbours of every layer"
                            : "after the pass";
}

static void print_plan(const mk_config *cfg, const mk_lineup *lu, const mk_plan *plan, const check_args *a)
{
    int ranks = a->ranks;
    int64_t m = plan->m < plan->n ? plan->m : plan->n, per_rank = (plan->total + ranks - 1) / ranks;
    printf("  n = %lld examples, batch_size %lld: %lld batch(es) per epoch (%lld example(s) left out), "
           "%lld epoch(s), %lld batches\n", (long long)plan->n, (long long)plan->m, (long long)plan->per_epoch,
           (long long)plan->dropped, (long long)plan->epochs, (long long)plan->total);
    printf("  on %d rank(s): at most %lld batch(es) per rank\n", ranks, (long long)per_rank);
    warn_idle(plan->total, ranks);
    char method[256];
    mk_output_describe(cfg, mk_job_jackknife_groups(cfg, plan), method, sizeof method);
    printf("  estimator: %s\n", method);
    mk_job_memory mem;
    mk_job_memory_estimate(cfg, lu, plan, &mem);
    printf("  memory per rank: about %.1f MiB (read-ahead blocks %.1f, Gram %.1f, centred kernels %.1f, "
           "sums %.1f, chunk caches %.1f, libraries %.1f)\n", (mem.total + MK_LIBRARY_BYTES) / MIB, mem.blocks / MIB,
           mem.grams / MIB, mem.stacked / MIB, mem.sums / MIB, mem.caches / MIB, MK_LIBRARY_BYTES / MIB);
    if (mem.measures > 0)
        printf("  of which the measures beyond CKA (%s, every rank): %.1f MiB\n", measures_when(cfg),
               mem.measures / MIB);
    printf("  rank 0: %.1f MiB more until its first batch is read (that batch of every layer, kept from the probe "
           "of each layer's scale, so that each byte is read once)\n", mem.first / MIB);
    print_node(a, mem.total + MK_LIBRARY_BYTES);
    int nx = mk_lineup_rows(lu), ny = mk_lineup_cols(lu);
    double P = (double)mk_lineup_features(lu), grams = (double)plan->total * (double)(m * m) / 2.0 * P;
    double pairs = (double)plan->total * (double)mk_tri_len(m) *
                   ((lu->cross ? (double)nx * ny : (double)nx * (nx + 1) / 2.0) + (double)cfg->permutations * nx * ny);
    if (cfg->estimator == MK_EST_EXACT) { /* one P-by-P syrk per batch, no pairs */
        grams = (double)plan->n * P * (P + 1.0) / 2.0;
        pairs = 0.0;
    }
    printf("  work: %.3g multiply-adds in Grams (%s), %.3g in pair products (float64)\n", grams,
           cfg->precision == MK_PREC_FLOAT32 ? "float32" : "float64", pairs);
    double gram_rate, pair_rate;
    int threads = mk_par_threads_wanted(cfg->threads);
    mk_blas_set_threads(1); /* as run has it: the rank's threads share out single-threaded blocks */
    measure_blas(m, mk_lineup_widest(lu, NULL)->p, lu->nlayers, cfg->precision, &gram_rate, &pair_rate);
    if (gram_rate <= 0.0 || pair_rate <= 0.0) return;
    double seconds = (grams / gram_rate + (pairs > 0.0 ? pairs / pair_rate : 0.0)) / ranks / threads;
    printf("  this machine's BLAS (1 thread): %.1f GFLOP/s on Grams, %.1f on pairs\n", 2e-9 * gram_rate,
           2e-9 * pair_rate);
    printf("  estimated time: %.1f s of compute per rank on %d rank(s) x %d thread(s) like this one (threads as "
           "if they scaled perfectly); reading the data (%.3g GB) is not included\n", seconds, ranks, threads,
           (double)plan->total * (double)m * P * 4e-9);
}

/* ---- entry ---- */

static mk_err check(const check_args *a)
{
    char *text = NULL;
    size_t len = 0;
    mk_config cfg;
    MK_TRY(mk_read_text_file(a->config, &text, &len));
    mk_err err = mk_config_parse(text, len, a->config, a->sets, a->nsets, &cfg);
    free(text);
    MK_TRY(err);
    mk_job_warn_config_folder(&cfg, a->config);
    problems pr = {0};
    mk_lineup lu;
    mk_err init = mk_lineup_init(&cfg, &lu);
    int ok = init == MK_OK;
    note(&pr, init);
    for (int k = 0; !init && k < lu.nmodels; k++) ok &= inspect_model(mk_config_model(&cfg, k), &lu.models[k], &pr);
    if (ok && !pr.count) note(&pr, mk_lineup_same_examples(&lu));
    if (ok && !pr.count) note(&pr, mk_lineup_layout(&lu));
    mk_plan plan;
    if (ok && !pr.count) {
        note(&pr, mk_job_plan(&cfg, &lu, &plan));
        if (!pr.count) note(&pr, mk_job_preflight(&cfg, &lu, &plan));
    }
    note(&pr, check_output(cfg.output));
    if (!pr.count) mk_job_warn_ids(&cfg, &lu);
    if (!pr.count) {
        printf("mpicka check: %s is valid\n", a->config);
        for (int k = 0; k < lu.nmodels; k++) {
            char axis[32];
            snprintf(axis, sizeof axis, lu.listed ? "model %d" : k ? "y" : "x", k + 1);
            print_model(axis, &lu.models[k], &plan);
        }
        print_plan(&cfg, &lu, &plan, a);
    } else {
        fprintf(stderr, "mpicka check: %d problem(s) in %s\n", pr.count, a->config);
    }
    mk_lineup_free(&lu);
    mk_config_free(&cfg);
    return pr.count ? mk_fail(pr.first, "%d problem(s), listed above", pr.count) : MK_OK;
}

/* What the command line asks for, checked. */
static mk_err check_command(const mk_opt_val *v, const char *const *args)
{
    check_args a;
    read_args(v, args, &a);
    return check(&a);
}

mk_err mk_check_main(int argc, char **argv) { return mk_cli_main(&check_cmd, argc, argv, check_command); }
