/* Private to the writers of HDF5 files (output, checkpoint): a sequence of
 * HDF5 calls that keeps the first failure, so that the writers read straight
 * and every status is checked. */
#ifndef MPICKA_H5WRITE_H
#define MPICKA_H5WRITE_H

#include <hdf5.h>

#include "mpicka/error.h"

typedef struct {
    hid_t fid;
    const char *path;
    mk_err err;  /* the first failure, naming path and what was written */
} mk_h5w;

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
