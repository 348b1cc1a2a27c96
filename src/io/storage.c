/* Where a layer's data is stored, checked at inspection before HDF5 reads
 * any of it. HDF5 reads the fill value, and says nothing, for rows that have
 * no stored data (chunks never written, storage never allocated, external
 * storage or virtual sources that stop short); it blocks forever on a pipe
 * behind a link, and recurses without end on a virtual dataset that is its
 * own source. Every such layer is refused here, naming file, dataset and rows. */
#include "h5file.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* Virtual datasets whose sources are virtual in turn, this deep at most. */
#define MAX_DEPTH 8

void mk__resolve_from(const char *from, const char *name, char *out, size_t len)
{
    const char *slash = strrchr(from, '/');
    if (name[0] == '/' || access(name, F_OK) == 0 || !slash) snprintf(out, len, "%s", name);
    else snprintf(out, len, "%.*s/%s", (int)(slash - from), from, name);
}

/* 1 when path is there and not a regular file (a pipe would block HDF5's
 * first read forever); 0 when it is regular or missing (its reader says so). */
static int odd_file(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0 && !S_ISREG(st.st_mode);
}

/* ---- external links ---- */

/* HDF5 calls this before it opens the file of an external link. */
static herr_t guard_elink(const char *parent, const char *group, const char *child, const char *object,
                          unsigned *flags, hid_t fapl, void *data)
{
    (void)group, (void)flags, (void)fapl;
    mk__link_guard *g = data;
    char path[8400];
    mk__resolve_from(parent, child, path, sizeof path);
    if (!odd_file(path)) return 0;
    snprintf(g->why, sizeof g->why, "the external link to '%s:%s' (in %s) leads to '%s', which is not a regular "
             "file (a folder, device or pipe?)", child, object, parent, path);
    return -1;
}

hid_t mk__guard_links(mk__link_guard *g)
{
    g->why[0] = '\0';
    hid_t dapl = H5Pcreate(H5P_DATASET_ACCESS);
    if (dapl >= 0 && H5Pset_elink_cb(dapl, guard_elink, g) < 0) {
        H5Pclose(dapl);
        return -1;
    }
    return dapl;
}

mk_err mk__guard_failed(const mk__link_guard *g, const char *file, const char *path)
{
    return mk_fail(MK_EINPUT, "%s: dataset '%s': %s", file, path, g->why);
}

/* ---- chunks and contiguous storage ---- */

/* Rows of the first chunk band with a chunk never written (a partly written
 * file): looked up only once the count says that one is missing. */
static int64_t first_unwritten(hid_t dset, int rank, const hsize_t *dims, const hsize_t *chunk)
{
    hsize_t off[H5S_MAX_RANK] = {0};
    for (;;) {
        unsigned mask;
        haddr_t addr = HADDR_UNDEF;
        hsize_t size = 0;
        if (H5Dget_chunk_info_by_coord(dset, off, &mask, &addr, &size) < 0 || addr == HADDR_UNDEF) return (int64_t)off[0];
        int d = rank - 1;
        for (; d >= 0; d--) {
            off[d] += chunk[d];
            if (off[d] < dims[d]) break;
            off[d] = 0;
        }
        if (d < 0) return -1;
    }
}

static mk_err check_chunks(hid_t dset, hid_t dcpl, const char *file, const char *path)
{
    hid_t space = H5Dget_space(dset);
    hsize_t dims[H5S_MAX_RANK], chunk[H5S_MAX_RANK], need = 1, have = 0;
    int rank = space < 0 ? -1 : H5Sget_simple_extent_dims(space, dims, NULL);
    if (space >= 0) H5Sclose(space);
    if (rank < 1 || H5Pget_chunk(dcpl, rank, chunk) != rank) return MK_OK; /* describe() said what is wrong */
    for (int d = 0; d < rank; d++) {
        hsize_t along = chunk[d] ? dims[d] / chunk[d] + (dims[d] % chunk[d] != 0) : 0;
        need = along && need > UINT64_MAX / along ? UINT64_MAX : need * along;
    }
    space = H5Dget_space(dset); /* this HDF5 refuses H5S_ALL for the count */
    herr_t counted = space < 0 ? -1 : H5Dget_num_chunks(dset, space, &have);
    if (space >= 0) H5Sclose(space);
    if (!need || counted < 0 || have >= need) return MK_OK;
    int64_t row = first_unwritten(dset, rank, dims, chunk);
    if (row < 0) return MK_OK;
    hsize_t last = (hsize_t)row + chunk[0] < dims[0] ? (hsize_t)row + chunk[0] - 1 : dims[0] - 1;
    return mk_fail(MK_EINPUT, "%s: dataset '%s' has %llu of its %llu chunks; examples %lld..%llu (at least) were "
                   "never written (a partly written file?): HDF5 would read fill values in their place", file, path,
                   (unsigned long long)have, (unsigned long long)need, (long long)row, (unsigned long long)last);
}

