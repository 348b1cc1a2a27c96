/* The tree accumulator: its sum is the fixed binary tree over batch indices,
 * whatever contiguous split of the batches the ranks had. */
#include <check.h>
#include <math.h>
#include <mpi.h>
#include <stdlib.h>
#include <string.h>

#include "mpicka/accum.h"
#include "testutil.h"

enum { LEN = 3 };

/* Values of wildly different magnitudes, so that any change of summation
 * order changes the bits. */
static void leaf(int64_t g, double *v)
{
    uint64_t st = (uint64_t)g * 7919 + 1;
    for (int k = 0; k < LEN; k++) v[k] = tu_normal(&st) * pow(10.0, (double)((g * 7 + k) % 17) - 8.0);
}

/* The definition: the sum over [lo, lo + 2^level) cut at total is the sum of
 * its two halves, a lone left half standing for itself. */
static void tree_sum(int64_t lo, int level, int64_t total, double *out)
{
    if (level == 0) {
        leaf(lo, out);
        return;
    }
    int64_t half = 1LL << (level - 1);
    tree_sum(lo, level - 1, total, out);
    if (lo + half >= total) return;
    double right[LEN];
    tree_sum(lo + half, level - 1, total, right);
    for (int k = 0; k < LEN; k++) out[k] += right[k];
}

static void reference(int64_t total, double *out)
{
    int level = 0;
    while ((1LL << level) < total) level++;
    tree_sum(0, level, total, out);
}

/* Split [0, total) at the given cut points, one accumulator per part, then
 * push their partial sums in order into a fresh one, as rank 0 does. */
static void split_sum(int64_t total, const int64_t *cuts, int ncuts, double *out)
{
    mk_accum *parts[16], *all;
    double v[LEN];
    int64_t lo = 0;
    ck_assert_int_eq(mk_accum_create(LEN, &all), MK_OK);
    for (int r = 0; r <= ncuts; r++) {
        int64_t hi = r < ncuts ? cuts[r] : total;
        ck_assert_int_eq(mk_accum_create(LEN, &parts[r]), MK_OK);
        for (int64_t g = lo; g < hi; g++) {
            leaf(g, v);
            ck_assert_int_eq(mk_accum_add(parts[r], g, v), MK_OK);
        }
        lo = hi;
        mk_nodes nodes;
        ck_assert_int_eq(mk_accum_nodes(parts[r], &nodes), MK_OK);
        for (int64_t i = 0; i < nodes.count; i++)
            ck_assert_int_eq(mk_accum_push(all, nodes.level[i], nodes.start[i], nodes.sums + i * LEN), MK_OK);
        mk_nodes_free(&nodes);
        mk_accum_free(parts[r]);
    }
    mk_accum_total(all, out);
    mk_accum_free(all);
}

START_TEST(single_accumulator_is_the_tree)
{
    for (int64_t total = 1; total <= 70; total++) {
        double a[LEN], b[LEN];
        split_sum(total, NULL, 0, a);
        reference(total, b);
        ck_assert_msg(memcmp(a, b, sizeof a) == 0, "total %lld", (long long)total);
    }
}
END_TEST

START_TEST(any_contiguous_split_gives_the_same_bits)
{
    uint64_t st = 3;
    for (int trial = 0; trial < 400; trial++) {
        int64_t total = 1 + (int64_t)(tu_uniform(&st) * 200);
        int ncuts = (int)(tu_uniform(&st) * 15);
        int64_t cuts[15];
        for (int c = 0; c < ncuts; c++) cuts[c] = (int64_t)(tu_uniform(&st) * (double)(total + 1));
        for (int i = 1; i < ncuts; i++) /* sort: parts may be empty */
            for (int j = i; j > 0 && cuts[j] < cuts[j - 1]; j--) {
                int64_t t = cuts[j];
                cuts[j] = cuts[j - 1];
                cuts[j - 1] = t;
            }
        double a[LEN], b[LEN];
        split_sum(total, cuts, ncuts, a);
        reference(total, b);
        ck_assert_msg(memcmp(a, b, sizeof a) == 0, "total %lld, %d cuts", (long long)total, ncuts);
    }
}
END_TEST

