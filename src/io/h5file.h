/* What the io module's files share to open inputs: model inspection
 * (model.c), the packed description (model_pack.c) and the source
 * (source.c) each open files or copy names. Internal to the module. */
#ifndef MPICKA_H5FILE_H
#define MPICKA_H5FILE_H

#include <hdf5.h>

#include "mpicka/error.h"
#include "mpicka/model.h"

/* HDF5 prints its own error stack by default; ours name the file and dataset. */
void mk__quiet_hdf5(void);

/* A malloc'd copy of s (MK_ENOMEM in *err when none). */
char *mk__dupstr(const char *s, mk_err *err);

/* Opens an input read-only with access list fapl (H5P_DEFAULT, or the
 * source's), after checking that it is a readable regular HDF5 file: a
 * pipe would block HDF5's first read forever. */
mk_err mk__open_file(const char *file, hid_t fapl, hid_t *fid);

/* A file named by a virtual dataset or external storage (or link), as found
 * from the file naming it: absolute, relative to the working folder, or to
 * its folder. */
void mk__resolve_from(const char *from, const char *name, char *out, size_t len);

/* What a layer's data is stored in (storage.c): every row stored (chunks
 * written, contiguous storage allocated, external files long enough, virtual
 * sources there and covering it, without a cycle), every file it comes from
 * a regular file. MK_EINPUT naming file, dataset and rows. */
mk_err mk__check_storage(hid_t dset, const char *file, const char *path);

/* Link access that refuses an external link to something other than a
 * regular file before HDF5 opens it (a pipe would block it forever): pass
 * the list returned (a dataset access list, also good for links; close it)
 * to H5Oget_info_by_name2, H5Lexists or H5Dopen2; when one fails and why[0]
 * is set, mk__guard_failed is the error. */
typedef struct {
    char why[9000];
} mk__link_guard;
hid_t mk__guard_links(mk__link_guard *g);
mk_err mk__guard_failed(const mk__link_guard *g, const char *file, const char *path);

/* The shards of a model (shards.c): each entry of cfg a file, or a glob
 * expanded in natural order. Refuses a file given twice (any spelling: the
 * same device and inode) and a -K-of-W shard set that is incomplete,
 * numbered twice or mixed; MK_EINPUT naming the input. */
mk_err mk__resolve_files(const mk_model_cfg *cfg, mk_model *model);

/* qsort's comparison of strings (char *) in natural order (mk_natural_cmp). */
int mk__cmp_natural(const void *a, const void *b);

#endif
