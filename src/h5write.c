#include "h5write.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

void mk_h5w_check(mk_h5w *h, herr_t status, const char *what)
{
    if (status < 0 && !h->err) h->err = mk_fail(MK_EIO, "%s: cannot write %s", h->path, what);
}

mk_err mk_h5w_create(mk_h5w *h, const char *path)
{
    H5Eset_auto2(H5E_DEFAULT, NULL, NULL); /* our messages name the file */
    h->path = path;
    h->err = MK_OK;
    hid_t fapl = H5Pcreate(H5P_FILE_ACCESS);
    herr_t status = fapl < 0 ? -1 : H5Pset_fapl_core(fapl, 1 << 16, 0);
    h->fid = status < 0 ? -1 : H5Fcreate(path, H5F_ACC_TRUNC, H5P_DEFAULT, fapl);
    if (fapl >= 0) H5Pclose(fapl);
    return h->fid < 0 ? mk_fail(MK_EIO, "%s: cannot create it in memory", path) : MK_OK;
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
    char *image = size > 0 ? malloc((size_t)size) : NULL;
    if (!err && !image) err = size > 0 ? mk_fail(MK_ENOMEM, "%s: no memory for the file's image", h->path)
                                      : mk_fail(MK_EIO, "%s: cannot make the file's image", h->path);
    if (!err && H5Fget_file_image(h->fid, image, (size_t)size) != size)
        err = mk_fail(MK_EIO, "%s: cannot make the file's image", h->path);
    if (H5Fclose(h->fid) < 0 && !err) err = mk_fail(MK_EIO, "%s: cannot close it", h->path);
    h->fid = -1;
    if (!err) err = save_image(h->path, image, (size_t)size);
    free(image);
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
