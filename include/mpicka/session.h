/* mpicka as a library: a session computes what `mpicka run` computes, from
 * minibatches the caller hands over instead of HDF5 files (docs/library.md).
 *
 * The same core as `run` (src/session/): each batch's blocks are converted,
 * scaled and centred as the reader does, the Grams, pairs and per-batch sums
 * are the same, the sums go into the same fixed tree on the batch index, and
 * finish writes the same cka.h5, cka.csv and heatmap. So feeding the batches
 * of a file, over any number of sessions merged in any order, gives the bits
 * of `mpicka run` on that file with the same config, on any number of ranks.
 *
 * Every function returns mk_err (MK_OK = 0; the codes of mpicka/error.h); on
 * failure mk_errmsg() holds the message, naming the model, layer and batch
 * where one is at fault (per process, not per session). No function calls
 * MPI: processes reduce by export + merge of bytes they send each other.
 * A session is used by one thread at a time. Sizes and indices are int64_t.
 *
 * The flow:
 *     open -> add_model/add_layer ... -> start -> [set_probe] -> feed ...
 *          -> (export | merge ...) -> finish -> matrix ... -> close
 * Data a caller passes is never kept after the call returns. */
#ifndef MPICKA_SESSION_H
#define MPICKA_SESSION_H

#include <stdint.h>

#include "mpicka/error.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct mk_session mk_session;

/* The types a layer's values may come in (little-endian IEEE, as numpy's
 * float16, float32, float64). */
enum { MK_DTYPE_F16 = 1, MK_DTYPE_F32 = 2, MK_DTYPE_F64 = 3 };

/* config_text: YAML with the keys of a run's config (estimator, kernel,
 * batch_size, precision, jackknife, permutations, seed, output, plot,
 * threads, progress_seconds, measures...) but no inputs (no x, y or models:
 * the models are declared below). sets: NULL-terminated "key=value"
 * overrides as `run --set` takes them, or NULL. Keys that only make sense
 * for files (epochs > 1, shuffle, checkpoint, ids, layer_order, x, y,
 * models) are refused with a message saying to export instead. output may
 * be absent: then finish writes nothing and only keeps the matrices.
 * config_text may be NULL or "" (every default). On failure *s is NULL. */
mk_err mk_session_open(const char *config_text, const char *const *sets, mk_session **s);

/* Declare the models and their layers, in the order they will be fed (the
 * flat order: model after model, layer after layer). name: unique, as in
 * a `models:` list. dims: the feature dimensions of one example (without
 * the example axis), ndims >= 0 (0: one feature), every one >= 1; dtype:
 * MK_DTYPE_*. Two models: x against y; one model: x against itself; three
 * or more: as a `models:` list (every layer against every other, and
 * /cka_matched for the layer names every model has). Every model needs a
 * layer before start. *model gets the model's index (0, 1, ...). */
mk_err mk_session_add_model(mk_session *s, const char *name, int *model);
mk_err mk_session_add_layer(mk_session *s, int model, const char *name, int ndims, const int64_t *dims, int dtype);

/* As `run --force`: let this session replace a result of another
 * configuration in its output folder. Without it, start and finish refuse
 * one (MK_ECONFIG naming the folder and the first difference); a result
 * of the same configuration is replaced either way. Any stage. */
mk_err mk_session_set_force(mk_session *s, int force);

/* Fix the plan: n examples in all; batch g holds examples
 * [g*m, min((g+1)*m, n)) with m = batch_size, as a file run without shuffle
 * (the same tail rule: a last batch smaller than the minimum is left out,
 * and the exact estimator takes every example). rank/nranks: this process
 * among those feeding (only rank 0 shows progress; nothing else depends on
 * them). After this, no more declarations. */
mk_err mk_session_start(mk_session *s, int64_t n, int rank, int nranks);
int64_t mk_session_batches(const mk_session *s);              /* after start; else -1 */
int64_t mk_session_batch_rows(const mk_session *s, int64_t g); /* examples in batch g; -1 outside the plan */

/* Added to the agreed API: the batches [*lo, *hi) that process rank of
 * nranks should feed, contiguous, as the file run's ranks share them. Any
 * split gives the same bits, but a session holds one partial sum (a vector
 * of the per-batch sums' length) per gap in the batches it was fed:
 * contiguous ranges keep that to O(log batches), every R-th batch to
 * batches/R of them. */
mk_err mk_session_batch_range(const mk_session *s, int rank, int nranks, int64_t *lo, int64_t *hi);

/* Feed batch g: layers[f] for every flat layer f, each rows by p values of
 * the declared dtype (p the product of its dims), row-major, C-contiguous.
 * rows must be mk_session_batch_rows(g). Batches fed to one session come in
 * ascending g, each once. The scales and the exact estimator's shift come
 * from batch 0 (as in a file run): the process that feeds batch 0 feeds it
 * first; every other process calls mk_session_set_probe first (else
 * MK_EUSAGE). NaN or Inf in a layer is MK_EDATA naming the model, layer,
 * batch and example. That the memory holds the declared shape and type is
 * the caller's promise: the library cannot see it. */
mk_err mk_session_feed(mk_session *s, int64_t g, const void *const *layers, int64_t rows);

/* After batch 0 was fed here: the probe's result (each layer's scale and the
 * exact estimator's shift) as bytes, malloc'd; free with
 * mk_session_free_bytes. Another process's session of the same config and
 * models takes them with set_probe before its first feed; they are checked
 * as untrusted (a fingerprint of config and models, lengths, finite values). */
mk_err mk_session_probe(mk_session *s, void **buf, int64_t *len);
mk_err mk_session_set_probe(mk_session *s, const void *buf, int64_t len);

/* The partial sums of this session (what it was fed, and merged), as bytes
 * for another process to merge (malloc'd; free with mk_session_free_bytes);
 * and merge such bytes into the session that will finish. Merged states
 * are checked as untrusted input: the same config, models, n and probe (a
 * fingerprint in the bytes), sane lengths and counts, no batch twice (nor
 * one this session holds). They are combined in the fixed tree order of the
 * file run whatever order merge is called in, so the bits are those of one
 * process. A failed merge leaves the session as it was. */
mk_err mk_session_export(mk_session *s, void **buf, int64_t *len);
mk_err mk_session_merge(mk_session *s, const void *buf, int64_t len);

/* Reduce (every batch of the plan must be in, else MK_EUSAGE naming the
 * first missing batch), compute CKA, stderr, p-values and the measures, and
 * write cka.h5, cka.csv and the heatmap to the config's output folder
 * exactly as `mpicka run` does (atomically, the same files; nothing is
 * written on failure), then keep the matrices. Once per session. */
mk_err mk_session_finish(mk_session *s);

/* After finish: a matrix by its cka.h5 dataset name ("cka", "cka_stderr",
 * "cka_pvalue", "hsic_xy", "hsic_xx", "hsic_yy", "cka_matched",
 * "measures/NAME"): *data row-major, rows by cols, valid until close.
 * hsic_xx and hsic_yy are columns (rows by 1). MK_EUSAGE naming the matrix
 * when this run has none of that name. */
mk_err mk_session_matrix(const mk_session *s, const char *name, const double **data, int64_t *rows, int64_t *cols);

void mk_session_free_bytes(void *buf);
void mk_session_close(mk_session *s); /* NULL is fine */

#ifdef __cplusplus
}
#endif

#endif
