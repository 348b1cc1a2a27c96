#include "run_impl.h"

#include <mpi.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "mpicka/checkpoint.h"
#include "mpicka/file.h"
#include "mpicka/log.h"

/* ---- checkpoints ---- */

/* One input: its path, then its size, modification time and sampled
 * content on a line of their own, which explain_difference reads back. Not
 * its change time: a hard link, a chmod, a rename or `cp -p` of the same
 * bytes changes it and not the data, and a resume there is right. */
static mk_err fingerprint_file(FILE *f, const char *file)
{
    struct stat st;
    uint64_t hash = 0;
    int known = stat(file, &st) == 0;
    if (known && S_ISREG(st.st_mode)) /* a pipe would block the read: inspection refuses it */
        MK_TRY(mk_checkpoint_sample(file, (int64_t)st.st_size, &hash));
    fprintf(f, "file %s\n  size %lld, modified %lld.%09ld, content %016llx\n", file,
            known ? (long long)st.st_size : -1LL, known ? (long long)st.st_mtim.tv_sec : -1LL,
            known ? st.st_mtim.tv_nsec : 0L, (unsigned long long)hash);
    return MK_OK;
}

/* Every file the model's data comes from: shards, and the files behind
 * external links, virtual datasets and external storage. */
static mk_err fingerprint_model(FILE *f, const mk_model *model)
{
    char **files;
    int count;
    mk_err err = MK_OK;
    MK_TRY(mk_model_files(model, &files, &count));
    for (int i = 0; i < count && !err; i++) err = fingerprint_file(f, files[i]);
    mk_model_files_free(files, count);
    for (int l = 0; l < model->nlayers; l++)
        fprintf(f, "  %s %s %s\n", model->layers[l].path, model->layers[l].shape, model->layers[l].dtype);
    return err;
}

/* What shapes the sums: a checkpoint from anything else must not be resumed. */
mk_err mk__make_fingerprint(run_ctx *c)
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

/* An input's line "  size S, modified T, content H": what changed, or 0
 * when the lines are not both of that form. */
static int describe_change(const char *now, const char *then, char *out, size_t len)
{
    long long size[2], sec[2];
    long nsec[2];
    char hash[2][24];
    const char *line[2] = {now, then};
    for (int i = 0; i < 2; i++)
        if (sscanf(line[i], "  size %lld, modified %lld.%ld, content %20[0-9a-f]", &size[i], &sec[i], &nsec[i],
                   hash[i]) != 4) return 0;
    int off = 0;
    if (size[0] != size[1])
        off += snprintf(out + off, len - (size_t)off, "its size (%lld bytes then, %lld now)", size[1], size[0]);
    if (sec[0] != sec[1] || nsec[0] != nsec[1])
        off += snprintf(out + off, len - (size_t)off, "%sits modification time", off ? ", " : "");
    if (strcmp(hash[0], hash[1]))
        snprintf(out + off, len - (size_t)off, "%sits content (a sampled block of its bytes differs%s)", off ? ", " : "",
                 off ? "" : ", though its size and modification time are the same");
    return 1;
}

/* Why the checkpoint's fingerprint `then` is not this run's `now`: which
 * input changed and how, else the first line that differs. */
static void explain_difference(const char *now, const char *then, char *out, size_t len)
{
    const char *file = NULL; /* the last "file PATH" line before the difference */
    if (strstr(then, "\nfile ") && !strstr(then, ", content ")) {
        snprintf(out, len, "it was written by an older mpicka, which did not record its inputs' content");
        return;
    }
    while (*now && *now == *then) {
        const char *na = strchr(now, '\n'), *nb = strchr(then, '\n');
        if (!na || !nb || na - now != nb - then || strncmp(now, then, (size_t)(na - now))) break;
        if (!strncmp(now, "file ", 5)) file = now + 5;
        now = na + 1;
        then = nb + 1;
    }
    char what[512];
    if (file && describe_change(now, then, what, sizeof what))
        snprintf(out, len, "input '%.*s' has changed since the checkpoint: %s", (int)strcspn(file, "\n"), file, what);
    else
        snprintf(out, len, "it has '%.*s', this run '%.*s'", (int)strcspn(then, "\n"), then, (int)strcspn(now, "\n"),
                 now);
}

