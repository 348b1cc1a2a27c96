/* The direct read path: a contiguous layer stored as it is read, read with
 * positional reads of its bytes (preads.h) instead of through HDF5. */
#include "readpath.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <unistd.h>

#include "preads.h"

/* What the layers read directly share within a source: one descriptor per
 * shard, and one queue, so that the reads of a batch go to the kernel
 * together (NULL: one pread at a time). */
typedef struct {
    mk__preads *reads;
    int asked;          /* the queue has been asked for (once: the first layer taken) */
    int nfiles;
    int fd[];           /* per shard, -1 until one of its layers is taken */
} direct_shared;

typedef struct {
    direct_shared *shared;
    int fd;
    int64_t offset;     /* where the layer's values start in the file */
    size_t row;         /* bytes of one row */
    const char *file, *path;
} direct_layer;

/* Where the values of a layer start in its file, when reading them there
 * with pread gives exactly what H5Dread would: contiguous storage in the
 * shard's own file (not behind an external link, not in external storage,
 * not virtual), allocated, and stored in the
 * memory type (no conversion). -1 otherwise. Reading a shuffled batch's rows
 * this way costs one read system call per run of rows; through HDF5 the
 * selection of m single rows costs as much again (docs/performance.md). */
static int64_t direct_offset(hid_t dset, hid_t mem, const mk_layer *layer, const char *file)
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
static int read_runs(mk__preads *q, int fd, int64_t offset, const int64_t *rows, int64_t k, int64_t base, size_t row,
                     char *buf)
{
    for (int64_t i = 0; i < k;) {
        int64_t j = i + 1;
        while (j < k && rows[j] == rows[j - 1] + 1) j++;
        if (mk__preads_add(q, fd, buf + (size_t)i * row, (size_t)(j - i) * row,
                          (off_t)(offset + (rows[i] - base) * (int64_t)row)) < 0)
            return -1;
        i = j;
    }
    return mk__preads_wait(q);
}

static mk_err direct_source_open(const mk_model *model, void **shared)
{
    mk_err err = MK_OK;
    direct_shared *s = mk_malloc(sizeof *s + (size_t)model->nfiles * sizeof *s->fd, "file descriptors", &err);
    if (err) return err;
    s->reads = NULL;
    s->asked = 0;
    s->nfiles = model->nfiles;
    for (int f = 0; f < s->nfiles; f++) s->fd[f] = -1;
    *shared = s;
    return MK_OK;
}

static void direct_source_close(void *shared)
{
    direct_shared *s = shared;
    for (int f = 0; f < s->nfiles; f++)
        if (s->fd[f] >= 0) close(s->fd[f]);
    mk__preads_close(s->reads);
    free(s);
}

static mk_err direct_open(void *shared, const mk__layer_at *at, void **layer)
{
    direct_shared *s = shared;
    const char *file = at->model->files[at->shard];
    int64_t offset = direct_offset(at->dset, at->mem, at->layer, file);
    if (offset < 0) return MK_OK;
    if (s->fd[at->shard] < 0 && (s->fd[at->shard] = open(file, O_RDONLY | O_CLOEXEC)) < 0)
        return mk_fail(MK_EINPUT, "cannot open input '%s': %s", file, strerror(errno));
    if (!s->asked) s->reads = mk__preads_open(); /* only for sources with a layer read here: a ring costs memory */
    s->asked = 1;
    mk_err err = MK_OK;
    direct_layer *d = mk_malloc(sizeof *d, "a layer reader", &err);
    if (err) return err;
    *d = (direct_layer){s, s->fd[at->shard], offset, (size_t)at->layer->p * H5Tget_size(at->mem), file,
                        at->layer->path};
    *layer = d;
    return MK_OK;
}

static mk_err direct_read(void *layer, const int64_t *rows, int64_t k, int64_t base, void *buf)
{
    const direct_layer *d = layer;
    if (read_runs(d->shared->reads, d->fd, d->offset, rows, k, base, d->row, buf) < 0)
        return mk__read_failed(d->file, d->path, rows, k, base);
    return MK_OK;
}

static void direct_close(void *layer) { free(layer); }

const mk__readpath mk__read_direct = {
    .source_open = direct_source_open,
    .source_close = direct_source_close,
    .open = direct_open,
    .read = direct_read,
    .close = direct_close,
};
