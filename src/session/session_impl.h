/* Private to the session files (session.c, state.c): a library session's
 * state. Internal names carry the prefix mk__. */
#ifndef MPICKA_SESSION_IMPL_H
#define MPICKA_SESSION_IMPL_H

#include <stdint.h>

#include "mpicka/accum.h"
#include "mpicka/batch.h"
#include "mpicka/config.h"
#include "mpicka/finish.h"
#include "mpicka/lineup.h"
#include "mpicka/plan.h"
#include "mpicka/progress.h"
#include "mpicka/session.h"

/* Where a session is: each function checks it is called in its stage. */
typedef enum { ST_DECLARING, ST_STARTED, ST_FINISHED } mk__stage;

struct mk_session {
    mk__stage stage;
    mk_config cfg;
    mk_lineup lu;         /* the declared models; model->file is its name */
    int **dtypes;         /* per model, per layer: MK_DTYPE_* */
    mk_plan plan;
    int64_t groups;
    int threads, rank, nranks;
    int force;            /* mk_session_set_force: replace a result of another configuration */
    double *scale, *mu0;  /* the probe's: per flat layer; per feature (exact) */
    int probed;           /* scale and mu0 hold the probe (fed batch 0, or set_probe) */
    char *fingerprint;    /* config, models and n: what states must share (probe's scales added on export) */
    mk_batch_mem core;
    int64_t last_fed;     /* -1: none yet */
    int64_t fed;          /* batches fed here */
    unsigned char *have;  /* per batch: 1 when fed here or merged */
    mk_nodes *merged;     /* the partial sums merged in, one mk_nodes per merge */
    int nmerged;
    /* feeding: the current batch's rows, a widened float16 layer, the centred block */
    int64_t *rows;
    float *widened;
    void *data;
    double *mean;
    mk_progress progress;
    int progress_on;
    double t0;
    mk_matrices mx;
    double *matched;      /* cka_matched, K by N by N, or NULL */
    int64_t matched_k;
};

/* state.c: the fingerprint of config + models + n (at start), and the
 * probe and partial sums as bytes, checked as untrusted on the way in. */
mk_err mk__fingerprint(mk_session *s);
mk_err mk__probe_bytes(const mk_session *s, void **buf, int64_t *len);
mk_err mk__take_probe(mk_session *s, const void *buf, int64_t len);
mk_err mk__state_bytes(const mk_session *s, void **buf, int64_t *len);
mk_err mk__take_state(mk_session *s, const void *buf, int64_t len);
/* Every node (fed here and merged), pushed in the tree's order into a new accumulator. */
mk_err mk__all_nodes(const mk_session *s, mk_accum **out);

#endif
