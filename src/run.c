#include "mpicka/run.h"

#include <mpi.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "mpicka/accum.h"
#include "mpicka/blas.h"
#include "mpicka/config.h"
#include "mpicka/hsic.h"
#include "mpicka/log.h"
#include "mpicka/output.h"
#include "mpicka/plan.h"
#include "mpicka/source.h"

typedef struct {
    MPI_Comm comm;
    int rank, nranks;
    mk_config cfg;
    mk_model x, y;        /* y unused when !cfg.has_y */
    const mk_model *ym;   /* &y, or &x for a self comparison */
    mk_plan plan;
    int created_output;
    double t0;
} run_ctx;

/* Per-rank working memory for one minibatch. */
typedef struct {
    mk_source *sx, *sy;
    mk_hsic_ws ws;
    void *block;          /* m by p_max, float or double as read */
    int64_t *rows;
    double *vx, *vy;      /* stacked U-centred Grams */
    double *leaf;         /* hxy | hxx | hyy of one batch */
    mk_accum *acc;
} batch_mem;

static void usage(FILE *out)
{
    fprintf(out,
            "usage: mpirun -np N mpicka run CONFIG [--set KEY=VALUE]...\n"
            "Computes the minibatch CKA matrix between the layers of two models (or of\n"
            "one model with itself) from HDF5 activations; see the README.\n"
            "  --set KEY=VALUE   override a config key (dotted for nested keys), e.g.\n"
            "                    --set batch_size=512 --set x.file=acts.h5 --set 'x.layers=[a, b]'\n"
            "  -h, --help        this text and the config keys\n\nConfig keys:\n");
    mk_config_print_reference(out);
}

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
    char **sets;
    int nsets;
    int help;
} run_args;

