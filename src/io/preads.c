#include "preads.h"

#include "mpicka/file.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#ifdef MK_HAVE_LIBURING
#include <liburing.h>
#endif

/* All len bytes, retrying what a signal or a short read left; a file that
 * ends first is EIO. */
static int pread_all(int fd, char *buf, size_t len, off_t off)
{
    int r = mk_pread_full(fd, buf, len, (int64_t)off);
    if (r > 0) errno = EIO;
    return r ? -1 : 0;
}

#ifdef MK_HAVE_LIBURING

int mk__preads_built_with_uring(void) { return 1; }

/* Reads in flight at most: a batch of 512 scattered rows in one submission. */
#define DEPTH 512

typedef struct {
    int fd;
    char *buf;
    size_t len;
    off_t off;
} request;

struct mk__preads {
    struct io_uring ring;
    request req[DEPTH];
    unsigned queued;
    int broken;
};

mk__preads *mk__preads_open(void)
{
    const char *env = getenv("MPICKA_IO_URING");
    if (env && strcmp(env, "0") == 0) return NULL;
    mk__preads *q = calloc(1, sizeof *q);
    if (!q) return NULL;
    if (io_uring_queue_init(DEPTH, &q->ring, 0) < 0) { /* no io_uring here (old kernel, seccomp, sysctl) */
        free(q);
        return NULL;
    }
    return q;
}

void mk__preads_close(mk__preads *q)
{
    if (!q) return;
    io_uring_queue_exit(&q->ring);
    free(q);
}

/* The outcome of one completed request; what io_uring left undone (a short
 * read, a retry it asks for) is finished with pread. */
static int settle(const request *r, int res)
{
    if (res == (int)r->len) return 0;
    if (res == -EAGAIN || res == -EINTR) return pread_all(r->fd, r->buf, r->len, r->off);
    if (res < 0) {
        errno = -res;
        return -1;
    }
    if (res == 0) {
        errno = EIO;
        return -1;
    }
    return pread_all(r->fd, r->buf + res, r->len - (size_t)res, r->off + res);
}

/* After a failure of the ring itself, reads go by pread: requests left in it
 * must never be submitted with buffers their callers have reused. */
static int broken(mk__preads *q, int why)
{
    q->broken = 1;
    errno = why;
    return -1;
}

/* Submits the queued reads and waits for all of them; usually one system
 * call, since reads from the page cache complete during the submission. */
static int drain(mk__preads *q)
{
    unsigned n = q->queued, sent = 0, seen = 0;
    int failed = 0;
    q->queued = 0;
    while (seen < n) {
        if (sent < n) {
            int s = io_uring_submit(&q->ring);
            if (s > 0) sent += (unsigned)s;
            else if (s != -EINTR && sent == seen) return broken(q, s < 0 ? -s : EIO);
        }
        if (seen == sent) continue;
        struct io_uring_cqe *cqe;
        int w = io_uring_wait_cqe(&q->ring, &cqe);
        if (w == -EINTR) continue;
        if (w < 0) return broken(q, -w);
        if (cqe->user_data >= n) return broken(q, EIO); /* not ours */
        if (settle(&q->req[cqe->user_data], cqe->res) < 0 && !failed) failed = errno;
        io_uring_cqe_seen(&q->ring, cqe);
        seen++;
    }
    if (failed) errno = failed;
    return failed ? -1 : 0;
}

int mk__preads_add(mk__preads *q, int fd, void *buf, size_t len, off_t off)
{
    if (!q || q->broken || len > (size_t)1 << 30) { /* io_uring's result is an int: big runs by pread */
        if (pread_all(fd, buf, len, off) == 0) return 0;
        int why = errno;
        if (q && !q->broken) drain(q); /* nothing left queued after a failure */
        errno = why;
        return -1;
    }
    if (q->queued == DEPTH && drain(q) < 0) return -1;
    struct io_uring_sqe *sqe = io_uring_get_sqe(&q->ring);
    if (!sqe) return broken(q, EIO); /* the ring holds no more than DEPTH */
    q->req[q->queued] = (request){fd, buf, len, off};
    io_uring_prep_read(sqe, fd, buf, (unsigned)len, (__u64)off);
    io_uring_sqe_set_data64(sqe, q->queued);
    q->queued++;
    return 0;
}

int mk__preads_wait(mk__preads *q) { return q && !q->broken ? drain(q) : 0; }

#else /* built without liburing: no queue, every read at once */

int mk__preads_built_with_uring(void) { return 0; }

mk__preads *mk__preads_open(void) { return NULL; }

void mk__preads_close(mk__preads *q) {}

int mk__preads_add(mk__preads *q, int fd, void *buf, size_t len, off_t off) { return pread_all(fd, buf, len, off); }

int mk__preads_wait(mk__preads *q) { return 0; }

#endif
