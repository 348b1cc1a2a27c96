#include "mpicka/h5write.h"

#include "mpicka/file.h"

#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

void mk_h5w_check(mk_h5w *h, herr_t status, const char *what)
{
    if (status < 0 && !h->err) h->err = mk_fail(MK_EIO, "%s: cannot write %s", h->path, what);
}

#define MK_SEAL_BYTES 512

/* FNV-1a: each step is a bijection of the state, so any change of one byte
 * changes the hash. */
uint64_t mk_h5w_fnv(uint64_t h, const void *b, size_t n)
{
    const unsigned char *p = b;
    for (size_t i = 0; i < n; i++) h = (h ^ p[i]) * 0x100000001b3ULL;
    return h;
}

/* "MAGIC\n<length> <hash>\n", zero-padded to the block. */
static void write_seal(const char *magic, unsigned char *image, size_t len)
{
    memset(image, 0, MK_SEAL_BYTES);
    snprintf((char *)image, MK_SEAL_BYTES, "%s\n%zu %016llx\n", magic, len,
             (unsigned long long)mk_h5w_fnv(MK_H5W_FNV_START, image + MK_SEAL_BYTES, len - MK_SEAL_BYTES));
}

mk_err mk_h5w_create(mk_h5w *h, const char *path, const char *seal)
{
    H5Eset_auto2(H5E_DEFAULT, NULL, NULL); /* our messages name the file */
    h->path = path;
    h->err = MK_OK;
    h->seal = seal;
    hid_t fapl = H5Pcreate(H5P_FILE_ACCESS), fcpl = H5Pcreate(H5P_FILE_CREATE);
    herr_t status = fapl < 0 || fcpl < 0 ? -1 : H5Pset_fapl_core(fapl, 1 << 16, 0);
    if (status >= 0 && seal) status = H5Pset_userblock(fcpl, MK_SEAL_BYTES);
    h->fid = status < 0 ? -1 : H5Fcreate(path, H5F_ACC_TRUNC, fcpl, fapl);
    if (fapl >= 0) H5Pclose(fapl);
    if (fcpl >= 0) H5Pclose(fcpl);
    return h->fid < 0 ? mk_fail(MK_EIO, "%s: cannot create it in memory", path) : MK_OK;
}

/* The whole file; NULL when unreadable. Only a regular file: a folder's
 * "size" is a hash offset (2^63 - 1 on ext4) and a FIFO never ends. */
static unsigned char *slurp(const char *path, size_t *len)
{
    int fd;
    struct stat st;
    unsigned char *buf = NULL;
    *len = 0;
    if (mk_open_regular(path, "a sealed file", MK_EINPUT, &fd) != MK_OK) return NULL;
    if (fstat(fd, &st) == 0 && st.st_size > 0 && (uint64_t)st.st_size < SIZE_MAX / 2)
        buf = malloc((size_t)st.st_size);
    if (buf && mk_pread_full(fd, buf, (size_t)st.st_size, 0) != 0) {
        free(buf);
        buf = NULL;
    }
    close(fd);
    *len = buf ? (size_t)st.st_size : 0;
    return buf;
}

static int seal_holds(const char *magic, const unsigned char *image, size_t len)
{
    char expect[MK_SEAL_BYTES];
    if (len <= MK_SEAL_BYTES) return 0;
    snprintf(expect, sizeof expect, "%s\n%zu %016llx\n", magic, len,
             (unsigned long long)mk_h5w_fnv(MK_H5W_FNV_START, image + MK_SEAL_BYTES, len - MK_SEAL_BYTES));
    return !memcmp(image, expect, strlen(expect) + 1);
}

mk_err mk_h5w_open_sealed(const char *path, const char *seal, hid_t *fid, const char **what)
{
    size_t len;
    unsigned char *image = slurp(path, &len);
    *fid = -1;
    *what = !image ? "cannot read it" : len < MK_SEAL_BYTES || strncmp((char *)image, seal, strlen(seal))
                                            ? "not a checkpoint of this version"
                                        : !seal_holds(seal, image, len) ? "its bytes do not match their hash"
                                                                        : NULL;
    if (!*what) {
        H5Eset_auto2(H5E_DEFAULT, NULL, NULL);
        hid_t fapl = H5Pcreate(H5P_FILE_ACCESS);
        if (fapl >= 0 && H5Pset_fapl_core(fapl, 1 << 16, 0) >= 0 && H5Pset_file_image(fapl, image, len) >= 0)
            *fid = H5Fopen("/proc/self/mpicka-image", H5F_ACC_RDONLY, fapl); /* the core driver refuses a
                                                                                 name that exists on disk */
        if (fapl >= 0) H5Pclose(fapl);
        if (*fid < 0) *what = "HDF5 cannot open it";
    }
    free(image); /* HDF5 copied the image */
    return *what ? MK_EINPUT : MK_OK;
}

