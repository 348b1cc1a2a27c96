#include "mpicka/checkpoint.h"

#include "mpicka/file.h"
#include "mpicka/h5write.h"

#include <errno.h>
#include <fcntl.h>
#include <hdf5.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static void sync_folder(const char *path)
{
    char dir[4096];
    snprintf(dir, sizeof dir, "%s", path);
    char *slash = strrchr(dir, '/');
    if (slash) *slash = '\0'; else snprintf(dir, sizeof dir, ".");
    int fd = open(dir, O_RDONLY);
    if (fd >= 0) {
        fsync(fd); /* best effort: the rename is what matters */
        close(fd);
    }
}

/* The first bytes of a checkpoint file (in its HDF5 user block). */
#define MK_CHECKPOINT_SEAL "mpicka checkpoint 2"

static mk_err write_to(const char *tmp, const char *fingerprint, const mk_todo *todo, const mk_nodes *nodes,
                       double seconds, int64_t segments)
{
    mk_h5w h;
    MK_TRY(mk_h5w_create(&h, tmp, MK_CHECKPOINT_SEAL));
    hsize_t spans[2] = {(hsize_t)todo->count, 2}, count = (hsize_t)nodes->count;
    hsize_t sums[2] = {(hsize_t)nodes->count, (hsize_t)nodes->len};
    mk_h5w_attr_str(&h, "fingerprint", fingerprint);
    mk_h5w_attr(&h, "seconds_total", H5T_IEEE_F64LE, H5T_NATIVE_DOUBLE, &seconds);
    mk_h5w_attr(&h, "segments", H5T_STD_I64LE, H5T_NATIVE_INT64, &segments);
    mk_h5w_dataset(&h, "todo", H5T_STD_I64LE, H5T_NATIVE_INT64, 2, spans, todo->spans);
    mk_h5w_dataset(&h, "level", H5T_STD_I64LE, H5T_NATIVE_INT64, 1, &count, nodes->level);
    mk_h5w_dataset(&h, "start", H5T_STD_I64LE, H5T_NATIVE_INT64, 1, &count, nodes->start);
    mk_h5w_dataset(&h, "sums", H5T_IEEE_F64LE, H5T_NATIVE_DOUBLE, 2, sums, nodes->sums);
    return mk_h5w_finish(&h);
}

mk_err mk_checkpoint_write(const char *path, const char *fingerprint, const mk_todo *todo, const mk_nodes *nodes,
                           double seconds, int64_t segments)
{
    char tmp[4200];
    snprintf(tmp, sizeof tmp, "%s.tmp.%ld", path, (long)getpid());
    mk_err err = write_to(tmp, fingerprint, todo, nodes, seconds, segments);
    if (!err && rename(tmp, path) != 0)
        err = mk_fail(MK_EIO, "cannot move the checkpoint to '%s': %s", path, strerror(errno));
    if (err) unlink(tmp);
    else sync_folder(path);
    return err;
}

/* ---- the inputs' content ---- */

/* Where sample b starts: back to back in a small file; else the first at 0,
 * the last ending at the file's end, the others evenly between. */
static int64_t sample_at(int64_t size, int b)
{
    const int64_t block = MK_CHECKPOINT_SAMPLE, blocks = MK_CHECKPOINT_SAMPLES;
    if (size <= blocks * block) return b * block;
    return (size - block) / (blocks - 1) * b + (b == blocks - 1 ? (size - block) % (blocks - 1) : 0);
}

