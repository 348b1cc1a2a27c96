/* The ways the source reads a layer's rows. Internal to the source module. */
#ifndef MPICKA_READPATH_H
#define MPICKA_READPATH_H

#include <hdf5.h>
#include <stddef.h>
#include <stdint.h>

#include "mpicka/model.h"
#include "preads.h"

/* read_hdf5.c */
herr_t mk__h5_read_rows(hid_t dset, hid_t space, hid_t type, const int64_t *rows, int64_t k, int64_t base,
                        int64_t per_row, void *buf);

/* read_direct.c */
int64_t mk__direct_offset(hid_t dset, hid_t mem, const mk_layer *layer, const char *file);
int mk__direct_read(mk_preads *q, int fd, int64_t offset, const int64_t *rows, int64_t k, int64_t base, size_t row,
                    char *buf);

#endif
