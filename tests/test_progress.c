/* The progress line: its rate and time left come from the batches of this
 * segment in this segment's time, not from the batches a checkpoint restored. */
#include <check.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "mpicka/progress.h"

#include "testutil.h"

/* The last line written: done, rate and seconds left. */
typedef struct {
    long long done, total;
    double rate;
    int lines;
    long left;
} progress_line;

static progress_line last_line(FILE *f)
{
    progress_line l = {0};
    char buf[256];
    long min = 0, sec = 0;
    rewind(f);
    while (fgets(buf, sizeof buf, f)) {
        ck_assert_int_eq(sscanf(buf, "mpicka: progress: %lld/%lld batches (%*d%%), %lf examples/s, %ldm%lds left",
                                &l.done, &l.total, &l.rate, &min, &sec), 5);
        l.left = min * 60 + sec;
        l.lines++;
    }
    return l;
}

static void pause_200ms(void)
{
    struct timespec t = {0, 200000000L};
    nanosleep(&t, NULL);
}

START_TEST(resumed_run_counts_only_its_own_batches)
{
    FILE *f = tmpfile();
    mk_progress p;
    /* 600 of 1000 batches restored, 100 examples each; 10 done in >= 0.2 s. */
    mk_progress_start(&p, f, MK_PROGRESS_LINES, 0.0, 1000, 100, 600);
    mk_progress_update(&p, 600);
    ck_assert_int_eq(last_line(f).lines, 0); /* nothing done yet in this segment */
    pause_200ms();
    mk_progress_update(&p, 610);
    progress_line l = last_line(f);
    ck_assert_int_eq(l.lines, 1);
    ck_assert_int_eq(l.done, 610);
    ck_assert_int_eq(l.total, 1000);
    /* At most 10 * 100 / 0.2 = 5000 examples/s; counting the restored 600
     * batches would claim 61 times that. */
    ck_assert_double_le(l.rate, 5000.0 * 1.05);
    ck_assert_double_gt(l.rate, 0.0);
    /* 390 batches at 10 per >= 0.2 s: at least 7.8 s left (not 0). */
    ck_assert_int_ge(l.left, 7);
    fclose(f);
}
END_TEST

START_TEST(fresh_run_rate)
{
    FILE *f = tmpfile();
    mk_progress p;
    mk_progress_start(&p, f, MK_PROGRESS_LINES, 0.0, 100, 10, 0);
    pause_200ms();
    mk_progress_update(&p, 10);
    progress_line l = last_line(f);
    ck_assert_int_eq(l.lines, 1);
    ck_assert_double_le(l.rate, 10 * 10 / 0.2 * 1.05);
    ck_assert_int_ge(l.left, 1); /* 90 batches at 10 per >= 0.2 s: >= 1.8 s */
    fclose(f);
}
END_TEST

TU_MAIN("progress", 0,
        TU_CASE("rate", NULL, NULL, 0, NULL, resumed_run_counts_only_its_own_batches, fresh_run_rate))