mk_err mk_checkpoint_sample(const char *file, int64_t size, uint64_t *hash)
{
    mk_err err = MK_OK;
    int fd = open(file, O_RDONLY | O_CLOEXEC);
    unsigned char *buf = fd < 0 ? NULL : mk_malloc(MK_CHECKPOINT_SAMPLE, "a sample of an input", &err);
    *hash = MK_H5W_FNV_START;
    for (int b = 0; b < MK_CHECKPOINT_SAMPLES && buf; b++) {
        int64_t at = sample_at(size, b), n = size - at < MK_CHECKPOINT_SAMPLE ? size - at : MK_CHECKPOINT_SAMPLE;
        if (n <= 0) break;
        int r = mk_pread_full(fd, buf, (size_t)n, at);
        if (r != 0) {
            err = mk_fail(MK_EIO, "cannot read input '%s' for the checkpoint's fingerprint: %s", file,
                          r < 0 ? strerror(errno) : "shorter than its size");
            break;
        }
        *hash = mk_h5w_fnv(*hash, buf, (size_t)n);
    }
    if (fd < 0) err = mk_fail(MK_EIO, "cannot read input '%s' for the checkpoint's fingerprint: %s", file,
                              strerror(errno));
    free(buf);
    if (fd >= 0) close(fd);
    return err;
}

/* ---- reading ---- */

static mk_err damaged(const char *path, const char *what)
{
    return mk_fail(MK_EINPUT, "checkpoint '%s' is damaged (%s); rerun with --restart to discard it", path, what);
}

/* A whole dataset of `rows` by `cols` and of rank `want` (1: cols is 1),
 * rows read from the file. The rank must match: a 1-D dataset where 2-D
 * ones are written has no second extent, and read whole into rows x 0
 * values it would overrun the buffer. */
static mk_err get(hid_t fid, const char *path, const char *name, hid_t mtype, int want, int64_t cols,
                  int64_t *rows, void **data)
{
    hid_t dset = H5Dopen2(fid, name, H5P_DEFAULT);
    if (dset < 0) return damaged(path, name);
    hid_t space = H5Dget_space(dset);
    hsize_t dims[2] = {0, 0};
    int rank = H5Sget_simple_extent_dims(space, dims, NULL);
    mk_err err = MK_OK;
    if (rank != want || (rank == 2 && (int64_t)dims[1] != cols)) err = damaged(path, name);
    if (dims[0] > ((hsize_t)1 << 40) || dims[1] > ((hsize_t)1 << 40) || (double)dims[0] * (double)cols > 1e12)
        err = damaged(path, name);
    *rows = (int64_t)dims[0];
    if (!err) *data = mk_malloc((size_t)(*rows * cols) * 8 + 8, "a checkpoint", &err);
    if (!err && H5Dread(dset, mtype, H5S_ALL, H5S_ALL, H5P_DEFAULT, *data) < 0) err = damaged(path, name);
    H5Sclose(space);
    H5Dclose(dset);
    return err;
}

static mk_err get_fingerprint(hid_t fid, const char *path, char **out)
{
    hid_t attr = H5Aopen(fid, "fingerprint", H5P_DEFAULT);
    if (attr < 0) return damaged(path, "fingerprint");
    hid_t type = H5Aget_type(attr);
    char *value = NULL;
    mk_err err = MK_OK;
    if (H5Tis_variable_str(type) <= 0 || H5Aread(attr, type, &value) < 0 || !value) err = damaged(path, "fingerprint");
    if (!err) {
        *out = mk_malloc(strlen(value) + 1, "a fingerprint", &err);
        if (!err) strcpy(*out, value);
    }
    if (value) H5free_memory(value);
    H5Tclose(type);
    H5Aclose(attr);
    return err;
}

/* The time so far: optional (older checkpoints lack it), but not damaged. */
static mk_err get_time(hid_t fid, const char *path, mk_checkpoint *ck)
{
    const char *names[2] = {"seconds_total", "segments"};
    hid_t types[2] = {H5T_NATIVE_DOUBLE, H5T_NATIVE_INT64};
    void *values[2] = {&ck->seconds, &ck->segments};
    for (int i = 0; i < 2; i++) {
        if (H5Aexists(fid, names[i]) <= 0) continue;
        hid_t attr = H5Aopen(fid, names[i], H5P_DEFAULT);
        herr_t status = attr < 0 ? -1 : H5Aread(attr, types[i], values[i]);
        if (attr >= 0) H5Aclose(attr);
        if (status < 0) return damaged(path, names[i]);
    }
    if (!(ck->seconds >= 0.0) || ck->segments < 0) return damaged(path, "seconds_total");
    return MK_OK;
}

