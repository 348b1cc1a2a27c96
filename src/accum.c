#include "mpicka/accum.h"

#include <stdlib.h>
#include <string.h>

/* A node covers batches [start, start + 2^level) of the tree, cut at the last
 * batch; its sum is left child + right child, or the left child alone. */
typedef struct {
    int64_t level, start;
    double *sum;
} node;

#define MK_MAX_DEPTH 64

struct mk_accum {
    int64_t len;
    int depth;                   /* nodes on the stack */
    node stack[MK_MAX_DEPTH + 1];
    int64_t next;                /* the batch expected next, -1 before the first */
};

mk_err mk_accum_create(int64_t len, mk_accum **acc)
{
    mk_err err = MK_OK;
    *acc = mk_calloc(1, sizeof **acc, "an accumulator", &err);
    if (err) return err;
    (*acc)->len = len;
    (*acc)->next = -1;
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
 * sum buffers of the stack slots are reused, so memory stays at 64 vectors. */
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

mk_err mk_accum_add(mk_accum *acc, int64_t g, const double *values)
{
    if (acc->next >= 0 && g != acc->next)
        return mk_fail(MK_EINTERNAL, "batch %lld added after %lld", (long long)g, (long long)acc->next - 1);
    acc->next = g + 1;
    return push(acc, 0, g, values);
}

void mk_accum_total(const mk_accum *acc, double *out)
{
    memset(out, 0, (size_t)acc->len * sizeof(double));
    if (acc->depth == 0) return;
    memcpy(out, acc->stack[acc->depth - 1].sum, (size_t)acc->len * sizeof(double));
    for (int i = acc->depth - 2; i >= 0; i--)
        for (int64_t k = 0; k < acc->len; k++) out[k] = acc->stack[i].sum[k] + out[k];
}

static mk_err send_nodes(const mk_accum *acc, MPI_Comm comm)
{
    int64_t meta[2 * MK_MAX_DEPTH + 1];
    meta[0] = acc->depth;
    for (int i = 0; i < acc->depth; i++) {
        meta[1 + 2 * i] = acc->stack[i].level;
        meta[2 + 2 * i] = acc->stack[i].start;
    }
    MPI_Send(meta, 2 * MK_MAX_DEPTH + 1, MPI_INT64_T, 0, 0, comm);
    for (int i = 0; i < acc->depth; i++)
        MPI_Send(acc->stack[i].sum, (int)acc->len, MPI_DOUBLE, 0, 1, comm);
    return MK_OK;
}

mk_err mk_accum_absorb(mk_accum *acc, const mk_accum *next)
{
    for (int i = 0; i < next->depth; i++)
        MK_TRY(push(acc, next->stack[i].level, next->stack[i].start, next->stack[i].sum));
    return MK_OK;
}

/* Keeps receiving after a failure so that no sender is left blocked. */
static mk_err recv_nodes(mk_accum *acc, int from, MPI_Comm comm, double *buf, mk_err err)
{
    int64_t meta[2 * MK_MAX_DEPTH + 1];
    MPI_Recv(meta, 2 * MK_MAX_DEPTH + 1, MPI_INT64_T, from, 0, comm, MPI_STATUS_IGNORE);
    for (int64_t i = 0; i < meta[0]; i++) {
        MPI_Recv(buf, (int)acc->len, MPI_DOUBLE, from, 1, comm, MPI_STATUS_IGNORE);
        if (!err) err = push(acc, meta[1 + 2 * i], meta[2 + 2 * i], buf);
    }
    return err;
}

mk_err mk_accum_reduce(mk_accum *acc, MPI_Comm comm, double *out)
{
    int rank, size;
    MPI_Comm_rank(comm, &rank);
    MPI_Comm_size(comm, &size);
    if (rank != 0) return send_nodes(acc, comm);
    mk_err err = MK_OK;
    double *buf = mk_malloc((size_t)acc->len * sizeof(double), "a reduction buffer", &err);
    if (err) MPI_Abort(comm, mk_exit_status(err)); /* the senders could not be drained */
    for (int r = 1; r < size; r++) err = recv_nodes(acc, r, comm, buf, err);
    free(buf);
    if (!err) mk_accum_total(acc, out);
    return err;
}