static mk_err check_allocated(hid_t dset, hid_t dcpl, const char *file, const char *path)
{
    H5D_layout_t layout = H5Pget_layout(dcpl);
    if (layout == H5D_CHUNKED) return check_chunks(dset, dcpl, file, path);
    H5D_space_status_t status;
    if (layout != H5D_CONTIGUOUS || H5Pget_external_count(dcpl) > 0 || H5Dget_space_status(dset, &status) < 0 ||
        status != H5D_SPACE_STATUS_NOT_ALLOCATED)
        return MK_OK;
    return mk_fail(MK_EINPUT, "%s: dataset '%s' was never written (it has no stored data): HDF5 would read fill "
                   "values for every example", file, path);
}

/* ---- external storage ---- */

/* The bytes of the layer's data that its external files hold, from the
 * start: where the first one missing (a short or missing file) is. */
static mk_err check_external(hid_t dcpl, int count, const char *file, const char *path, hsize_t row_bytes,
                             hsize_t rows)
{
    hsize_t at = 0, need;
    if (__builtin_mul_overflow(row_bytes, rows, &need)) need = UINT64_MAX;
    for (int i = 0; i < count && at < need; i++) {
        char name[4096], full[8400];
        off_t offset;
        hsize_t size;
        struct stat st;
        if (H5Pget_external(dcpl, (unsigned)i, sizeof name, name, &offset, &size) < 0) break;
        mk__resolve_from(file, name, full, sizeof full);
        if (stat(full, &st) != 0 || access(full, R_OK) != 0)
            return mk_fail(MK_EINPUT, "%s: dataset '%s' stores its data in the external file '%s', which cannot be "
                           "read", file, path, name);
        if (!S_ISREG(st.st_mode))
            return mk_fail(MK_EINPUT, "%s: dataset '%s' stores its data in the external file '%s' (%s), which is not "
                           "a regular file (a folder, device or pipe?)", file, path, name, full);
        hsize_t there = st.st_size > offset ? (hsize_t)(st.st_size - offset) : 0;
        at += there < size ? there : size;
        if (there < size) break;
    }
    if (at >= need) return MK_OK;
    return mk_fail(MK_EINPUT, "%s: dataset '%s' stores its data in external files that hold %llu of its %llu bytes: "
                   "examples %llu..%llu are in no file", file, path, (unsigned long long)at,
                   (unsigned long long)need, (unsigned long long)(at / row_bytes), (unsigned long long)(rows - 1));
}

/* ---- virtual datasets ---- */

/* The virtual datasets being walked, from the layer down: a source that is
 * one of them is a cycle. */
typedef struct {
    unsigned long fileno[MAX_DEPTH + 1];
    haddr_t addr[MAX_DEPTH + 1];
    int depth;
    const char *file, *path; /* the layer, for messages */
} vds_walk;

static mk_err check_virtual(hid_t dset, hid_t dcpl, const char *name, vds_walk *w);

/* The box of whole rows [*lo, *hi] that mapping i fills; 0 when it is not one. */
static int row_box(hid_t dcpl, size_t i, int rank, const hsize_t *dims, hsize_t *lo, hsize_t *hi)
{
    hid_t vspace = H5Pget_virtual_vspace(dcpl, i);
    hsize_t start[H5S_MAX_RANK], end[H5S_MAX_RANK];
    hssize_t points = vspace < 0 ? -1 : H5Sget_select_npoints(vspace);
    int ok = points > 0 && H5Sget_select_bounds(vspace, start, end) >= 0;
    double box = 1.0;
    for (int d = 0; ok && d < rank; d++) {
        box *= (double)(end[d] - start[d] + 1);
        ok = d == 0 ? end[0] < dims[0] : start[d] == 0 && end[d] == dims[d] - 1;
    }
    if (vspace >= 0) H5Sclose(vspace);
    *lo = start[0], *hi = end[0];
    return ok && box == (double)points;
}

