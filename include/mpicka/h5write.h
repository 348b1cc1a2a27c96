/* Private to the writers of HDF5 files (output, checkpoint): a sequence of
 * HDF5 calls that keeps the first failure, so that the writers read straight
 * and every status is checked.
 *
 * The file is built in memory (HDF5's core driver) and its image written
 * with plain POSIX calls: HDF5 1.10 leaves a file whose close failed (a full
 * disk) in its tables and crashes at exit, so HDF5 never touches the disk
 * here, and a full disk is one clean error. */
#ifndef MPICKA_H5WRITE_H
#define MPICKA_H5WRITE_H

#include <hdf5.h>
#include <stddef.h>
#include <stdint.h>

#include "mpicka/error.h"

typedef struct {
    hid_t fid;
    const char *path;
    mk_err err;          /* the first failure, naming path and what was written */
    const char *seal;    /* NULL, or the magic of a sealed file (below) */
} mk_h5w;

/* Start the file that mk_h5w_finish will write to path. With seal (a magic
 * word of at most 31 characters), the file starts with a 512-byte user
 * block, which HDF5 skips, holding the magic, the file's length and an
 * FNV-1a hash of every byte after the block: mk_h5w_open_sealed checks them
 * before HDF5 parses a byte, since HDF5 crashes or hangs on some damaged
 * files. */
mk_err mk_h5w_create(mk_h5w *h, const char *path, const char *seal);

/* Open a sealed file read-only, from the very bytes that were checked.
 * MK_EINPUT "what" when it is not one or does not match its seal. */
mk_err mk_h5w_open_sealed(const char *path, const char *seal, hid_t *fid, const char **what);
/* Close it and write it to path, flushed to disk (fsync); the first error
 * of the sequence, or of writing. On failure path is removed. */
mk_err mk_h5w_finish(mk_h5w *h);

/* FNV-1a, the seal's hash, over n bytes from state h (MK_H5W_FNV_START at
 * first): chained over pieces it gives the hash of their concatenation. */
#define MK_H5W_FNV_START 0xcbf29ce484222325ULL
uint64_t mk_h5w_fnv(uint64_t h, const void *b, size_t n);

/* Records a failed HDF5 status (negative) as h's first error, naming what
 * was written; later calls keep the first. */
void mk_h5w_check(mk_h5w *h, herr_t status, const char *what);

/* A dataset `name` of file type ftype, written from data of memory type mtype. */
void mk_h5w_dataset(mk_h5w *h, const char *name, hid_t ftype, hid_t mtype, int rank, const hsize_t *dims,
                    const void *data);

/* A scalar attribute of the root group. */
void mk_h5w_attr(mk_h5w *h, const char *name, hid_t ftype, hid_t mtype, const void *value);
void mk_h5w_attr_str(mk_h5w *h, const char *name, const char *value);

/* Variable-length UTF-8 strings (h5py reads them with .asstr()); close it. */
hid_t mk_h5w_utf8_type(void);

#endif
