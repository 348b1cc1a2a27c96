/* Opening a file mpicka reads as untrusted input: only a regular file.
 *
 * A FIFO opened for reading blocks until a writer comes (forever), a folder
 * or a device reads as nonsense sizes; so every path read (the config, a
 * cka.h5, a checkpoint, show's and plot's inputs) is checked first, without
 * blocking, and refused with a message naming it. */
#ifndef MPICKA_FILE_H
#define MPICKA_FILE_H

#include <stddef.h>
#include <stdint.h>

#include "mpicka/error.h"

/* Opens path read-only (close-on-exec, blocking again once open) into *fd.
 * Fails with code and "cannot read WHAT 'PATH': ..." when it cannot be
 * opened or is anything but a regular file (a FIFO, a folder, a socket, a
 * device), naming what it is; *fd is then -1. */
mk_err mk_open_regular(const char *path, const char *what, mk_err code, int *fd);

/* len bytes of fd at offset off into buf, however many reads it takes
 * (a signal, a short read): 0 when all were read, 1 when the file ends
 * first, -1 on an error (errno says which). */
int mk_pread_full(int fd, void *buf, size_t len, int64_t off);

/* The same check for a path that a library opens by name (HDF5): opens and
 * closes it. */
mk_err mk_check_regular(const char *path, const char *what, mk_err code);

/* For a message about a path that cannot be opened: " (relative to the
 * working folder '/where/mpicka/runs')" when path is relative, "" when it
 * is absolute. Relative paths (in a config, on the command line) are
 * resolved against the folder mpicka is started in, not the config's. */
const char *mk_path_where(const char *path, char *buf, size_t size);

#endif