static mk_err parse_args(int argc, char **argv, run_args *a)
{
    memset(a, 0, sizeof *a);
    mk_err err = MK_OK;
    a->sets = mk_calloc((size_t)argc, sizeof *a->sets, "the --set list", &err);
    if (err) return err;
    for (int i = 1; i < argc; i++) {
        const char *arg = argv[i];
        if (!strcmp(arg, "-h") || !strcmp(arg, "--help")) {
            a->help = 1;
        } else if (!strcmp(arg, "--set")) {
            if (i + 1 == argc) return mk_fail(MK_EUSAGE, "--set needs KEY=VALUE");
            a->sets[a->nsets++] = argv[++i];
        } else if (!strncmp(arg, "--set=", 6)) {
            a->sets[a->nsets++] = argv[i] + 6;
        } else if (arg[0] == '-' && arg[1] != '\0') {
            return mk_fail(MK_EUSAGE, "unknown option '%s' (see mpicka run --help)", arg);
        } else if (a->config) {
            return mk_fail(MK_EUSAGE, "one config file expected, got '%s' and '%s'", a->config, arg);
        } else {
            a->config = arg;
        }
    }
    if (!a->config && !a->help) return mk_fail(MK_EUSAGE, "missing CONFIG (see mpicka run --help)");
    return MK_OK;
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

/* A batch's pairs go through BLAS with int dimensions: m(m-1)/2 must fit. */
#define MK_MAX_BATCH 46341

static mk_err make_plan(run_ctx *c)
{
    const mk_layer *first = &c->x.layers[0];
    if (c->cfg.batch_size > MK_MAX_BATCH)
        return mk_fail(MK_ECONFIG, "batch_size %lld is too large (at most %d)", (long long)c->cfg.batch_size,
                       MK_MAX_BATCH);
    if (first->n < MK_MIN_BATCH)
        return mk_fail(MK_EINPUT, "%s: dataset '%s' has %lld examples; at least %d are needed", c->x.file,
                       first->path, (long long)first->n, MK_MIN_BATCH);
    return mk_plan_init(&c->plan, first->n, c->cfg.batch_size, c->cfg.epochs, c->cfg.shuffle, c->cfg.seed);
}

static mk_err inspect(run_ctx *c)
{
    MK_TRY(mk_model_inspect(&c->cfg.x, &c->x));
    if (c->cfg.has_y) {
        MK_TRY(mk_model_inspect(&c->cfg.y, &c->y));
        if (c->y.layers[0].n != c->x.layers[0].n)
            return mk_fail(MK_EINPUT, "x and y differ in examples: '%s' in %s has %lld, '%s' in %s has %lld",
                           c->x.layers[0].path, c->x.file, (long long)c->x.layers[0].n, c->y.layers[0].path,
                           c->y.file, (long long)c->y.layers[0].n);
    }
    MK_TRY(make_plan(c));
    return mk_output_prepare(c->cfg.output, &c->created_output);
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

static mk_err setup(run_ctx *c)
{
    MK_TRY(agree(c->comm, c->rank == 0 ? inspect(c) : MK_OK));
    MK_TRY(share_model(c, &c->x));
    if (c->cfg.has_y) MK_TRY(share_model(c, &c->y));
    c->ym = c->cfg.has_y ? &c->y : &c->x;
    if (c->rank != 0) MK_TRY(make_plan(c)); /* cannot fail: rank 0's did not */
    if (c->plan.dropped)
        mk_warn("%lld example(s) at the end of each epoch are left out: a batch needs at least %d",
                (long long)c->plan.dropped, MK_MIN_BATCH);
    return MK_OK;
}

/* ---- the batches ---- */

static int64_t max_features(const mk_model *model, int64_t p)
{
    for (int l = 0; l < model->nlayers; l++)
        if (model->layers[l].p > p) p = model->layers[l].p;
    return p;
}

static int64_t leaf_len(const run_ctx *c)
{
    int64_t nx = c->x.nlayers, ny = c->ym->nlayers;
    return nx * ny + nx + ny;
}

static mk_err alloc_mem(run_ctx *c, batch_mem *b)
{
    mk_err err = MK_OK;
    int64_t m = c->plan.m < c->plan.n ? c->plan.m : c->plan.n;
    int64_t p = max_features(c->ym, max_features(&c->x, 1)), t = mk_tri_len(m);
    MK_TRY(mk_hsic_ws_init(&b->ws, m, p, c->cfg.precision));
    b->block = mk_malloc((size_t)(m * p) * sizeof(double), "a layer block", &err);
    if (!err) b->rows = mk_malloc((size_t)m * sizeof(int64_t), "a batch's rows", &err);
    if (!err) b->vx = mk_malloc((size_t)(c->x.nlayers * t) * sizeof(double), "U-centred Grams of x", &err);
    if (!err && c->cfg.has_y)
        b->vy = mk_malloc((size_t)(c->y.nlayers * t) * sizeof(double), "U-centred Grams of y", &err);
    if (!err) b->leaf = mk_malloc((size_t)leaf_len(c) * sizeof(double), "a batch's HSIC values", &err);
    if (!err) err = mk_accum_create(leaf_len(c), &b->acc);
    return err;
}

static void free_mem(batch_mem *b)
{
    mk_source_close(b->sx);
    mk_source_close(b->sy);
    mk_hsic_ws_free(&b->ws);
    free(b->block);
    free(b->rows);
    free(b->vx);
    free(b->vy);
    free(b->leaf);
    mk_accum_free(b->acc);
}

/* Each layer is read, centred and turned into its U-centred Gram at once, so
 * only one layer's activations are held at a time. */
static mk_err model_rows(batch_mem *b, mk_source *src, const mk_model *model, int64_t m, double *v)
{
    int64_t t = mk_tri_len(m);
    for (int l = 0; l < model->nlayers; l++) {
        const mk_layer *layer = &model->layers[l];
        MK_TRY(mk_source_read(src, l, b->rows, m, b->block));
        int64_t bad = mk_layer_row(&b->ws, b->block, layer->in_f32, m, layer->p, v + l * t);
        if (bad >= 0)
            return mk_fail(MK_EDATA, "%s: dataset '%s' holds NaN or Inf at example %lld (batch of examples %lld..%lld)",
                           model->file, layer->path, (long long)b->rows[bad], (long long)b->rows[0],
                           (long long)b->rows[m - 1]);
    }
    return MK_OK;
}

static mk_err do_batch(run_ctx *c, batch_mem *b, int64_t g)
{
    int64_t m = mk_plan_batch_size(&c->plan, g);
    int nx = c->x.nlayers, ny = c->ym->nlayers;
    mk_plan_batch_rows(&c->plan, g, b->rows);
    MK_TRY(model_rows(b, b->sx, &c->x, m, b->vx));
    if (c->cfg.has_y) MK_TRY(model_rows(b, b->sy, &c->y, m, b->vy));
    double *hxy = b->leaf, *hxx = hxy + nx * ny, *hyy = hxx + nx;
    mk_pairs(b->vx, nx, b->vy, ny, m, hxy, hxx, hyy);
    return mk_accum_add(b->acc, g, b->leaf);
}

/* All ranks step together, so that a failure on one rank (a NaN, a damaged
 * chunk) stops every rank at the same batch instead of leaving them waiting. */
static mk_err compute(run_ctx *c, batch_mem *b)
{
    int64_t lo, hi, steps = (c->plan.total + c->nranks - 1) / c->nranks;
    mk_plan_rank_range(&c->plan, c->rank, c->nranks, &lo, &hi);
    mk_err err = alloc_mem(c, b);
    if (!err) err = mk_source_open(&c->x, &b->sx);
    if (!err && c->cfg.has_y) err = mk_source_open(&c->y, &b->sy);
    MK_TRY(agree(c->comm, err));
    for (int64_t s = 0; s < steps; s++)
        MK_TRY(agree(c->comm, lo + s < hi ? do_batch(c, b, lo + s) : MK_OK));
    return MK_OK;
}

/* ---- results (rank 0) ---- */

static void warn_dead(const mk_model *model, const double *h)
{
    for (int l = 0; l < model->nlayers; l++)
        if (!(h[l] > 0.0))
            mk_warn("%s: layer '%s' has a summed HSIC_1 with itself of %g (constant or dead layer): its CKA is NaN",
                    model->file, model->layers[l].path, h[l]);
}

static mk_err finish(run_ctx *c, const double *total)
{
    int nx = c->x.nlayers, ny = c->ym->nlayers;
    const double *hxy = total, *hxx = hxy + nx * ny, *hyy = hxx + nx;
    mk_err err = MK_OK;
    double *cka = mk_malloc((size_t)(nx * ny) * sizeof(double), "the CKA matrix", &err);
    if (err) return err;
    mk_cka_from_sums(nx, ny, hxy, hxx, hyy, cka);
    warn_dead(&c->x, hxx);
    if (c->cfg.has_y) warn_dead(&c->y, hyy);
    mk_result res = {&c->cfg, &c->x, c->ym, &c->plan, cka, hxy, hxx, hyy,
                     c->nranks, mk_blas_threads(), MPI_Wtime() - c->t0};
    err = mk_output_write(&res);
    if (!err) mk_output_summary(stdout, &res);
    free(cka);
    return err;
}

static mk_err reduce_and_write(run_ctx *c, batch_mem *b)
{
    mk_err err = MK_OK;
    double *total = NULL;
    if (c->rank == 0) total = mk_malloc((size_t)leaf_len(c) * sizeof(double), "the HSIC sums", &err);
    MK_TRY(agree(c->comm, err));
    err = mk_accum_reduce(b->acc, c->comm, total);
    if (!err && c->rank == 0) err = finish(c, total);
    free(total);
    return agree(c->comm, err);
}

/* ---- entry ---- */

/* Under Slurm, a rank's BLAS threads follow --cpus-per-task unless set. */
static void set_blas_threads(void)
{
    const char *slurm = getenv("SLURM_CPUS_PER_TASK");
    if (!getenv("OPENBLAS_NUM_THREADS") && slurm && atoi(slurm) > 0) mk_blas_set_threads(atoi(slurm));
}

static mk_err run(run_ctx *c, const run_args *a)
{
    batch_mem b = {0};
    mk_err err = load_config(c, a);
    if (!err) err = setup(c);
    if (!err) err = compute(c, &b);
    if (!err) err = reduce_and_write(c, &b);
    free_mem(&b);
    return err;
}

mk_err mk_run_main(int argc, char **argv)
{
    run_ctx c = {.comm = MPI_COMM_WORLD};
    run_args a;
    MPI_Comm_rank(c.comm, &c.rank);
    MPI_Comm_size(c.comm, &c.nranks);
    mk_log_init(c.rank);
    c.t0 = MPI_Wtime();
    mk_err err = parse_args(argc, argv, &a);
    if (!err && a.help && c.rank == 0) usage(stdout);
    if (!err && !a.help) {
        set_blas_threads();
        err = run(&c, &a);
    }
    mk_error_report(err);
    if (err && c.rank == 0 && c.created_output) rmdir(c.cfg.output); /* only if still empty */
    free(a.sets);
    mk_config_free(&c.cfg);
    mk_model_free(&c.x);
    mk_model_free(&c.y);
    return err;
}
