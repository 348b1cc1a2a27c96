/* The direct read path: a contiguous layer stored as it is read, read with
 * positional reads of its bytes (preads.h) instead of through HDF5. */
#include "readpath.h"

#include <string.h>
#include <sys/types.h>

/* Where the values of a layer start in its file, when reading them there
 * with pread gives exactly what H5Dread would: contiguous storage in the
 * shard's own file (not behind an external link, not in external storage,
 * not virtual), allocated, and stored in the
 * memory type (no conversion). -1 otherwise. Reading a shuffled batch's rows
 * this way costs one read system call per run of rows; through HDF5 the
 * selection of m single rows costs as much again (docs/performance.md). */
int64_t mk__direct_offset(hid_t dset, hid_t mem, const mk_layer *layer, const char *file)
{
    int64_t offset = -1;
    char name[4096];
    ssize_t len = H5Fget_name(dset, name, sizeof name);
    hid_t dcpl = H5Dget_create_plist(dset), type = H5Dget_type(dset);
    if (len > 0 && (size_t)len < sizeof name && !strcmp(name, file) && dcpl >= 0 && type >= 0 &&
        H5Pget_layout(dcpl) == H5D_CONTIGUOUS && H5Pget_external_count(dcpl) == 0 && H5Tequal(type, mem) > 0) {
        haddr_t addr = H5Dget_offset(dset);
        hsize_t stored = H5Dget_storage_size(dset);
        size_t size = H5Tget_size(type);
        int64_t bytes;
        if (addr != HADDR_UNDEF && addr <= (haddr_t)INT64_MAX && !__builtin_mul_overflow(layer->n, layer->p, &bytes) &&
            !__builtin_mul_overflow(bytes, (int64_t)size, &bytes) && stored == (hsize_t)bytes &&
            (haddr_t)bytes <= (haddr_t)INT64_MAX - addr)
            offset = (int64_t)addr;
    }
    if (type >= 0) H5Tclose(type);
    if (dcpl >= 0) H5Pclose(dcpl);
    return offset;
}

/* Reads rows[0..k) (of a shard whose first example is base) of a layer
 * whose values start at `offset` in fd, `row` bytes each: one read per run
 * of consecutive rows, all submitted together. Returns 0, or -1 (errno set;
 * EIO for a short file). */
int mk__direct_read(mk_preads *q, int fd, int64_t offset, const int64_t *rows, int64_t k, int64_t base,
                       size_t row, char *buf)
{
    for (int64_t i = 0; i < k;) {
        int64_t j = i + 1;
        while (j < k && rows[j] == rows[j - 1] + 1) j++;
        if (mk_preads_add(q, fd, buf + (size_t)i * row, (size_t)(j - i) * row,
                          (off_t)(offset + (rows[i] - base) * (int64_t)row)) < 0)
            return -1;
        i = j;
    }
    return mk_preads_wait(q);
}
