/* The batch plan: sizes, membership, shuffling, and the split over ranks. */
#include <check.h>
#include <stdlib.h>
#include <string.h>

#include "mpicka/plan.h"

#include "testutil.h"

START_TEST(sizes_without_shuffle)
{
    mk_plan p;
    ck_assert_int_eq(mk_plan_init(&p, 103, 10, 2, 0, 0), MK_OK);
    ck_assert_int_eq(p.per_epoch, 10); /* remainder 3 < 4: dropped */
    ck_assert_int_eq(p.dropped, 3);
    ck_assert_int_eq(p.total, 20);
    ck_assert_int_eq(mk_plan_batch_size(&p, 9), 10);
    ck_assert_int_eq(mk_plan_init(&p, 104, 10, 1, 0, 0), MK_OK);
    ck_assert_int_eq(p.per_epoch, 11); /* remainder 4: kept */
    ck_assert_int_eq(p.dropped, 0);
    ck_assert_int_eq(mk_plan_batch_size(&p, 10), 4);
    ck_assert_int_eq(mk_plan_batch_size(&p, 9), 10);
    int64_t rows[10];
    mk_plan_batch_rows(&p, 10, rows);
    for (int k = 0; k < 4; k++) ck_assert_int_eq(rows[k], 100 + k);
    mk_plan_batch_rows(&p, 3, rows);
    for (int k = 0; k < 10; k++) ck_assert_int_eq(rows[k], 30 + k);
}
END_TEST

START_TEST(batch_larger_than_data)
{
    mk_plan p;
    ck_assert_int_eq(mk_plan_init(&p, 7, 256, 3, 0, 0), MK_OK);
    ck_assert_int_eq(p.per_epoch, 1);
    ck_assert_int_eq(mk_plan_batch_size(&p, 2), 7);
    ck_assert_int_eq(p.dropped, 0);
}
END_TEST

START_TEST(too_small_is_an_error)
{
    mk_plan p;
    ck_assert_int_eq(mk_plan_init(&p, 3, 8, 1, 0, 0), MK_EINPUT);
    ck_assert_ptr_nonnull(strstr(mk_errmsg(), "3 examples"));
    ck_assert_int_eq(mk_plan_init(&p, 100, 3, 1, 0, 0), MK_EINPUT);
    ck_assert_ptr_nonnull(strstr(mk_errmsg(), "batch_size"));
}
END_TEST

/* Every epoch's batches are disjoint, sorted, and cover all examples but the
 * dropped remainder; different epochs and seeds give different orders. */
static void check_partition(int64_t n, int64_t m, uint64_t seed)
{
    mk_plan p;
    ck_assert_int_eq(mk_plan_init(&p, n, m, 2, 1, seed), MK_OK);
    char *seen = calloc((size_t)n, 1);
    int64_t *rows = malloc((size_t)m * sizeof *rows), *first = malloc((size_t)m * sizeof *first);
    for (int64_t e = 0; e < 2; e++) {
        memset(seen, 0, (size_t)n);
        int64_t covered = 0;
        for (int64_t b = 0; b < p.per_epoch; b++) {
            int64_t g = e * p.per_epoch + b, size = mk_plan_batch_size(&p, g);
            mk_plan_batch_rows(&p, g, rows);
            for (int64_t k = 0; k < size; k++) {
                ck_assert(rows[k] >= 0 && rows[k] < n);
                ck_assert(k == 0 || rows[k] > rows[k - 1]);
                ck_assert(!seen[rows[k]]);
                seen[rows[k]] = 1;
            }
            covered += size;
            if (e == 0 && b == 0) memcpy(first, rows, (size_t)m * sizeof *rows);
            if (e == 1 && b == 0) ck_assert(memcmp(first, rows, (size_t)m * sizeof *rows) != 0);
        }
        ck_assert_int_eq(covered, n - p.dropped);
    }
    free(seen);
    free(rows);
    free(first);
}

START_TEST(shuffled_epochs_partition_the_data)
{
    check_partition(1000, 64, 0);
    check_partition(1001, 10, 7);
    check_partition(17, 4, 123);
    check_partition(4096, 512, 1ULL << 63);
}
END_TEST

START_TEST(shuffle_depends_on_seed_only)
{
    mk_plan a, b, c;
    mk_plan_init(&a, 500, 50, 1, 1, 42);
    mk_plan_init(&b, 500, 50, 1, 1, 42);
    mk_plan_init(&c, 500, 50, 1, 1, 43);
    int same_ab = 1, same_ac = 1;
    for (int64_t i = 0; i < 500; i++) {
        same_ab &= mk_plan_permute(&a, 0, i) == mk_plan_permute(&b, 0, i);
        same_ac &= mk_plan_permute(&a, 0, i) == mk_plan_permute(&c, 0, i);
    }
    ck_assert(same_ab);
    ck_assert(!same_ac);
    /* a real shuffle: few fixed points */
    int fixed = 0;
    for (int64_t i = 0; i < 500; i++) fixed += mk_plan_permute(&a, 0, i) == i;
    ck_assert_int_lt(fixed, 10);
}
END_TEST

