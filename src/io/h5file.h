/* What the io module's files share to open inputs: model inspection
 * (model.c), the packed description (model_pack.c) and the source
 * (source.c) each open files or copy names. Internal to the module. */
#ifndef MPICKA_H5FILE_H
#define MPICKA_H5FILE_H

#include <hdf5.h>

#include "mpicka/error.h"

/* HDF5 prints its own error stack by default; ours name the file and dataset. */
void mk__quiet_hdf5(void);

/* A malloc'd copy of s (MK_ENOMEM in *err when none). */
char *mk__dupstr(const char *s, mk_err *err);

/* Opens an input read-only with access list fapl (H5P_DEFAULT, or the
 * source's), after checking that it is a readable regular HDF5 file: a
 * pipe would block HDF5's first read forever. */
mk_err mk__open_file(const char *file, hid_t fapl, hid_t *fid);

#endif