static mk_err read_all(hid_t fid, const char *path, mk_checkpoint *ck)
{
    int64_t spans, levels, starts, sums;
    void *todo = NULL;
    MK_TRY(get_fingerprint(fid, path, &ck->fingerprint));
    MK_TRY(get_time(fid, path, ck));
    MK_TRY(get(fid, path, "todo", H5T_NATIVE_INT64, 2, 2, &spans, &todo));
    ck->todo.spans = todo;
    ck->todo.count = (int)spans;
    if (spans > INT32_MAX) return damaged(path, "todo");
    MK_TRY(get(fid, path, "level", H5T_NATIVE_INT64, 1, 1, &levels, (void **)&ck->nodes.level));
    MK_TRY(get(fid, path, "start", H5T_NATIVE_INT64, 1, 1, &starts, (void **)&ck->nodes.start));
    hid_t dset = H5Dopen2(fid, "sums", H5P_DEFAULT);
    if (dset < 0) return damaged(path, "sums");
    hid_t space = H5Dget_space(dset);
    hsize_t dims[2] = {0, 0};
    H5Sget_simple_extent_dims(space, dims, NULL);
    H5Sclose(space);
    H5Dclose(dset);
    MK_TRY(get(fid, path, "sums", H5T_NATIVE_DOUBLE, 2, (int64_t)dims[1], &sums, (void **)&ck->nodes.sums));
    if (levels != starts || sums != levels) return damaged(path, "node counts");
    ck->nodes.count = levels;
    ck->nodes.len = (int64_t)dims[1];
    return MK_OK;
}

mk_err mk_checkpoint_read(const char *path, mk_checkpoint *ck)
{
    memset(ck, 0, sizeof *ck);
    hid_t fid;
    const char *what;
    if (mk_h5w_open_sealed(path, MK_CHECKPOINT_SEAL, &fid, &what)) return damaged(path, what);
    mk_err err = read_all(fid, path, ck);
    H5Fclose(fid);
    if (err) mk_checkpoint_free(ck);
    return err;
}

/* [start, end) of the batches a node covers, or -1 in *end when it is no
 * node of the tree on [0, total). */
static void node_span(int64_t level, int64_t start, int64_t total, int64_t *end)
{
    *end = -1;
    if (level < 0 || level > 62 || start < 0 || start >= total || (start & (((int64_t)1 << level) - 1))) return;
    *end = total - start > ((int64_t)1 << level) ? start + ((int64_t)1 << level) : total;
}

mk_err mk_checkpoint_validate(mk_checkpoint *ck, const char *path, const mk_plan *plan, int64_t len)
{
    if (ck->nodes.len != len) return damaged(path, "its sums do not fit this run's layers");
    for (int64_t k = 0; k < ck->nodes.count * len; k++)
        if (!isfinite(ck->nodes.sums[k])) return damaged(path, "a partial sum is not finite");
    /* Nodes and spans, both ascending, must tile [0, total) exactly. */
    int64_t covered = 0, node = 0, span = 0, end;
    ck->todo.batches = 0;
    while (node < ck->nodes.count || span < ck->todo.count) {
        int from_node = span == ck->todo.count ||
                        (node < ck->nodes.count && ck->nodes.start[node] < ck->todo.spans[span][0]);
        if (from_node) {
            node_span(ck->nodes.level[node], ck->nodes.start[node], plan->total, &end);
            if (end < 0 || ck->nodes.start[node] != covered) return damaged(path, "its partial sums do not fit the plan");
            node++;
        } else {
            end = ck->todo.spans[span][1];
            if (ck->todo.spans[span][0] != covered || end <= covered || end > plan->total)
                return damaged(path, "its list of batches to do does not fit the plan");
            ck->todo.batches += end - covered;
            span++;
        }
        covered = end;
    }
    if (covered != plan->total) return damaged(path, "it does not cover every batch");
    return MK_OK;
}

void mk_checkpoint_free(mk_checkpoint *ck)
{
    free(ck->fingerprint);
    mk_todo_free(&ck->todo);
    mk_nodes_free(&ck->nodes);
    memset(ck, 0, sizeof *ck);
}
