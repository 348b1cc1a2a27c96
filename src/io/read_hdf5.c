/* The HDF5 read path: rows selected as hyperslabs and read with H5Dread,
 * which converts types and undoes any filter. It reads what the other paths
 * decline, and the sample IDs. */
#include "readpath.h"

#include <stdlib.h>

#include "chunks.h"
#include "mpicka/error.h"

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

mk_err mk__read_failed(const char *file, const char *path, const int64_t *rows, int64_t k, int64_t base)
{
    return mk_fail(MK_EIO, "%s: cannot read examples %lld..%lld of dataset '%s' (damaged file?)", file,
                   (long long)(rows[0] - base), (long long)(rows[k - 1] - base), path);
}

/* A layer as the path reads it: the source's handles, not owned. */
typedef struct {
    hid_t dset, space, mem;
    int64_t p;
    const char *file, *path;
    mk__chunks *index; /* a chunked layer's index, checked before each read; or NULL */
} h5_layer;

static mk_err h5_open(void *shared, const mk__layer_at *at, void **layer)
{
    mk_err err = MK_OK;
    h5_layer *h = mk_malloc(sizeof *h, "a layer reader", &err);
    if (err) return err;
    *h = (h5_layer){at->dset, at->space, at->mem, at->layer->p, at->model->files[at->shard], at->layer->path, NULL};
    err = mk__chunks_index(at->dset, &h->index);
    if (err) free(h);
    else *layer = h;
    return err;
}

static mk_err h5_read(void *layer, const int64_t *rows, int64_t k, int64_t base, void *buf)
{
    const h5_layer *h = layer;
    if (h->index) MK_TRY(mk__chunks_check(h->index, rows, k, base, h->file, h->path));
    if (mk__h5_read_rows(h->dset, h->space, h->mem, rows, k, base, h->p, buf) < 0)
        return mk__read_failed(h->file, h->path, rows, k, base);
    return MK_OK;
}

static void h5_close(void *layer)
{
    if (layer) mk__chunks_close(((h5_layer *)layer)->index);
    free(layer);
}

const mk__readpath mk__read_hdf5 = {
    .open = h5_open,
    .read = h5_read,
    .close = h5_close,
};