/* A block shuffle is a bijection of [0, n) per epoch in which each block
 * [k b, (k + 1) b), and the short block [(n / b) b, n), fills consecutive
 * positions in example order; the block order is a real shuffle that differs
 * between epochs; block 1 is the example shuffle. */
static void check_blocks(int64_t n, int64_t b, uint64_t seed)
{
    mk_plan p, ref;
    ck_assert_int_eq(mk_plan_init(&p, n, 8, 2, 1, seed), MK_OK);
    mk_plan_set_block(&p, b);
    char *seen = calloc((size_t)n, 1);
    int64_t moved = 0, differ = 0;
    for (int64_t e = 0; e < 2; e++) {
        memset(seen, 0, (size_t)n);
        for (int64_t i = 0; i < n; i++) {
            int64_t x = mk_plan_permute(&p, e, i), prev = i ? mk_plan_permute(&p, e, i - 1) : -1;
            ck_assert(x >= 0 && x < n && !seen[x]);
            seen[x] = 1;
            if (x % b != 0 && x != (n / b) * b) ck_assert_int_eq(x, prev + 1); /* inside a block */
            moved += e == 0 && x / b != i / b;
            differ += e == 1 && x != mk_plan_permute(&p, 0, i);
        }
    }
    if (n / b >= 8) {
        ck_assert_int_gt(moved, n / 2);
        ck_assert_int_gt(differ, n / 2);
    }
    ck_assert_int_eq(mk_plan_init(&ref, n, 8, 2, 1, seed), MK_OK);
    mk_plan_set_block(&p, 1);
    for (int64_t i = 0; i < n; i++) ck_assert_int_eq(mk_plan_permute(&p, 1, i), mk_plan_permute(&ref, 1, i));
    free(seen);
}

START_TEST(block_shuffle_moves_whole_blocks)
{
    check_blocks(1000, 16, 3);
    check_blocks(1003, 16, 4);  /* a short block of 11 */
    check_blocks(97, 5, 5);
    check_blocks(20, 64, 6);    /* one short block: the identity */
    check_blocks(4096, 512, 1ULL << 63);
}
END_TEST

START_TEST(ranks_get_contiguous_ascending_ranges)
{
    mk_plan p;
    mk_plan_init(&p, 1000, 100, 1, 0, 0); /* 10 batches */
    for (int nranks = 1; nranks <= 13; nranks++) {
        int64_t expect = 0, most = 0, least = p.total;
        for (int r = 0; r < nranks; r++) {
            int64_t lo, hi;
            mk_plan_rank_range(p.total, r, nranks, &lo, &hi);
            ck_assert_int_eq(lo, expect);
            ck_assert_int_ge(hi, lo);
            most = hi - lo > most ? hi - lo : most;
            least = hi - lo < least ? hi - lo : least;
            expect = hi;
        }
        ck_assert_int_eq(expect, p.total);
        ck_assert_int_le(most - least, 1);
    }
}
END_TEST

START_TEST(todo_lists_shrink_as_batches_are_done)
{
    mk_plan p;
    mk_todo t;
    mk_plan_init(&p, 1000, 10, 2, 0, 0); /* 200 batches */
    ck_assert_int_eq(mk_todo_all(&p, &t), MK_OK);
    ck_assert_int_eq(t.batches, 200);
    ck_assert_int_eq(mk_todo_remove(&t, 150, 160), MK_OK); /* highest positions first, as a checkpoint does */
    ck_assert_int_eq(mk_todo_remove(&t, 50, 70), MK_OK);
    ck_assert_int_eq(mk_todo_remove(&t, 0, 10), MK_OK);
    ck_assert_int_eq(t.batches, 160);
    ck_assert_int_eq(t.count, 3);
    ck_assert_int_eq(mk_todo_batch(&t, 0), 10);
    ck_assert_int_eq(mk_todo_batch(&t, 39), 49);
    ck_assert_int_eq(mk_todo_batch(&t, 40), 70);
    ck_assert_int_eq(mk_todo_batch(&t, 119), 149);
    ck_assert_int_eq(mk_todo_batch(&t, 120), 160);
    ck_assert_int_eq(mk_todo_batch(&t, 159), 199);
    ck_assert_int_eq(mk_todo_batch(&t, 160), -1);
    ck_assert_int_eq(mk_todo_remove(&t, 30, 50), MK_OK); /* across a span boundary */
    ck_assert_int_eq(mk_todo_batch(&t, 30), 80);
    ck_assert_int_eq(t.batches, 140);
    mk_todo_free(&t);
}
END_TEST

TU_MAIN("plan", 0,
        TU_CASE("plan", NULL, NULL, 0, NULL, sizes_without_shuffle, batch_larger_than_data, too_small_is_an_error,
                shuffled_epochs_partition_the_data, shuffle_depends_on_seed_only, block_shuffle_moves_whole_blocks,
                ranks_get_contiguous_ascending_ranges, todo_lists_shrink_as_batches_are_done))
