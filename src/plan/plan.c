#include "mpicka/plan.h"

#include <stdlib.h>
#include <string.h>

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
    plan->block = 1;
    int64_t full = n / m, rest = n % m;
    plan->per_epoch = full + (rest >= MK_MIN_BATCH ? 1 : 0);
    plan->last_size = rest >= MK_MIN_BATCH ? rest : m;
    plan->dropped = rest >= MK_MIN_BATCH ? 0 : rest;
    if (__builtin_mul_overflow(plan->per_epoch, epochs, &plan->total))
        return mk_fail(MK_ECONFIG, "epochs %lld x %lld batches per epoch is more batches than can be counted",
                       (long long)epochs, (long long)plan->per_epoch);
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

/* A keyed bijection of [0, count). */
static int64_t permute_keyed(uint64_t key, int64_t count, int64_t i)
{
    int half = 1;
    while ((1ULL << (2 * half)) < (uint64_t)count) half++;
    uint64_t x = (uint64_t)i;
    do x = feistel(x, half, key);
    while (x >= (uint64_t)count);
    return (int64_t)x;
}

void mk_plan_set_block(mk_plan *plan, int64_t block) { plan->block = block < 1 ? 1 : block; }

int64_t mk_plan_permute(const mk_plan *plan, int64_t epoch, int64_t i)
{
    if (!plan->shuffle) return i;
    uint64_t key = mix64(plan->seed ^ mix64((uint64_t)epoch + 0x5bd1e995ULL));
    int64_t b = plan->block, whole = plan->n / b, rest = plan->n % b;
    if (b == 1) return permute_keyed(key, plan->n, i);
    /* The short block [whole * b, n) goes in at a random block position q. */
    int64_t q = (int64_t)(mix64(key ^ 0x9e3779b97f4a7c15ULL) % (uint64_t)(whole + 1));
    if (i >= q * b && i < q * b + rest) return whole * b + (i - q * b);
    if (i >= q * b) i -= rest;
    return permute_keyed(key, whole, i / b) * b + i % b;
}

void mk_plan_keep_all(mk_plan *plan)
{
    if (!plan->dropped) return;
    plan->per_epoch++;
    plan->last_size = plan->dropped;
    plan->dropped = 0;
    plan->total = plan->per_epoch * plan->epochs;
}

void mk_plan_test_perm(const mk_plan *plan, int64_t g, int64_t r, int64_t m, int64_t *perm)
{
    uint64_t state = mix64(plan->seed ^ mix64((uint64_t)g ^ mix64((uint64_t)r + 0x2545f4914f6cdd1dULL)));
    for (int64_t i = 0; i < m; i++) perm[i] = i;
    for (int64_t i = m - 1; i > 0; i--) {
        state = mix64(state);
        /* Multiply-shift maps 64 random bits onto [0, i]; the bias is below 2^-40 for any batch. */
        int64_t j = (int64_t)(((unsigned __int128)state * (uint64_t)(i + 1)) >> 64);
        int64_t tmp = perm[i];
        perm[i] = perm[j];
        perm[j] = tmp;
    }
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

void mk_plan_rank_range(int64_t count, int rank, int nranks, int64_t *lo, int64_t *hi)
{
    int64_t q = count / nranks, r = count % nranks;
    *lo = rank * q + (rank < r ? rank : r);
    *hi = *lo + q + (rank < r ? 1 : 0);
}

mk_err mk_todo_all(const mk_plan *plan, mk_todo *todo)
{
    mk_err err = MK_OK;
    todo->spans = mk_malloc(sizeof *todo->spans, "the batch list", &err);
    if (err) return err;
    todo->spans[0][0] = 0;
    todo->spans[0][1] = plan->total;
    todo->count = 1;
    todo->batches = plan->total;
    return MK_OK;
}

void mk_todo_free(mk_todo *todo)
{
    free(todo->spans);
    todo->spans = NULL;
    todo->count = 0;
    todo->batches = 0;
}

int64_t mk_todo_batch(const mk_todo *todo, int64_t k)
{
    for (int i = 0; i < todo->count; i++) {
        int64_t len = todo->spans[i][1] - todo->spans[i][0];
        if (k < len) return todo->spans[i][0] + k;
        k -= len;
    }
    return -1;
}

/* Splits the span holding position k so that a span starts there. */
static mk_err split_at(mk_todo *todo, int64_t k)
{
    int i = 0;
    for (; i < todo->count && k >= todo->spans[i][1] - todo->spans[i][0]; i++) k -= todo->spans[i][1] - todo->spans[i][0];
    if (i == todo->count || k == 0) return MK_OK;
    int64_t(*grown)[2] = realloc(todo->spans, (size_t)(todo->count + 1) * sizeof *grown);
    if (!grown) return mk_fail(MK_ENOMEM, "cannot grow the batch list");
    todo->spans = grown;
    memmove(&grown[i + 1], &grown[i], (size_t)(todo->count - i) * sizeof *grown);
    grown[i][1] = grown[i][0] + k;
    grown[i + 1][0] = grown[i][1];
    todo->count++;
    return MK_OK;
}

mk_err mk_todo_remove(mk_todo *todo, int64_t k0, int64_t k1)
{
    if (k1 <= k0) return MK_OK;
    MK_TRY(split_at(todo, k0));
    MK_TRY(split_at(todo, k1));
    int out = 0;
    int64_t pos = 0;
    for (int i = 0; i < todo->count; i++) {
        int64_t len = todo->spans[i][1] - todo->spans[i][0];
        if (pos < k0 || pos >= k1) {
            todo->spans[out][0] = todo->spans[i][0];
            todo->spans[out][1] = todo->spans[i][1];
            out++;
        }
        pos += len;
    }
    todo->count = out;
    todo->batches -= k1 - k0;
    return MK_OK;
}