/* All of buf to fd, through short writes; false with errno on failure. */
static int write_all(int fd, const char *buf, size_t len)
{
    while (len > 0) {
        ssize_t n = write(fd, buf, len);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) return 0;
        buf += n;
        len -= (size_t)n;
    }
    return 1;
}

static mk_err save_image(const char *path, const char *buf, size_t len)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0666);
    if (fd < 0) return mk_fail(MK_EIO, "cannot create '%s': %s", path, strerror(errno));
    int ok = write_all(fd, buf, len) && fsync(fd) == 0;
    int saved = errno;
    if (close(fd) != 0 && ok) {
        ok = 0;
        saved = errno;
    }
    if (ok) return MK_OK;
    unlink(path);
    return mk_fail(MK_EIO, "cannot write '%s': %s", path, strerror(saved));
}

mk_err mk_h5w_finish(mk_h5w *h)
{
    mk_err err = h->err;
    ssize_t size = err ? -1 : (H5Fflush(h->fid, H5F_SCOPE_GLOBAL) < 0 ? -1 : H5Fget_file_image(h->fid, NULL, 0));
    size_t block = h->seal ? MK_SEAL_BYTES : 0; /* the image leaves the user block out */
    char *file = size > 0 ? malloc(block + (size_t)size) : NULL;
    if (!err && !file) err = size > 0 ? mk_fail(MK_ENOMEM, "%s: no memory for the file's image", h->path)
                                     : mk_fail(MK_EIO, "%s: cannot make the file's image", h->path);
    if (!err && H5Fget_file_image(h->fid, file + block, (size_t)size) != size)
        err = mk_fail(MK_EIO, "%s: cannot make the file's image", h->path);
    if (!err && h->seal) write_seal(h->seal, (unsigned char *)file, block + (size_t)size);
    if (H5Fclose(h->fid) < 0 && !err) err = mk_fail(MK_EIO, "%s: cannot close it", h->path);
    h->fid = -1;
    if (!err) err = save_image(h->path, file, block + (size_t)size);
    free(file);
    return err;
}

void mk_h5w_dataset(mk_h5w *h, const char *name, hid_t ftype, hid_t mtype, int rank, const hsize_t *dims,
                    const void *data)
{
    hid_t space = H5Screate_simple(rank, dims, NULL);
    hid_t dset = H5Dcreate2(h->fid, name, ftype, space, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    mk_h5w_check(h, dset, name);
    if (dset >= 0) mk_h5w_check(h, H5Dwrite(dset, mtype, H5S_ALL, H5S_ALL, H5P_DEFAULT, data), name);
    if (dset >= 0) H5Dclose(dset);
    H5Sclose(space);
}

void mk_h5w_attr(mk_h5w *h, const char *name, hid_t ftype, hid_t mtype, const void *value)
{
    hid_t space = H5Screate(H5S_SCALAR);
    hid_t attr = H5Acreate2(h->fid, name, ftype, space, H5P_DEFAULT, H5P_DEFAULT);
    mk_h5w_check(h, attr, name);
    if (attr >= 0) mk_h5w_check(h, H5Awrite(attr, mtype, value), name);
    if (attr >= 0) H5Aclose(attr);
    H5Sclose(space);
}

hid_t mk_h5w_utf8_type(void)
{
    hid_t t = H5Tcopy(H5T_C_S1);
    H5Tset_size(t, H5T_VARIABLE);
    H5Tset_cset(t, H5T_CSET_UTF8);
    return t;
}

void mk_h5w_attr_str(mk_h5w *h, const char *name, const char *value)
{
    hid_t type = mk_h5w_utf8_type();
    mk_h5w_attr(h, name, type, type, &value);
    H5Tclose(type);
}