/* Mapping i's source dataset: there, inside its extent, and (when virtual) sound in turn. */
static mk_err check_source(hid_t fid, hid_t dcpl, size_t i, const char *from, vds_walk *w, hsize_t lo, hsize_t hi,
                           hsize_t points)
{
    char sfile[4096] = "", sname[4096] = "", full[8400];
    H5Pget_virtual_filename(dcpl, i, sfile, sizeof sfile);
    H5Pget_virtual_dsetname(dcpl, i, sname, sizeof sname);
    int here = !strcmp(sfile, ".");
    mk__resolve_from(from, sfile, full, sizeof full);
    if (strchr(sfile, '%') || strchr(sname, '%'))
        return mk_fail(MK_EINPUT, "%s: dataset '%s' is virtual with a printf-style source '%s:%s', which mpicka cannot "
                       "check covers it; give it sources with plain names", w->file, w->path, sfile, sname);
    if (!here && (access(full, R_OK) != 0))
        return mk_fail(MK_EINPUT, "%s: dataset '%s' is virtual and its source file '%s' cannot be read: HDF5 would "
                       "read fill values in its place", w->file, w->path, sfile);
    if (!here && odd_file(full))
        return mk_fail(MK_EINPUT, "%s: dataset '%s' is virtual and its source file '%s' (%s) is not a regular file "
                       "(a folder, device or pipe?)", w->file, w->path, sfile, full);
    hid_t sfid = fid;
    if (!here) MK_TRY(mk__open_file(full, H5P_DEFAULT, &sfid));
    mk__link_guard g;
    hid_t dapl = mk__guard_links(&g), src = dapl < 0 ? -1 : H5Dopen2(sfid, sname, dapl);
    mk_err err = MK_OK;
    if (src < 0 && g.why[0]) err = mk__guard_failed(&g, full, sname);
    else if (src < 0)
        err = mk_fail(MK_EINPUT, "%s: dataset '%s' is virtual and its source dataset '%s' is not in '%s': HDF5 would "
                      "read fill values for examples %llu..%llu", w->file, w->path, sname, here ? from : sfile,
                      (unsigned long long)lo, (unsigned long long)hi);
    if (!err) {
        hid_t sspace = H5Pget_virtual_srcspace(dcpl, i), space = H5Dget_space(src);
        hsize_t dims[H5S_MAX_RANK], start[H5S_MAX_RANK], end[H5S_MAX_RANK];
        int rank = space < 0 ? -1 : H5Sget_simple_extent_dims(space, dims, NULL);
        int ok = sspace >= 0 && rank >= 1;
        if (ok && H5Sget_select_type(sspace) == H5S_SEL_ALL) { /* the whole source, its extent not stored */
            double all = 1.0;
            for (int d = 0; d < rank; d++) all *= (double)dims[d];
            ok = all == (double)points;
        } else if (ok) {
            ok = rank == H5Sget_simple_extent_ndims(sspace) && H5Sget_select_bounds(sspace, start, end) >= 0;
            for (int d = 0; ok && d < rank; d++) ok = end[d] < dims[d];
        }
        if (!ok)
            err = mk_fail(MK_EINPUT, "%s: dataset '%s' is virtual and its source dataset '%s' in '%s' is smaller than "
                          "the part it maps: HDF5 would read fill values for examples %llu..%llu", w->file, w->path,
                          sname, here ? from : sfile, (unsigned long long)lo, (unsigned long long)hi);
        if (sspace >= 0) H5Sclose(sspace);
        if (space >= 0) H5Sclose(space);
    }
    hid_t scpl = err ? -1 : H5Dget_create_plist(src);
    if (scpl >= 0 && H5Pget_layout(scpl) == H5D_VIRTUAL) err = check_virtual(src, scpl, sname, w);
    if (scpl >= 0) H5Pclose(scpl);
    if (src >= 0) H5Dclose(src);
    if (dapl >= 0) H5Pclose(dapl);
    if (!here) H5Fclose(sfid);
    return err;
}

static int cmp_box(const void *a, const void *b)
{
    const hsize_t *x = a, *y = b;
    return x[0] < y[0] ? -1 : x[0] > y[0];
}

/* The rows [0, n) that no mapping's box covers: the first gap. */
static mk_err check_cover(hsize_t *boxes, size_t count, hsize_t n, const vds_walk *w, const char *name)
{
    qsort(boxes, count, 2 * sizeof *boxes, cmp_box);
    hsize_t next = 0; /* rows [0, next) are covered */
    for (size_t i = 0; i < count && next < n; i++) {
        if (boxes[2 * i] > next) break;
        if (boxes[2 * i + 1] + 1 > next) next = boxes[2 * i + 1] + 1;
    }
    if (next >= n) return MK_OK;
    hsize_t gap_end = n - 1;
    for (size_t i = 0; i < count; i++)
        if (boxes[2 * i] > next && boxes[2 * i] - 1 < gap_end) gap_end = boxes[2 * i] - 1;
    return mk_fail(MK_EINPUT, "%s: dataset '%s' is virtual and %s%s%sno source maps examples %llu..%llu: HDF5 would "
                   "read fill values for them", w->file, w->path, w->depth > 1 ? "its source '" : "",
                   w->depth > 1 ? name : "", w->depth > 1 ? "' has " : "", (unsigned long long)next,
                   (unsigned long long)gap_end);
}

