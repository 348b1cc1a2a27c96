#include "h5write.h"

void mk_h5w_check(mk_h5w *h, herr_t status, const char *what)
{
    if (status < 0 && !h->err) h->err = mk_fail(MK_EIO, "%s: cannot write %s", h->path, what);
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
