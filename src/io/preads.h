/* Many positional reads at once. A shuffled batch is hundreds of short reads
 * (one per run of consecutive rows); each pread is a system call, which on
 * virtual machines costs microseconds, more than copying a row. Where the
 * kernel has io_uring, the reads of a batch go in one submission (and, from a
 * file system that must wait for the data, run concurrently); elsewhere, in
 * a build without liburing (cmake -DMPICKA_IO_URING=OFF, or none found), or
 * with MPICKA_IO_URING=0 in the environment, they are plain preads. Either
 * way the bytes are the file's. Internal to the source module. */
#ifndef MPICKA_PREADS_H
#define MPICKA_PREADS_H

#include <stddef.h>
#include <sys/types.h>

typedef struct mk__preads mk__preads;

/* Whether this build has io_uring: 0 when liburing was not found or was
 * turned off at configure time. */
int mk__preads_built_with_uring(void);

/* A queue of reads, or NULL where io_uring is unavailable: every function
 * below accepts NULL and then reads at once with pread. */
mk__preads *mk__preads_open(void);
void mk__preads_close(mk__preads *q);

/* Reads len bytes at off of fd into buf, now or by the next mk__preads_wait.
 * buf must stay valid until then. Returns 0, or -1 with errno set (EIO when
 * the file ends before off + len); after -1 the queue holds nothing. */
int mk__preads_add(mk__preads *q, int fd, void *buf, size_t len, off_t off);

/* Every added read complete: 0, or -1 with errno set as by mk__preads_add. */
int mk__preads_wait(mk__preads *q);

#endif
