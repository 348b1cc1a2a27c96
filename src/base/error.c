#include "mpicka/error.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MK_MSG_MAX 2048

/* Per thread: the reader thread reports its own failures. */
static _Thread_local char msgbuf[MK_MSG_MAX];

mk_err mk_vfail(mk_err code, const char *fmt, va_list ap)
{
    vsnprintf(msgbuf, sizeof msgbuf, fmt, ap);
    return code;
}

mk_err mk_fail(mk_err code, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    mk_vfail(code, fmt, ap);
    va_end(ap);
    return code;
}

const char *mk_errmsg(void) { return msgbuf; }

void mk_set_errmsg(const char *msg)
{
    snprintf(msgbuf, sizeof msgbuf, "%s", msg);
}

const char *mk_errname(mk_err code)
{
    switch (code) {
#define MK_X_NAME(name, status, text) case name: return text;
        MK_ERRORS(MK_X_NAME)
#undef MK_X_NAME
    }
    return "unknown error";
}

int mk_exit_status(mk_err code)
{
    switch (code) {
#define MK_X_STATUS(name, status, text) case name: return status;
        MK_ERRORS(MK_X_STATUS)
#undef MK_X_STATUS
    }
    return 1;
}

void *mk_malloc(size_t bytes, const char *what, mk_err *err)
{
    void *p = malloc(bytes ? bytes : 1);
    if (!p) *err = mk_fail(MK_ENOMEM, "cannot allocate %zu bytes for %s", bytes, what);
    return p;
}

void *mk_calloc(size_t count, size_t size, const char *what, mk_err *err)
{
    void *p = calloc(count ? count : 1, size ? size : 1);
    if (!p)
        *err = mk_fail(MK_ENOMEM, "cannot allocate %zu x %zu bytes for %s", count, size, what);
    return p;
}
