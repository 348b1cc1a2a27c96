#include "mpicka/progress.h"
#include "mpicka/log.h"

#include <unistd.h>

mk_progress_mode mk_progress_auto(FILE *out)
{
    return isatty(fileno(out)) ? MK_PROGRESS_BAR : MK_PROGRESS_LINES;
}

void mk_progress_start(mk_progress *p, FILE *out, mk_progress_mode mode, double interval, int64_t total,
                       int64_t examples_per_batch, int64_t done_before)
{
    *p = (mk_progress){.out = out, .mode = mode, .total = total, .examples = examples_per_batch,
                       .first = done_before};
    p->interval = mode == MK_PROGRESS_BAR ? 0.2 : interval;
    p->start = mk_now();
    p->last = p->start - p->interval; /* the first update shows at once */
}

static void format_time(double s, char *buf, size_t len)
{
    long t = (long)(s + 0.5);
    if (t >= 3600)
        snprintf(buf, len, "%ldh%02ldm", t / 3600, t / 60 % 60);
    else
        snprintf(buf, len, "%ldm%02lds", t / 60, t % 60);
}

void mk_progress_update(mk_progress *p, int64_t done)
{
    double t = mk_now();
    p->done = done;
    if (p->mode == MK_PROGRESS_NONE || done <= p->first) return;
    if (t - p->last < p->interval && !(p->final && done == p->total)) return;
    p->last = t;
    p->shown = done;
    double elapsed = t - p->start, rate = (double)(done - p->first) / elapsed;
    char left[32];
    format_time((double)(p->total - done) / rate, left, sizeof left);
    double pct = 100.0 * (double)done / (double)p->total;
    if (p->mode == MK_PROGRESS_LINES) {
        fprintf(p->out, "mpicka: progress: %lld/%lld batches (%.0f%%), %.0f examples/s, %s left\n",
                (long long)done, (long long)p->total, pct, rate * (double)p->examples, left);
    } else {
        char bar[31];
        int fill = (int)(30.0 * (double)done / (double)p->total);
        for (int i = 0; i < 30; i++) bar[i] = i < fill ? '#' : '.';
        bar[30] = '\0';
        fprintf(p->out, "\r[%s] %3.0f%% %lld/%lld batches, %.0f examples/s, %s left ", bar, pct,
                (long long)done, (long long)p->total, rate * (double)p->examples, left);
        p->drawn = 1;
    }
    fflush(p->out);
}

void mk_progress_finish(mk_progress *p)
{
    if (p->mode == MK_PROGRESS_LINES && p->done == p->total && p->shown != p->total) { /* end on 100% */
        p->final = 1;
        mk_progress_update(p, p->done);
    }
    if (p->drawn) fputs("\r\033[K", p->out);
    p->drawn = 0;
    fflush(p->out);
}
