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

#include "mpicka/error.h"

typedef struct {
    hid_t fid;
    const char *path;
    mk_err err;  /* the first failure, naming path and what was written */
} mk_h5w;

/* Start the file that mk_h5w_finish will write to path. */
mk_err mk_h5w_create(mk_h5w *h, const char *path);
/* Close it and write it to path, flushed to disk (fsync); the first error
 * of the sequence, or of writing. On failure path is removed. */
mk_err mk_h5w_finish(mk_h5w *h);

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
