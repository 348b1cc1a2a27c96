#include "mpicka/par.h"

#include <pthread.h>
#include <stdlib.h>

struct mk_par {
    int threads;
    pthread_t *workers;
    pthread_mutex_t mu;
    pthread_cond_t work, done;
    void (*fn)(void *ctx, int64_t k);
    void *ctx;
    int64_t n, next, finished;
    uint64_t generation;  /* a new mk_par_for wakes the workers */
    int stop;
};

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

static void *worker(void *arg)
{
    mk_par *p = arg;
    uint64_t seen = 0;
    pthread_mutex_lock(&p->mu);
    for (;;) {
        while (!p->stop && p->generation == seen) pthread_cond_wait(&p->work, &p->mu);
        if (p->stop) break;
        seen = p->generation;
        drain(p);
    }
    pthread_mutex_unlock(&p->mu);
    return NULL;
}

mk_err mk_par_create(int threads, mk_par **out)
{
    mk_err err = MK_OK;
    mk_par *p = mk_calloc(1, sizeof *p, "the thread pool", &err);
    if (err) return err;
    p->threads = 1;
    pthread_mutex_init(&p->mu, NULL);
    pthread_cond_init(&p->work, NULL);
    pthread_cond_init(&p->done, NULL);
    p->workers = threads > 1 ? mk_calloc((size_t)threads - 1, sizeof *p->workers, "the thread pool", &err) : NULL;
    for (int t = 0; t < threads - 1 && !err; t++) {
        if (pthread_create(&p->workers[t], NULL, worker, p) != 0)
            err = mk_fail(MK_EINTERNAL, "cannot start thread %d of %d", t + 2, threads);
        else
            p->threads++;
    }
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
    pthread_mutex_lock(&p->mu);
    p->stop = 1;
    pthread_cond_broadcast(&p->work);
    pthread_mutex_unlock(&p->mu);
    for (int t = 0; t < p->threads - 1; t++) pthread_join(p->workers[t], NULL);
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

int mk_par_threads_wanted(int64_t threads)
{
    if (threads > 0) return threads > 1024 ? 1024 : (int)threads;
    const char *slurm = getenv("SLURM_CPUS_PER_TASK");
    int n = slurm ? atoi(slurm) : 0;
    return n > 0 && n <= 1024 ? n : 1;
}
