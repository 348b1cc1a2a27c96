/* One error type and one way to report errors.
 *
 * Every fallible function returns mk_err. On failure it calls mk_fail(), which
 * records a user-facing message (naming the file, key or dataset at fault) in a
 * per-process buffer and returns the code, so call sites read
 *     if (bad) return mk_fail(MK_EINPUT, "%s: dataset '%s' is not numeric", f, d);
 * Callers propagate with MK_TRY, or MK_GOTO when there is cleanup to unwind.
 * The message is read with mk_errmsg(); the driver makes the verdict collective. */
#ifndef MPICKA_ERROR_H
#define MPICKA_ERROR_H

#include <stdarg.h>
#include <stddef.h>

/* X(name, exit status, short description) */
#define MK_ERRORS(X)                                                         \
    X(MK_OK, 0, "success")                                                   \
    X(MK_EUSAGE, 2, "usage error")                                           \
    X(MK_ECONFIG, 2, "configuration error")                                  \
    X(MK_EINPUT, 3, "input error")                                           \
    X(MK_EDATA, 3, "data error")                                             \
    X(MK_EIO, 4, "I/O error")                                                \
    X(MK_ENOMEM, 5, "out of memory")                                         \
    X(MK_EMPI, 6, "MPI error")                                               \
    X(MK_EINTERNAL, 7, "internal error")                                    \
    X(MK_ESTOPPED, 75, "stopped")

typedef enum {
#define MK_X_ENUM(name, status, text) name,
    MK_ERRORS(MK_X_ENUM)
#undef MK_X_ENUM
} mk_err;

/* Record a message for code (printf-style) and return code. */
mk_err mk_fail(mk_err code, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
mk_err mk_vfail(mk_err code, const char *fmt, va_list ap);
/* The last recorded message ("" if none). */
const char *mk_errmsg(void);
/* Replace the recorded message (used when a verdict arrives from another rank). */
void mk_set_errmsg(const char *msg);
const char *mk_errname(mk_err code);
/* Process exit status for code: 0 for MK_OK, documented in docs/running.md, "Exit status". */
int mk_exit_status(mk_err code);

/* Allocation that reports MK_ENOMEM with what it was for. */
void *mk_malloc(size_t bytes, const char *what, mk_err *err);
void *mk_calloc(size_t count, size_t size, const char *what, mk_err *err);

#define MK_TRY(expr)                                                         \
    do {                                                                     \
        mk_err mk_try_err_ = (expr);                                         \
        if (mk_try_err_ != MK_OK) return mk_try_err_;                        \
    } while (0)

/* Needs a local `mk_err err` and a label to unwind to. */
#define MK_GOTO(expr, label)                                                 \
    do {                                                                     \
        err = (expr);                                                        \
        if (err != MK_OK) goto label;                                        \
    } while (0)

#endif
