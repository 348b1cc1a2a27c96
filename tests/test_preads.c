/* Batched positional reads (src/io/preads.c) on a real file, through
 * io_uring and through plain pread: the bytes at every offset, more reads
 * than the ring holds, reads past the end and on a bad descriptor; and the
 * source's scattered rows read both ways against the values written. A
 * build without liburing runs the pread variants and skips the others. */
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <hdf5.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "mpicka/source.h"
#include "preads.h"
#include "testutil.h"

#define FILE_BYTES 100000

static char *file;

static unsigned char byte_at(int64_t off) { return (unsigned char)((off * 131 + off / 251) & 0xff); }

static void setup(void)
{
    tu_dir_setup();
    file = tu_in("bytes.bin");
    FILE *f = fopen(file, "wb");
    ck_assert_ptr_nonnull(f);
    for (int64_t i = 0; i < FILE_BYTES; i++) fputc(byte_at(i), f);
    fclose(f);
}

/* The io_uring variant in a build without liburing: skipped, and said so. */
static int skipped(int uring, const char *test)
{
    if (!uring || mk__preads_built_with_uring()) return 0;
    fprintf(stderr, "%s: io_uring variant skipped: built without liburing\n", test);
    return 1;
}

/* Both ways of reading: io_uring where the kernel has it, and pread. */
static mk__preads *open_queue(int uring)
{
    setenv("MPICKA_IO_URING", uring ? "1" : "0", 1);
    mk__preads *q = mk__preads_open();
    unsetenv("MPICKA_IO_URING");
    if (!uring) ck_assert_ptr_null(q);
    if (uring && !q) fprintf(stderr, "no io_uring on this kernel: pread tested in its place\n");
    return q;
}

/* 1500 reads (three times what the ring holds) of 0 to 96 bytes at
 * pseudo-random offsets, each into its own slot, checked after the wait;
 * _i: 1 io_uring, 0 pread. */
START_TEST(reads_every_offset)
{
    int uring = _i;
    enum { N = 1500, SLOT = 96 };
    if (skipped(uring, "reads_every_offset")) return;
    mk__preads *q = open_queue(uring);
    int fd = open(file, O_RDONLY);
    unsigned char *buf = malloc((size_t)N * SLOT);
    int64_t off[N];
    size_t len[N];
    uint64_t state = 7;
    memset(buf, 0xAA, (size_t)N * SLOT);
    for (int i = 0; i < N; i++) {
        off[i] = (int64_t)(tu_uniform(&state) * (FILE_BYTES - SLOT));
        len[i] = (size_t)(tu_uniform(&state) * (SLOT + 1)) % (SLOT + 1);
        ck_assert_int_eq(mk__preads_add(q, fd, buf + (size_t)i * SLOT, len[i], (off_t)off[i]), 0);
    }
    ck_assert_int_eq(mk__preads_wait(q), 0);
    for (int i = 0; i < N; i++) {
        for (size_t k = 0; k < len[i]; k++)
            ck_assert_msg(buf[(size_t)i * SLOT + k] == byte_at(off[i] + (int64_t)k), "read %d byte %zu", i, k);
        if (len[i] < SLOT) ck_assert_int_eq(buf[(size_t)i * SLOT + len[i]], 0xAA); /* nothing beyond */
    }
    free(buf);
    close(fd);
    mk__preads_close(q);
}
END_TEST

/* One read, queued and waited for: 0 or -1. */
static int read_now(mk__preads *q, int fd, void *buf, size_t len, off_t off)
{
    int r = mk__preads_add(q, fd, buf, len, off);
    return r == 0 ? mk__preads_wait(q) : r;
}

/* A read past the end fails with EIO, a bad descriptor with EBADF, and the
 * queue reads correctly afterwards; _i as above. */
START_TEST(failures_are_reported)
{
    int uring = _i;
    if (skipped(uring, "failures_are_reported")) return;
    mk__preads *q = open_queue(uring);
    int fd = open(file, O_RDONLY);
    unsigned char buf[64], good[8];
    ck_assert_int_eq(mk__preads_add(q, fd, good, 8, 10), 0);
    int r = mk__preads_add(q, fd, buf, 64, FILE_BYTES - 10); /* queued behind a good read */
    if (r == 0) r = mk__preads_wait(q);
    ck_assert_int_eq(r, -1);
    ck_assert_int_eq(errno, EIO);
    ck_assert_int_eq(read_now(q, fd, buf, 8, FILE_BYTES + 100), -1); /* wholly past the end */
    ck_assert_int_eq(errno, EIO);
    ck_assert_int_eq(read_now(q, 12345, buf, 8, 0), -1);
    ck_assert_int_eq(errno, EBADF);
    memset(buf, 0, sizeof buf);
    ck_assert_int_eq(read_now(q, fd, buf, 64, 1000), 0);
    for (int k = 0; k < 64; k++) ck_assert_int_eq(buf[k], byte_at(1000 + k));
    close(fd);
    mk__preads_close(q);
}
END_TEST

/* A shuffled batch of a contiguous float32 layer, read both ways by the
 * source: every value as written (distinct for every row and feature). */
START_TEST(source_reads_scattered_rows_both_ways)
{
    enum { N = 3000, P = 5, M = 1100 };
    char *h5 = tu_path(tu_dir, "acts.h5");
    hsize_t dims[2] = {N, P};
    double *data = malloc((size_t)N * P * sizeof *data);
    for (int64_t k = 0; k < (int64_t)N * P; k++) data[k] = (double)k;
    tu_write_dataset(h5, "layer", H5T_IEEE_F32LE, 2, dims, data);
    const char *layers[] = {"layer"};
    mk_model_cfg cfg = {.files = &h5, .nfiles = 1, .name = "acts", .layers = (char **)layers, .nlayers = 1};
    mk_model m;
    ck_assert_int_eq(mk_model_inspect(&cfg, &m), MK_OK);
    int64_t rows[M];
    for (int i = 0; i < M; i++) rows[i] = i < 900 ? 3 * i + 1 : 2699 + (i - 900); /* scattered, then one run */
    float *got = malloc((size_t)M * P * sizeof *got);
    for (int uring = 0; uring < 2; uring++) {
        if (skipped(uring, "source_reads_scattered_rows_both_ways")) continue;
        setenv("MPICKA_IO_URING", uring ? "1" : "0", 1);
        mk_source *src;
        ck_assert_int_eq(mk_source_open(&m, MK_CHUNK_CACHES, &src), MK_OK);
        unsetenv("MPICKA_IO_URING");
        memset(got, 0, (size_t)M * P * sizeof *got);
        ck_assert_int_eq(mk_source_read(src, 0, rows, M, got), MK_OK);
        for (int i = 0; i < M; i++)
            for (int f = 0; f < P; f++)
                ck_assert_msg(got[i * P + f] == (float)data[rows[i] * P + f], "io_uring %d row %lld feature %d", uring,
                              (long long)rows[i], f);
        mk_source_close(src);
    }
    free(got);
    free(data);
    mk_model_free(&m);
    free(h5);
}
END_TEST

static void both_ways_of_reading(TCase *tc)
{
    tcase_add_loop_test(tc, reads_every_offset, 0, 2);
    tcase_add_loop_test(tc, failures_are_reported, 0, 2);
}

TU_MAIN("preads", 0,
        TU_CASE("batched reads", setup, tu_dir_teardown, 0, both_ways_of_reading,
                source_reads_scattered_rows_both_ways))
