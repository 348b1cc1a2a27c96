#include "mpicka/accum.h"

#include <stdlib.h>
#include <string.h>

/* A node covers batches [start, start + 2^level) of the tree, cut at the last
 * batch; its sum is left child + right child, or the left child alone. */
typedef struct {
    int64_t level, start;
    double *sum;
} node;

/* Partial sums held at once: about 2 log2(batches) per span of batches a rank
 * computes (a resumed run may give a rank a few separate spans). */
#define MK_MAX_DEPTH 256

struct mk_accum {
    int64_t len;
    int depth;                   /* nodes on the stack */
    node stack[MK_MAX_DEPTH + 1];
};

mk_err mk_accum_create(int64_t len, mk_accum **acc)
{
    mk_err err = MK_OK;
    *acc = mk_calloc(1, sizeof **acc, "an accumulator", &err);
    if (err) return err;
    (*acc)->len = len;
    return MK_OK;
}

void mk_accum_free(mk_accum *acc)
{
    if (!acc) return;
    for (int i = 0; i <= MK_MAX_DEPTH; i++) free(acc->stack[i].sum);
    free(acc);
}

static int is_left_sibling(const node *a, int64_t level, int64_t start)
{
    return a->level == level && ((a->start >> level) & 1) == 0 && a->start + (1LL << level) == start;
}

/* Push a node whose sum is in `values`, merging completed sibling pairs. The
 * sum buffers of the stack slots are reused and allocated only when reached. */
static mk_err push(mk_accum *acc, int64_t level, int64_t start, const double *values)
{
    while (acc->depth > 0 && is_left_sibling(&acc->stack[acc->depth - 1], level, start)) {
        node *top = &acc->stack[acc->depth - 1];
        if (values != top->sum)
            for (int64_t k = 0; k < acc->len; k++) top->sum[k] += values[k];
        level++;
        start = top->start;
        values = top->sum;
        acc->depth--;
    }
    if (acc->depth == MK_MAX_DEPTH) return mk_fail(MK_EINTERNAL, "accumulator tree too deep");
    node *slot = &acc->stack[acc->depth];
    if (!slot->sum) {
        mk_err err = MK_OK;
        slot->sum = mk_malloc((size_t)acc->len * sizeof(double), "an accumulator", &err);
        if (err) return err;
    }
    if (slot->sum != values) memcpy(slot->sum, values, (size_t)acc->len * sizeof(double));
    slot->level = level;
    slot->start = start;
    acc->depth++;
    return MK_OK;
}

static int64_t node_end(const node *n) { return n->start + (1LL << n->level); }

mk_err mk_accum_push(mk_accum *acc, int64_t level, int64_t start, const double *values)
{
    if (acc->depth > 0 && start < node_end(&acc->stack[acc->depth - 1]))
        return mk_fail(MK_EINTERNAL, "partial sum of batches from %lld pushed out of order", (long long)start);
    return push(acc, level, start, values);
}

mk_err mk_accum_add(mk_accum *acc, int64_t g, const double *values)
{
    return mk_accum_push(acc, 0, g, values);
}

void mk_nodes_free(mk_nodes *nodes)
{
    free(nodes->level);
    free(nodes->start);
    free(nodes->sums);
    memset(nodes, 0, sizeof *nodes);
}

mk_err mk_accum_nodes(const mk_accum *acc, mk_nodes *nodes)
{
    mk_err err = MK_OK;
    int64_t n = acc->depth, len = acc->len;
    memset(nodes, 0, sizeof *nodes);
    nodes->level = mk_malloc((size_t)n * sizeof(int64_t), "partial sums", &err);
    nodes->start = mk_malloc((size_t)n * sizeof(int64_t), "partial sums", &err);
    nodes->sums = mk_malloc((size_t)(n * len) * sizeof(double), "partial sums", &err);
    if (err) {
        mk_nodes_free(nodes);
        return err;
    }
    nodes->count = n;
    nodes->len = len;
    for (int64_t i = 0; i < n; i++) {
        nodes->level[i] = acc->stack[i].level;
        nodes->start[i] = acc->stack[i].start;
        memcpy(nodes->sums + i * len, acc->stack[i].sum, (size_t)len * sizeof(double));
    }
    return MK_OK;
}

void mk_accum_total(const mk_accum *acc, double *out)
{
    memset(out, 0, (size_t)acc->len * sizeof(double));
    if (acc->depth == 0) return;
    memcpy(out, acc->stack[acc->depth - 1].sum, (size_t)acc->len * sizeof(double));
    for (int i = acc->depth - 2; i >= 0; i--)
        for (int64_t k = 0; k < acc->len; k++) out[k] = acc->stack[i].sum[k] + out[k];
}

/* ---- gathering on rank 0 ---- */

