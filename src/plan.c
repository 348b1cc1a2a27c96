#include "mpicka/plan.h"

#include <stdlib.h>

mk_err mk_plan_init(mk_plan *plan, int64_t n, int64_t m, int64_t epochs, int shuffle, uint64_t seed)
{
    if (m < MK_MIN_BATCH)
        return mk_fail(MK_EINPUT, "batch_size must be at least %d, got %lld", MK_MIN_BATCH, (long long)m);
    if (n < MK_MIN_BATCH)
        return mk_fail(MK_EINPUT, "the data has %lld examples; at least %d are needed",
                       (long long)n, MK_MIN_BATCH);
    if (epochs < 1) return mk_fail(MK_EINPUT, "epochs must be at least 1, got %lld", (long long)epochs);
    plan->n = n;
    plan->m = m;
    plan->epochs = epochs;
    plan->shuffle = shuffle;
    plan->seed = seed;
    int64_t full = n / m, rest = n % m;
    plan->per_epoch = full + (rest >= MK_MIN_BATCH ? 1 : 0);
    plan->last_size = rest >= MK_MIN_BATCH ? rest : m;
    plan->dropped = rest >= MK_MIN_BATCH ? 0 : rest;
    plan->total = plan->per_epoch * epochs;
    return MK_OK;
}

int64_t mk_plan_batch_size(const mk_plan *plan, int64_t g)
{
    return g % plan->per_epoch == plan->per_epoch - 1 ? plan->last_size : plan->m;
}

static uint64_t mix64(uint64_t z)
{
    z += 0x9e3779b97f4a7c15ULL;
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

/* A balanced Feistel network on 2*half bits is a bijection of [0, 4^half);
 * cycle-walking restricts it to [0, n) (fewer than 4 steps on average since
 * 4^half < 4n). */
static uint64_t feistel(uint64_t x, int half, uint64_t key)
{
    uint64_t mask = (1ULL << half) - 1;
    uint64_t l = x >> half, r = x & mask;
    for (int round = 0; round < 6; round++) {
        uint64_t f = mix64(key ^ mix64(r + ((uint64_t)round << 56))) & mask;
        uint64_t nl = r;
        r = l ^ f;
        l = nl;
    }
    return (l << half) | r;
}

int64_t mk_plan_permute(const mk_plan *plan, int64_t epoch, int64_t i)
{
    if (!plan->shuffle) return i;
    int half = 1;
    while ((1ULL << (2 * half)) < (uint64_t)plan->n) half++;
    uint64_t key = mix64(plan->seed ^ mix64((uint64_t)epoch + 0x5bd1e995ULL));
    uint64_t x = (uint64_t)i;
    do x = feistel(x, half, key);
    while (x >= (uint64_t)plan->n);
    return (int64_t)x;
}

static int cmp_i64(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return (x > y) - (x < y);
}

void mk_plan_batch_rows(const mk_plan *plan, int64_t g, int64_t *rows)
{
    int64_t epoch = g / plan->per_epoch, b = g % plan->per_epoch;
    int64_t size = mk_plan_batch_size(plan, g);
    for (int64_t k = 0; k < size; k++) rows[k] = mk_plan_permute(plan, epoch, b * plan->m + k);
    if (plan->shuffle) qsort(rows, (size_t)size, sizeof *rows, cmp_i64);
}

void mk_plan_rank_range(const mk_plan *plan, int rank, int nranks, int64_t *lo, int64_t *hi)
{
    int64_t q = plan->total / nranks, r = plan->total % nranks;
    *lo = rank * q + (rank < r ? rank : r);
    *hi = *lo + q + (rank < r ? 1 : 0);
}
