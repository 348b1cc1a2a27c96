#include "mpicka/log.h"

#include <stdarg.h>
#include <stdio.h>
#include <time.h>

static int log_rank;

void mk_log_init(int rank) { log_rank = rank; }

int mk_log_rank(void) { return log_rank; }

void mk_info(const char *fmt, ...)
{
    if (log_rank != 0) return;
    va_list ap;
    va_start(ap, fmt);
    vfprintf(stdout, fmt, ap);
    va_end(ap);
    fputc('\n', stdout);
    fflush(stdout);
}

void mk_warn(const char *fmt, ...)
{
    if (log_rank != 0) return;
    va_list ap;
    va_start(ap, fmt);
    fputs("mpicka: warning: ", stderr);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
}

void mk_error_report(mk_err err)
{
    if (log_rank != 0 || err == MK_OK) return;
    fprintf(stderr, "mpicka: %s: %s\n", mk_errname(err), mk_errmsg());
}

double mk_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}
