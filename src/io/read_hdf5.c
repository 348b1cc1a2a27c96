/* The HDF5 read path: rows selected as hyperslabs and read with H5Dread,
 * which converts types. */
#include "readpath.h"

/* One hyperslab per run of consecutive rows, each spanning every feature;
 * rows are the file's indices plus base. */
static herr_t select_rows(hid_t space, const int64_t *rows, int64_t m, int64_t base)
{
    hsize_t start[H5S_MAX_RANK] = {0}, count[H5S_MAX_RANK];
    int rank = H5Sget_simple_extent_ndims(space);
    H5Sget_simple_extent_dims(space, count, NULL);
    H5S_seloper_t op = H5S_SELECT_SET;
    for (int64_t i = 0; i < m;) {
        int64_t j = i + 1;
        while (j < m && rows[j] == rows[j - 1] + 1) j++;
        start[0] = (hsize_t)(rows[i] - base);
        count[0] = (hsize_t)(j - i);
        if (rank > 0 && H5Sselect_hyperslab(space, op, start, NULL, count, NULL) < 0) return -1;
        op = H5S_SELECT_OR;
        i = j;
    }
    return 0;
}

/* Reads rows[0..k) of a dataset of shard f into buf with memory type `type`,
 * `per_row` elements each. */
herr_t mk__h5_read_rows(hid_t dset, hid_t space, hid_t type, const int64_t *rows, int64_t k, int64_t base,
                        int64_t per_row, void *buf)
{
    /* The memory space has the file space's shape with k rows (the same
     * layout as k * per_row values): HDF5 reads a chunked N-D selection into
     * a 1-D space 30 to 60 times slower. */
    hsize_t dims[H5S_MAX_RANK];
    int rank = H5Sget_simple_extent_dims(space, dims, NULL);
    if (rank < 1) {
        rank = 1;
        dims[0] = (hsize_t)(k * per_row);
    } else {
        dims[0] = (hsize_t)k;
    }
    hid_t mem = H5Screate_simple(rank, dims, NULL);
    herr_t status = mem < 0 ? -1 : select_rows(space, rows, k, base);
    if (status >= 0) status = H5Dread(dset, type, mem, space, H5P_DEFAULT, buf);
    if (mem >= 0) H5Sclose(mem);
    return status;
}
