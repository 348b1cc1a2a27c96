#define _GNU_SOURCE /* sched_getaffinity */
#include "mpicka/par.h"

#include <pthread.h>
#include <sched.h>
#include <stdlib.h>

struct mk_par {
    int threads;          /* for mk_par_for: the caller and threads - 1 workers */
    int started;          /* workers started: threads - 1, plus the side thread if any */
    pthread_t *workers;
    pthread_mutex_t mu;
    pthread_cond_t work, done;
    void (*fn)(void *ctx, int64_t k);
    void *ctx;
    int64_t n, next, finished;
    uint64_t generation;  /* a new mk_par_for wakes the workers */
    void (*task)(void *ctx); /* mk_par_async's, until a worker takes it */
    void *task_ctx;
    int task_busy;        /* posted and not finished */
    int stop;
};

typedef struct {
    mk_par *p;
    int tiles;            /* takes mk_par_for's tasks, not only mk_par_async's */
} worker_arg;

/* Takes tasks until none is left; called with mu held, returns with it held. */
static void drain(mk_par *p)
{
    while (p->next < p->n) {
        int64_t k = p->next++;
        pthread_mutex_unlock(&p->mu);
        p->fn(p->ctx, k);
        pthread_mutex_lock(&p->mu);
        if (++p->finished == p->n) pthread_cond_broadcast(&p->done);
    }
}

/* Runs the posted background task; called with mu held, returns with it held. */
static void run_task(mk_par *p)
{
    void (*task)(void *) = p->task;
    void *ctx = p->task_ctx;
    p->task = NULL;
    pthread_mutex_unlock(&p->mu);
    task(ctx);
    pthread_mutex_lock(&p->mu);
    p->task_busy = 0;
    pthread_cond_broadcast(&p->done);
}

/* A background task first (the caller waits for it sooner or later), then
 * the current mk_par_for's blocks. Sleeps on a condition variable when idle:
 * no spinning, so an idle worker costs nothing on a shared core. */
static void *worker(void *arg)
{
    worker_arg *w = arg;
    mk_par *p = w->p;
    int tiles = w->tiles;
    uint64_t seen = 0;
    free(w);
    pthread_mutex_lock(&p->mu);
    for (;;) {
        if (p->task) {
            run_task(p);
        } else if (tiles && p->generation != seen) {
            seen = p->generation;
            drain(p);
        } else if (p->stop) {
            break;
        } else {
            pthread_cond_wait(&p->work, &p->mu);
        }
    }
    pthread_mutex_unlock(&p->mu);
    return NULL;
}

/* Whether this thread may run on more processors than `threads`: then a
 * side thread for background tasks has a core to go to (with one processor,
 * running them in the caller costs the same and switches nothing). */
static int spare_core(int threads)
{
    cpu_set_t set;
    if (sched_getaffinity(0, sizeof set, &set) != 0) return 0;
    return CPU_COUNT(&set) > threads;
}

static int start_worker(mk_par *p, int t, int tiles)
{
    worker_arg *w = malloc(sizeof *w);
    if (!w) return -1;
    *w = (worker_arg){p, tiles};
    if (pthread_create(&p->workers[t], NULL, worker, w) != 0) {
        free(w);
        return -1;
    }
    p->started++;
    return 0;
}

mk_err mk_par_create(int threads, mk_par **out)
{
    mk_err err = MK_OK;
    if (threads < 1) threads = 1;
    mk_par *p = mk_calloc(1, sizeof *p, "the thread pool", &err);
    if (err) return err;
    p->threads = 1;
    pthread_mutex_init(&p->mu, NULL);
    pthread_cond_init(&p->work, NULL);
    pthread_cond_init(&p->done, NULL);
    int side = threads == 1 && spare_core(threads), total = threads - 1 + side;
    p->workers = total > 0 ? mk_calloc((size_t)total, sizeof *p->workers, "the thread pool", &err) : NULL;
    for (int t = 0; t < threads - 1 && !err; t++) {
        if (start_worker(p, t, 1) != 0)
            err = mk_fail(MK_EINTERNAL, "cannot start thread %d of %d", t + 2, threads);
        else
            p->threads++;
    }
    if (!err && side) (void)start_worker(p, threads - 1, 0); /* without it, tasks run in the caller */
    if (err) {
        mk_par_free(p);
        return err;
    }
    *out = p;
    return MK_OK;
}

void mk_par_free(mk_par *p)
{
    if (!p) return;
    mk_par_wait(p);
    pthread_mutex_lock(&p->mu);
    p->stop = 1;
    pthread_cond_broadcast(&p->work);
    pthread_mutex_unlock(&p->mu);
    for (int t = 0; t < p->started; t++) pthread_join(p->workers[t], NULL);
    pthread_mutex_destroy(&p->mu);
    pthread_cond_destroy(&p->work);
    pthread_cond_destroy(&p->done);
    free(p->workers);
    free(p);
}

void mk_par_for(mk_par *p, int64_t n, void (*fn)(void *ctx, int64_t k), void *ctx)
{
    if (!p || p->threads == 1 || n < 2) {
        for (int64_t k = 0; k < n; k++) fn(ctx, k);
        return;
    }
    pthread_mutex_lock(&p->mu);
    p->fn = fn;
    p->ctx = ctx;
    p->n = n;
    p->next = p->finished = 0;
    p->generation++;
    pthread_cond_broadcast(&p->work);
    drain(p);
    while (p->finished < p->n) pthread_cond_wait(&p->done, &p->mu);
    pthread_mutex_unlock(&p->mu);
}

void mk_par_async(mk_par *p, void (*task)(void *ctx), void *ctx)
{
    mk_par_wait(p);
    if (!p || p->started == 0) {
        task(ctx);
        return;
    }
    pthread_mutex_lock(&p->mu);
    p->task = task;
    p->task_ctx = ctx;
    p->task_busy = 1;
    pthread_cond_broadcast(&p->work);
    pthread_mutex_unlock(&p->mu);
}

void mk_par_wait(mk_par *p)
{
    if (!p || p->started == 0) return;
    pthread_mutex_lock(&p->mu);
    while (p->task_busy) pthread_cond_wait(&p->done, &p->mu);
    pthread_mutex_unlock(&p->mu);
}

int mk_par_threads_wanted(int64_t threads)
{
    if (threads > 0) return threads > 1024 ? 1024 : (int)threads;
    const char *slurm = getenv("SLURM_CPUS_PER_TASK");
    int n = slurm ? atoi(slurm) : 0;
    return n > 0 && n <= 1024 ? n : 1;
}