START_TEST(the_tree_is_not_the_sequential_sum)
{
    /* Guards the test above against values that sum the same in any order. */
    double tree[LEN], seq[LEN] = {0}, v[LEN];
    reference(37, tree);
    for (int64_t g = 0; g < 37; g++) {
        leaf(g, v);
        for (int k = 0; k < LEN; k++) seq[k] += v[k];
    }
    ck_assert(memcmp(tree, seq, sizeof tree) != 0);
}
END_TEST

START_TEST(batches_must_come_in_order)
{
    mk_accum *acc;
    double v[LEN] = {1, 2, 3};
    ck_assert_int_eq(mk_accum_create(LEN, &acc), MK_OK);
    ck_assert_int_eq(mk_accum_add(acc, 5, v), MK_OK);
    ck_assert_int_eq(mk_accum_add(acc, 7, v), MK_OK); /* a gap: batch 6 is someone else's */
    ck_assert_int_eq(mk_accum_add(acc, 6, v), MK_EINTERNAL);
    ck_assert_int_eq(mk_accum_push(acc, 2, 4, v), MK_EINTERNAL); /* overlaps */
    mk_accum_free(acc);
}
END_TEST

/* A resumed run: a checkpoint saved the sums of some spans; the rest is
 * computed later, with gaps, and everything meets on rank 0. */
START_TEST(saved_sums_and_gaps_give_the_same_bits)
{
    const int64_t total = 53;
    mk_accum *first, *later, *merged;
    double v[LEN], a[LEN], b[LEN];
    ck_assert_int_eq(mk_accum_create(LEN, &first), MK_OK);
    ck_assert_int_eq(mk_accum_create(LEN, &later), MK_OK);
    for (int64_t g = 0; g < total; g++) {
        leaf(g, v);
        int saved = (g >= 3 && g < 17) || (g >= 30 && g < 41); /* done before the stop */
        ck_assert_int_eq(mk_accum_add(saved ? first : later, g, v), MK_OK);
    }
    mk_nodes nodes;
    ck_assert_int_eq(mk_accum_nodes(first, &nodes), MK_OK);
    ck_assert_int_eq(mk_accum_gather(later, &nodes, MPI_COMM_SELF, &merged), MK_OK);
    mk_accum_total(merged, a);
    reference(total, b);
    ck_assert(memcmp(a, b, sizeof a) == 0);
    mk_nodes_free(&nodes);
    mk_accum_free(first);
    mk_accum_free(later);
    mk_accum_free(merged);
}
END_TEST

/* The MPI path on this process alone; several ranks are covered end to end. */
START_TEST(reduce_on_one_rank)
{
    mk_accum *acc;
    double v[LEN], out[LEN], ref[LEN];
    ck_assert_int_eq(mk_accum_create(LEN, &acc), MK_OK);
    for (int64_t g = 0; g < 21; g++) {
        leaf(g, v);
        mk_accum_add(acc, g, v);
    }
    mk_accum *merged;
    ck_assert_int_eq(mk_accum_gather(acc, NULL, MPI_COMM_SELF, &merged), MK_OK);
    mk_accum_total(merged, out);
    reference(21, ref);
    ck_assert(memcmp(out, ref, sizeof out) == 0);
    mk_accum_free(acc);
    mk_accum_free(merged);
}
END_TEST

TU_MAIN("accum", 1,
        TU_CASE("tree", NULL, NULL, 0, NULL, single_accumulator_is_the_tree, any_contiguous_split_gives_the_same_bits,
                the_tree_is_not_the_sequential_sum, batches_must_come_in_order, saved_sums_and_gaps_give_the_same_bits,
                reduce_on_one_rank))