mk_err mk__load_checkpoint(run_ctx *c)
{
    char *path = checkpoint_path(c);
    if (!path) return mk_fail(MK_ENOMEM, "out of memory");
    mk_err err = MK_OK;
    if (c->restart) unlink(path);
    if (access(path, F_OK) != 0) {
        free(path);
        return mk_todo_all(&c->plan, &c->todo);
    }
    if (mk_check_regular(path, "checkpoint", MK_EINPUT) != MK_OK) { /* before any read: a FIFO blocks */
        char why[1024];
        snprintf(why, sizeof why, "%s", mk_errmsg());
        err = mk_fail(MK_EINPUT, "%s; remove it (--restart removes only a file)", why);
        free(path);
        return err;
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
        explain_difference(c->fingerprint, ck.fingerprint, diff, sizeof diff);
        err = mk_fail(MK_ECONFIG, "%s was made by another configuration or other inputs (%s); rerun with --restart "
                      "(or --force) to discard it", path, diff);
    }
    if (!err && ck.nodes.len != mk__leaf_len(c)) /* same fingerprint: damaged, or the sums of an older layout */
        err = mk_fail(MK_EINPUT, "checkpoint '%s' cannot be resumed: its sums do not fit this run's layers (%lld per "
                      "node, %lld in this run): it is damaged or was written by another version of mpicka (before "
                      "the exact estimator's sums of x against y kept only the blocks read); rerun with --restart to "
                      "discard it", path, (long long)ck.nodes.len, (long long)mk__leaf_len(c));
    if (!err) err = mk_checkpoint_validate(&ck, path, &c->plan, mk__leaf_len(c));
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
mk_err mk__gather(run_ctx *c, batch_mem *b, mk_accum **merged)
{
    return mk__agree(c->comm, mk_accum_gather(b->core.acc, c->rank == 0 ? &c->saved : NULL, c->comm, merged));
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
    MK_TRY(mk__gather(c, b, &merged));
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
    return mk__agree(c->comm, err);
}

static volatile sig_atomic_t stop_signal;

static void on_signal(int sig) { stop_signal = sig; }

void mk__catch_signals(void)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sa.sa_flags = SA_RESTART; /* caught during MPI's or HDF5's calls, it must not fail them */
    sigemptyset(&sa.sa_mask);
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGUSR1, &sa, NULL);
}

/* Collective, during start-up: a signal any rank caught stops every rank
 * now, when no batch of this run has been computed, so there is nothing new
 * to keep (a checkpoint resumed from stays as it was). */
mk_err mk__stop_before_batches(run_ctx *c)
{
    int sig = stop_signal, any;
    MPI_Allreduce(&sig, &any, 1, MPI_INT, MPI_MAX, c->comm);
    if (!any) return MK_OK;
    return mk_fail(MK_ESTOPPED, "stopped by signal %d while starting, before any batch was computed: there was no "
                   "work to keep%s; run the same command again to %s", any,
                   c->saved.count ? " beyond the checkpoint resumed from, which is kept as it was" : " (no checkpoint)",
                   c->saved.count ? "resume" : "start");
}

/* Collective, after each step: stop on a signal any rank received, or save a
 * checkpoint when rank 0's clock or the batch count says it is time. */
mk_err mk__between_steps(run_ctx *c, batch_mem *b, int64_t steps, int64_t done_before, int64_t done_now)
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

/* Results of another configuration are not overwritten without --force; a
 * rerun of the same one is. */
mk_err mk__check_old_results(const run_ctx *c)
{
    return c->force ? MK_OK : mk_output_refuse_other(c->cfg.output, c->cfg.resolved, "pass --force");
}

void mk__drop_checkpoint(const run_ctx *c)
{
    char *path = checkpoint_path(c);
    if (path) unlink(path);
    free(path);
}