/* A node somewhere: in `saved` (owner -1) or on rank `owner`, its index there. */
typedef struct {
    int64_t level, start;
    int owner, index;
} entry;

static int by_start(const void *a, const void *b)
{
    int64_t x = ((const entry *)a)->start, y = ((const entry *)b)->start;
    return (x > y) - (x < y);
}

static void send_nodes(const mk_accum *acc, MPI_Comm comm)
{
    int64_t meta[2 * MK_MAX_DEPTH];
    int depth = acc->depth;
    for (int i = 0; i < depth; i++) {
        meta[2 * i] = acc->stack[i].level;
        meta[2 * i + 1] = acc->stack[i].start;
    }
    MPI_Gather(&depth, 1, MPI_INT, NULL, 1, MPI_INT, 0, comm);
    MPI_Gatherv(meta, 2 * depth, MPI_INT64_T, NULL, NULL, NULL, MPI_INT64_T, 0, comm);
    for (int i = 0; i < depth; i++) MPI_Send(acc->stack[i].sum, (int)acc->len, MPI_DOUBLE, 0, 1, comm);
}

/* Rank 0: every node's place, in the tree's order. */
static mk_err list_entries(const mk_accum *acc, const mk_nodes *saved, MPI_Comm comm, entry **out, int64_t *count)
{
    int size, depth = acc->depth;
    MPI_Comm_size(comm, &size);
    mk_err err = MK_OK;
    int *depths = mk_malloc((size_t)size * sizeof(int), "node counts", &err);
    int *counts = mk_malloc((size_t)size * sizeof(int), "node counts", &err);
    int *displs = mk_malloc((size_t)size * sizeof(int), "node counts", &err);
    if (err) MPI_Abort(comm, mk_exit_status(err)); /* the other ranks could not be released */
    MPI_Gather(&depth, 1, MPI_INT, depths, 1, MPI_INT, 0, comm);
    int total = 0;
    for (int r = 0; r < size; r++) {
        counts[r] = 2 * depths[r];
        displs[r] = 2 * total;
        total += depths[r];
    }
    int64_t *meta = mk_malloc((size_t)(2 * total + 1) * sizeof(int64_t), "node list", &err);
    int64_t nsaved = saved ? saved->count : 0;
    entry *e = mk_malloc((size_t)(total + nsaved + 1) * sizeof(entry), "node list", &err);
    if (err) MPI_Abort(comm, mk_exit_status(err));
    int64_t mine[2 * MK_MAX_DEPTH];
    for (int i = 0; i < depth; i++) {
        mine[2 * i] = acc->stack[i].level;
        mine[2 * i + 1] = acc->stack[i].start;
    }
    MPI_Gatherv(mine, 2 * depth, MPI_INT64_T, meta, counts, displs, MPI_INT64_T, 0, comm);
    int64_t n = 0;
    for (int64_t i = 0; i < nsaved; i++) e[n++] = (entry){saved->level[i], saved->start[i], -1, (int)i};
    for (int r = 0; r < size; r++)
        for (int i = 0; i < depths[r]; i++)
            e[n++] = (entry){meta[displs[r] + 2 * i], meta[displs[r] + 2 * i + 1], r, i};
    qsort(e, (size_t)n, sizeof *e, by_start);
    free(depths), free(counts), free(displs), free(meta);
    *out = e;
    *count = n;
    return MK_OK;
}

mk_err mk_accum_gather(const mk_accum *acc, const mk_nodes *saved, MPI_Comm comm, mk_accum **merged)
{
    int rank;
    MPI_Comm_rank(comm, &rank);
    *merged = NULL;
    if (rank != 0) {
        send_nodes(acc, comm);
        return MK_OK;
    }
    entry *e;
    int64_t n;
    MK_TRY(list_entries(acc, saved, comm, &e, &n));
    mk_err err = mk_accum_create(acc->len, merged);
    double *buf = err ? NULL : mk_malloc((size_t)acc->len * sizeof(double), "a reduction buffer", &err);
    if (err) MPI_Abort(comm, mk_exit_status(err)); /* the senders could not be drained */
    for (int64_t i = 0; i < n; i++) { /* keeps receiving after a failure: no sender is left blocked */
        const double *sum = buf;
        if (e[i].owner < 0)
            sum = saved->sums + (int64_t)e[i].index * acc->len;
        else if (e[i].owner == 0)
            sum = acc->stack[e[i].index].sum;
        else
            MPI_Recv(buf, (int)acc->len, MPI_DOUBLE, e[i].owner, 1, comm, MPI_STATUS_IGNORE);
        if (!err) err = mk_accum_push(*merged, e[i].level, e[i].start, sum);
    }
    free(buf);
    free(e);
    if (err) {
        mk_accum_free(*merged);
        *merged = NULL;
    }
    return err;
}