/* A virtual dataset: not one being walked (a cycle), each mapping a box of
 * whole rows from a source that is there, and every row mapped. */
static mk_err check_virtual(hid_t dset, hid_t dcpl, const char *name, vds_walk *w)
{
    char from[4096] = ""; /* the file holding it, which its sources' names are relative to */
    hid_t fid = H5Iget_file_id(dset);
    ssize_t len = fid < 0 ? -1 : H5Fget_name(fid, from, sizeof from);
    if (len <= 0 || (size_t)len >= sizeof from) snprintf(from, sizeof from, "%s", w->file);
    if (fid >= 0) H5Fclose(fid);
    H5O_info_t info;
    if (H5Oget_info2(dset, &info, H5O_INFO_BASIC) < 0) return mk_fail(MK_EINPUT, "%s: cannot inspect dataset '%s'",
                                                                      w->file, w->path);
    for (int k = 0; k < w->depth; k++)
        if (w->fileno[k] == info.fileno && w->addr[k] == info.addr)
            return mk_fail(MK_EINPUT, "%s: dataset '%s' is virtual and takes its data, through its sources, from "
                           "itself ('%s' in %s): a cycle", w->file, w->path, name, from);
    if (w->depth == MAX_DEPTH)
        return mk_fail(MK_EINPUT, "%s: dataset '%s' is virtual through more than %d levels of virtual sources",
                       w->file, w->path, MAX_DEPTH);
    w->fileno[w->depth] = info.fileno, w->addr[w->depth] = info.addr;
    w->depth++;
    hid_t space = H5Dget_space(dset);
    fid = H5Iget_file_id(dset);
    hsize_t dims[H5S_MAX_RANK];
    int rank = space < 0 ? -1 : H5Sget_simple_extent_dims(space, dims, NULL);
    size_t count = 0;
    mk_err err = rank < 1 || H5Pget_virtual_count(dcpl, &count) < 0
                     ? mk_fail(MK_EINPUT, "%s: cannot inspect virtual dataset '%s'", w->file, w->path) : MK_OK;
    hsize_t *boxes = err ? NULL : mk_malloc(2 * (count + 1) * sizeof *boxes, "virtual mappings", &err), per_row = 1;
    for (int d = 1; d < rank; d++) per_row *= dims[d];
    for (size_t i = 0; i < count && !err; i++) {
        if (!row_box(dcpl, i, rank, dims, &boxes[2 * i], &boxes[2 * i + 1]))
            err = mk_fail(MK_EINPUT, "%s: dataset '%s' is virtual with a mapping that is not a block of whole "
                          "examples, which mpicka cannot check covers it; rewrite the layer as a plain dataset",
                          w->file, w->path);
        else
            err = check_source(fid, dcpl, i, from, w, boxes[2 * i], boxes[2 * i + 1],
                               (boxes[2 * i + 1] - boxes[2 * i] + 1) * per_row);
    }
    if (!err) err = check_cover(boxes, count, dims[0], w, name);
    free(boxes);
    if (fid >= 0) H5Fclose(fid);
    if (space >= 0) H5Sclose(space);
    w->depth--;
    return err;
}

/* ---- the layer ---- */

static hsize_t row_bytes(hid_t dset, hsize_t *rows)
{
    hid_t space = H5Dget_space(dset), type = H5Dget_type(dset);
    hsize_t dims[H5S_MAX_RANK], bytes = type < 0 ? 0 : H5Tget_size(type);
    int rank = space < 0 ? -1 : H5Sget_simple_extent_dims(space, dims, NULL);
    *rows = rank >= 1 ? dims[0] : 0;
    for (int d = 1; d < rank; d++) bytes *= dims[d];
    if (space >= 0) H5Sclose(space);
    if (type >= 0) H5Tclose(type);
    return rank >= 1 ? bytes : 0;
}

mk_err mk__check_storage(hid_t dset, const char *file, const char *path)
{
    hid_t dcpl = H5Dget_create_plist(dset);
    if (dcpl < 0) return MK_OK;
    mk_err err = MK_OK;
    int external = H5Pget_external_count(dcpl);
    hsize_t rows = 0, bytes = row_bytes(dset, &rows);
    if (!rows || !bytes) { /* no data to store: the shape checks say what is wrong */
    } else if (H5Pget_layout(dcpl) == H5D_VIRTUAL) {
        vds_walk w = {.file = file, .path = path};
        err = check_virtual(dset, dcpl, path, &w);
    } else if (external > 0) {
        err = check_external(dcpl, external, file, path, bytes, rows);
    } else {
        err = check_allocated(dset, dcpl, file, path);
    }
    H5Pclose(dcpl);
    return err;
}
