/* The writer of `mpicka synth` (mpicka/synth.h; shared types in synth_gen.h).
 *
 * Rows are generated and written --block at a time, so memory is O(block *
 * features + latent * features), never O(n). Every random number is a pure
 * function of its key (seed, stream, layer, row, index), which is what makes a
 * file independent of --block and of the layout. The file is written under a
 * temporary name and renamed into place only once it is complete and closed. */
#include "synth_gen.h"

#include <errno.h>
#include <hdf5.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#ifndef MPICKA_VERSION
#define MPICKA_VERSION "unknown"
#endif

#define SYNTH_TWO_PI 6.283185307179586476925286766559
#define SYNTH_GOLDEN UINT64_C(0x9e3779b97f4a7c15)

const struct synth_dtype_info mk_synth_dtypes[DT_COUNT] = {
    [DT_F16] = {"f16", CONV_HALF, 0, 0, 2},
    [DT_F32] = {"f32", CONV_HDF5, 0, 0, 4},
    [DT_F64] = {"f64", CONV_HDF5, 0, 0, 8},
    [DT_I8] = {"i8", CONV_INT, INT8_MIN, INT8_MAX, 1},
    [DT_I16] = {"i16", CONV_INT, INT16_MIN, INT16_MAX, 2},
    [DT_I32] = {"i32", CONV_INT, INT32_MIN, INT32_MAX, 4},
    [DT_I64] = {"i64", CONV_INT, INT64_MIN, INT64_MAX, 8},
    [DT_U8] = {"u8", CONV_INT, 0, UINT8_MAX, 1},
};

/* ---- counter-based normals ---------------------------------------------- */

/* The splitmix64 finaliser: a bijection on 64 bits with good avalanche. */
static inline uint64_t mix64(uint64_t z)
{
    z = (z ^ (z >> 30)) * UINT64_C(0xbf58476d1ce4e5b9);
    z = (z ^ (z >> 27)) * UINT64_C(0x94d049bb133111eb);
    return z ^ (z >> 31);
}

enum stream { STREAM_WEIGHT = 1, STREAM_LATENT = 2, STREAM_NOISE = 3 };

/* Key of one row of one stream; chaining the mixer keeps distinct tuples apart. */
static uint64_t row_key(uint64_t seed, enum stream s, uint64_t layer, uint64_t row)
{
    uint64_t h = mix64(seed + SYNTH_GOLDEN);
    h = mix64(h + (uint64_t)s * SYNTH_GOLDEN);
    h = mix64(h + layer + SYNTH_GOLDEN);
    return mix64(h + row + SYNTH_GOLDEN);
}

/* Standard normals 0..count-1 of the row keyed by key, by Box-Muller on pairs.
 * Element j depends only on (key, j), not on count. */
static void fill_normals(uint64_t key, double *out, size_t count)
{
    for (size_t j = 0; j < count; j += 2) {
        uint64_t a = mix64(key + (j + 1) * SYNTH_GOLDEN);
        uint64_t b = mix64(key + (j + 2) * SYNTH_GOLDEN);
        double u1 = (double)((a >> 11) + 1) * 0x1p-53;   /* (0, 1]: log stays finite */
        double u2 = (double)(b >> 11) * 0x1p-53;
        double r = sqrt(-2.0 * log(u1));
        out[j] = r * cos(SYNTH_TWO_PI * u2);
        if (j + 1 < count) out[j + 1] = r * sin(SYNTH_TWO_PI * u2);
    }
}

/* ---- generation --------------------------------------------------------- */

struct gen {
    const struct synth_opts *o;
    const struct synth_plan *pl;
    double **wt;     /* per layer, K x p row-major: W_l transposed and divided by sqrt(K) */
    double *h;       /* block x K latent states, carried from layer to layer */
    double *z;       /* K normals for one row */
    double *x;       /* block x pmax values of one layer */
    void *conv;      /* the block as int64_t or binary16 bits, when some layer needs it */
    size_t rows;     /* rows per block */
};

static void gen_free(struct gen *g)
{
    if (g->wt)
        for (int l = 0; l < g->pl->nlayers; l++) free(g->wt[l]);
    free(g->wt);
    free(g->h);
    free(g->z);
    free(g->x);
    free(g->conv);
}

/* Stored transposed so that the projection runs along contiguous features. */
static void make_weights(const struct gen *g, int l, double *wt)
{
    size_t p = g->pl->layers[l].p, K = (size_t)g->o->latent;
    double scale = 1.0 / sqrt((double)K);
    for (size_t f = 0; f < p; f++) {
        fill_normals(row_key(g->o->seed, STREAM_WEIGHT, (uint64_t)l, f), g->z, K);
        for (size_t k = 0; k < K; k++) wt[k * p + f] = g->z[k] * scale;
    }
}

static mk_err gen_init(struct gen *g, const struct synth_opts *o, const struct synth_plan *pl)
{
    mk_err err = MK_OK;
    size_t K = (size_t)o->latent;
    memset(g, 0, sizeof *g);
    g->o = o;
    g->pl = pl;
    g->rows = (size_t)(o->block < o->n ? o->block : o->n);
    if (g->rows > SIZE_MAX / sizeof(double) / (pl->pmax > K ? pl->pmax : K))
        return mk_fail(MK_EUSAGE, "synth: --block %" PRId64 ": a block of %zu features is too large",
                       o->block, pl->pmax);
    g->wt = mk_calloc((size_t)pl->nlayers, sizeof *g->wt, "the weight list", &err);
    if (err == MK_OK) g->h = mk_malloc(g->rows * K * sizeof *g->h, "the latent block", &err);
    if (err == MK_OK) g->z = mk_malloc(K * sizeof *g->z, "a latent row", &err);
    if (err == MK_OK) g->x = mk_malloc(g->rows * pl->pmax * sizeof *g->x, "the value block", &err);
    if (err == MK_OK && pl->any_conv)
        g->conv = mk_malloc(g->rows * pl->pmax * sizeof(int64_t), "the converted block", &err);
    for (int l = 0; err == MK_OK && l < pl->nlayers; l++) {
        g->wt[l] = mk_malloc(K * pl->layers[l].p * sizeof **g->wt, "layer weights", &err);
        if (err == MK_OK) make_weights(g, l, g->wt[l]);
    }
    if (err != MK_OK) gen_free(g);
    return err;
}

/* Advance the latent walk of rows [r0, r0+rows) to layer l. */
static void step_latent(struct gen *g, int l, uint64_t r0, size_t rows)
{
    size_t K = (size_t)g->o->latent;
    double c = g->o->corr, s = sqrt(1.0 - c * c);
    for (size_t r = 0; r < rows; r++) {
        double *h = g->h + r * K;
        fill_normals(row_key(g->o->seed, STREAM_LATENT, (uint64_t)l, r0 + r), g->z, K);
        for (size_t k = 0; k < K; k++) h[k] = l == 0 ? g->z[k] : c * h[k] + s * g->z[k];
    }
}

/* One row of layer l: the same operations in the same order for every row,
 * so a value does not depend on which block it falls in. */
static void make_row(const struct gen *g, int l, uint64_t i, const double *h, double *x)
{
    const struct synth_opts *o = g->o;
    size_t p = g->pl->layers[l].p, K = (size_t)o->latent;
    const double *wt = g->wt[l];
    if (o->noise > 0) {
        fill_normals(row_key(o->seed, STREAM_NOISE, (uint64_t)l, i), x, p);
        for (size_t f = 0; f < p; f++) x[f] *= o->noise;
    } else {
        memset(x, 0, p * sizeof *x);
    }
    for (size_t k = 0; k < K; k++) {
        double hk = h[k];
        const double *w = wt + k * p;
        for (size_t f = 0; f < p; f++) x[f] += hk * w[f];
    }
    for (size_t f = 0; f < p; f++) {
        double v = o->relu && x[f] < 0 ? 0.0 : x[f];
        x[f] = v + o->offset;
    }
}

static int64_t to_int(double v, const struct synth_dtype_info *t)
{
    double q = round(16.0 * v);
    /* Compare in double before converting: out-of-range conversion is undefined. */
    if (q <= (double)t->lo) return t->lo;
    if (q >= (double)t->hi) return t->hi;
    return (int64_t)q;
}

/* IEEE binary16 bits of v, rounded to nearest, ties to even, straight from
 * the double (going through float could round twice). */
static uint16_t half_bits(double v)
{
    uint64_t b;
    memcpy(&b, &v, sizeof b);
    uint16_t sign = (uint16_t)((b >> 48) & 0x8000);
    int e = (int)((b >> 52) & 0x7ff) - 1023;
    uint64_t m = (b & ((UINT64_C(1) << 52) - 1)) | (UINT64_C(1) << 52);
    if (e > 15) return sign | 0x7c00;        /* overflow to infinity */
    if (e < -25) return sign;                /* under half the smallest subnormal */
    /* Drop the bits below half's last place: 2^(e-10), or 2^-24 for subnormals. */
    int drop = 42 + (e < -14 ? -14 - e : 0);
    uint64_t q = m >> drop, rest = m & ((UINT64_C(1) << drop) - 1), tie = UINT64_C(1) << (drop - 1);
    if (rest > tie || (rest == tie && (q & 1))) q++;
    if (e < -14) return (uint16_t)(sign | q); /* a carry to 0x400 is the smallest normal */
    /* q holds the implicit bit (0x400), which adds one to the exponent field;
     * a rounding carry to 0x800 moves up one binade, to infinity after 65504. */
    return (uint16_t)(sign | (((uint32_t)(e + 14) << 10) + q));
}

/* ---- HDF5 --------------------------------------------------------------- */

/* Close an HDF5 object if open; the first failure of a function is the one reported. */
static void close_id(hid_t id, herr_t (*close_fn)(hid_t), const char *what, const char *path, mk_err *err)
{
    if (id >= 0 && close_fn(id) < 0 && *err == MK_OK)
        *err = mk_fail(MK_EIO, "synth: %s: cannot close %s", path, what);
}

/* IEEE binary16 as h5py writes it, in the byte order of base (a 32-bit float
 * type). Fields must be set before shrinking: HDF5 refuses a size that the
 * current fields do not fit in. */
static hid_t make_f16(hid_t base)
{
    hid_t t = H5Tcopy(base);
    if (t < 0) return t;
    if (H5Tset_fields(t, 15, 10, 5, 0, 10) < 0 || H5Tset_size(t, 2) < 0 ||
        H5Tset_precision(t, 16) < 0 || H5Tset_ebias(t, 15) < 0) {
        (void)H5Tclose(t);   /* already failing */
        return -1;
    }
    return t;
}

/* A new file type the caller closes. */
static hid_t file_type(enum synth_dtype dt)
{
    switch (dt) {
    case DT_F16: return make_f16(H5T_IEEE_F32LE);
    case DT_F32: return H5Tcopy(H5T_IEEE_F32LE);
    case DT_F64: return H5Tcopy(H5T_IEEE_F64LE);
    case DT_I8: return H5Tcopy(H5T_STD_I8LE);
    case DT_I16: return H5Tcopy(H5T_STD_I16LE);
    case DT_I32: return H5Tcopy(H5T_STD_I32LE);
    case DT_I64: return H5Tcopy(H5T_STD_I64LE);
    case DT_U8: return H5Tcopy(H5T_STD_U8LE);
    }
    return -1;
}

static mk_err set_layout(hid_t dcpl, const struct synth_opts *o, const struct synth_layer *ly, const char *path)
{
    if (o->chunk == 0) return MK_OK;
    hsize_t cdims[SYNTH_MAX_RANK + 1] = {mk__synth_chunk_rows(o)};
    memcpy(cdims + 1, ly->dims, (size_t)ly->rank * sizeof *cdims);
    if (H5Pset_chunk(dcpl, ly->rank + 1, cdims) < 0)
        return mk_fail(MK_EIO, "synth: %s: cannot set chunks of %llu rows for '%s'", path,
                       (unsigned long long)cdims[0], ly->name);
    if (o->gzip < 0) return MK_OK;
    if (H5Zfilter_avail(H5Z_FILTER_DEFLATE) <= 0)
        return mk_fail(MK_EUSAGE, "synth: --gzip: this HDF5 library has no deflate filter");
    if (H5Pset_shuffle(dcpl) < 0 || H5Pset_deflate(dcpl, (unsigned)o->gzip) < 0)
        return mk_fail(MK_EIO, "synth: %s: cannot set shuffle+deflate for '%s'", path, ly->name);
    return MK_OK;
}

static mk_err create_dataset(hid_t file, const struct synth_opts *o, const struct synth_layer *ly,
                             const char *path, hid_t *dset)
{
    mk_err err = MK_OK;
    hid_t ftype = -1, space = -1, lcpl = -1, dcpl = -1;
    hsize_t dims[SYNTH_MAX_RANK + 1] = {(hsize_t)o->n};
    memcpy(dims + 1, ly->dims, (size_t)ly->rank * sizeof *dims);
    if ((ftype = file_type(ly->dt)) < 0 || (space = H5Screate_simple(ly->rank + 1, dims, NULL)) < 0 ||
        (lcpl = H5Pcreate(H5P_LINK_CREATE)) < 0 || H5Pset_create_intermediate_group(lcpl, 1) < 0 ||
        (dcpl = H5Pcreate(H5P_DATASET_CREATE)) < 0) {
        err = mk_fail(MK_EIO, "synth: %s: cannot prepare dataset '%s'", path, ly->name);
        goto done;
    }
    MK_GOTO(set_layout(dcpl, o, ly, path), done);
    *dset = H5Dcreate2(file, ly->name, ftype, space, lcpl, dcpl, H5P_DEFAULT);
    if (*dset < 0) err = mk_fail(MK_EIO, "synth: %s: cannot create dataset '%s'", path, ly->name);
done:
    close_id(dcpl, H5Pclose, "a property list", path, &err);
    close_id(lcpl, H5Pclose, "a property list", path, &err);
    close_id(space, H5Sclose, "a dataspace", path, &err);
    close_id(ftype, H5Tclose, "a datatype", path, &err);
    return err;
}

/* Rows [r0, r0+rows) of a dataset from a flat buffer of memtype. */
static mk_err write_rows(hid_t dset, const struct synth_layer *ly, hsize_t r0, hsize_t rows,
                         hid_t memtype, const void *buf, const char *path)
{
    mk_err err = MK_OK;
    hid_t fspace = -1, mspace = -1;
    hsize_t start[SYNTH_MAX_RANK + 1] = {r0}, count[SYNTH_MAX_RANK + 1] = {rows};
    hsize_t nelem = rows * (hsize_t)ly->p;
    memcpy(count + 1, ly->dims, (size_t)ly->rank * sizeof *count);
    if ((fspace = H5Dget_space(dset)) < 0 ||
        H5Sselect_hyperslab(fspace, H5S_SELECT_SET, start, NULL, count, NULL) < 0 ||
        (mspace = H5Screate_simple(1, &nelem, NULL)) < 0 ||
        H5Dwrite(dset, memtype, mspace, fspace, H5P_DEFAULT, buf) < 0)
        err = mk_fail(MK_EIO, "synth: %s: cannot write rows %llu-%llu of '%s'", path,
                      (unsigned long long)r0, (unsigned long long)(r0 + rows - 1), ly->name);
    close_id(mspace, H5Sclose, "a dataspace", path, &err);
    close_id(fspace, H5Sclose, "a dataspace", path, &err);
    return err;
}

/* Convert the block of layer l (in g->x) to its file type where we do that
 * ourselves, and write it. */
static mk_err write_layer_block(struct gen *g, int l, hid_t dset, uint64_t r0, size_t rows, const char *path)
{
    const struct synth_layer *ly = &g->pl->layers[l];
    const struct synth_dtype_info *t = &mk_synth_dtypes[ly->dt];
    size_t count = rows * ly->p;
    if (t->conv == CONV_HDF5) return write_rows(dset, ly, r0, rows, H5T_NATIVE_DOUBLE, g->x, path);
    if (t->conv == CONV_INT) {
        int64_t *q = g->conv;
        for (size_t e = 0; e < count; e++) q[e] = to_int(g->x[e], t);
        return write_rows(dset, ly, r0, rows, H5T_NATIVE_INT64, q, path);
    }
    uint16_t *q = g->conv;
    for (size_t e = 0; e < count; e++) q[e] = half_bits(g->x[e]);
    /* binary16 in host order: on little-endian hosts it equals the file type
     * and HDF5 copies the bits without converting. */
    hid_t mtype = make_f16(H5T_NATIVE_FLOAT);
    if (mtype < 0) return mk_fail(MK_EIO, "synth: %s: cannot make the binary16 memory type", path);
    mk_err err = write_rows(dset, ly, r0, rows, mtype, q, path);
    close_id(mtype, H5Tclose, "a datatype", path, &err);
    return err;
}

/* Generate and write one block of every layer. */
static mk_err write_block(struct gen *g, const hid_t *dsets, uint64_t r0, size_t rows, const char *path)
{
    for (int l = 0; l < g->pl->nlayers; l++) {
        const struct synth_layer *ly = &g->pl->layers[l];
        step_latent(g, l, r0, rows);
        for (size_t r = 0; r < rows; r++)
            make_row(g, l, r0 + r, g->h + r * (size_t)g->o->latent, g->x + r * ly->p);
        MK_TRY(write_layer_block(g, l, dsets[l], r0, rows, path));
    }
    return MK_OK;
}

static mk_err write_attr(hid_t file, const char *name, hid_t ftype, hid_t mtype, const void *val,
                         const char *path)
{
    mk_err err = MK_OK;
    hid_t space = H5Screate(H5S_SCALAR), attr = -1;
    if (space < 0 || (attr = H5Acreate2(file, name, ftype, space, H5P_DEFAULT, H5P_DEFAULT)) < 0 ||
        H5Awrite(attr, mtype, val) < 0)
        err = mk_fail(MK_EIO, "synth: %s: cannot write attribute '%s'", path, name);
    close_id(attr, H5Aclose, "an attribute", path, &err);
    close_id(space, H5Sclose, "a dataspace", path, &err);
    return err;
}

static mk_err write_text_attr(hid_t file, const char *name, const char *text, const char *path)
{
    mk_err err = MK_OK;
    hid_t t = H5Tcopy(H5T_C_S1);
    if (t < 0 || H5Tset_size(t, strlen(text) + 1) < 0 || H5Tset_strpad(t, H5T_STR_NULLTERM) < 0)
        err = mk_fail(MK_EIO, "synth: %s: cannot make the string type of attribute '%s'", path, name);
    if (err == MK_OK) err = write_attr(file, name, t, t, text, path);
    close_id(t, H5Tclose, "a datatype", path, &err);
    return err;
}

/* The generator's parameters, so that a file documents how it was made. */
static mk_err write_params(hid_t file, const struct synth_opts *o, const char *path)
{
    int64_t relu = o->relu;
    MK_TRY(write_text_attr(file, "generator", "mpicka synth " MPICKA_VERSION, path));
    MK_TRY(write_attr(file, "n", H5T_STD_I64LE, H5T_NATIVE_INT64, &o->n, path));
    MK_TRY(write_attr(file, "layers", H5T_STD_I64LE, H5T_NATIVE_INT64, &o->layers, path));
    MK_TRY(write_text_attr(file, "features", o->features, path));
    MK_TRY(write_text_attr(file, "dtypes", o->dtypes, path));
    MK_TRY(write_attr(file, "corr", H5T_IEEE_F64LE, H5T_NATIVE_DOUBLE, &o->corr, path));
    MK_TRY(write_attr(file, "latent", H5T_STD_I64LE, H5T_NATIVE_INT64, &o->latent, path));
    MK_TRY(write_attr(file, "noise", H5T_IEEE_F64LE, H5T_NATIVE_DOUBLE, &o->noise, path));
    MK_TRY(write_attr(file, "offset", H5T_IEEE_F64LE, H5T_NATIVE_DOUBLE, &o->offset, path));
    MK_TRY(write_attr(file, "relu", H5T_STD_I64LE, H5T_NATIVE_INT64, &relu, path));
    MK_TRY(write_attr(file, "seed", H5T_STD_U64LE, H5T_NATIVE_UINT64, &o->seed, path));
    return MK_OK;
}

static mk_err write_contents(hid_t file, const struct synth_opts *o, const struct synth_plan *pl, const char *path)
{
    mk_err err = MK_OK;
    struct gen g;
    hid_t *dsets = mk_malloc((size_t)pl->nlayers * sizeof *dsets, "dataset handles", &err);
    if (err != MK_OK) return err;
    for (int l = 0; l < pl->nlayers; l++) dsets[l] = -1;
    MK_GOTO(gen_init(&g, o, pl), close_sets);
    MK_GOTO(write_params(file, o, path), free_gen);
    for (int l = 0; l < pl->nlayers; l++)
        MK_GOTO(create_dataset(file, o, &pl->layers[l], path, &dsets[l]), free_gen);
    for (uint64_t r0 = 0; r0 < (uint64_t)o->n; r0 += g.rows) {
        size_t rows = (uint64_t)o->n - r0 < g.rows ? (size_t)((uint64_t)o->n - r0) : g.rows;
        MK_GOTO(write_block(&g, dsets, r0, rows, path), free_gen);
    }
free_gen:
    gen_free(&g);
close_sets:
    for (int l = 0; l < pl->nlayers; l++)
        if (dsets[l] >= 0 && H5Dclose(dsets[l]) < 0 && err == MK_OK)
            err = mk_fail(MK_EIO, "synth: %s: cannot close dataset '%s'", path, pl->layers[l].name);
    free(dsets);
    return err;
}

/* Write to a temporary name beside the destination and rename it into place,
 * so that readers never see a half-written file. */
static mk_err write_file(const struct synth_opts *o, const struct synth_plan *pl)
{
    mk_err err = MK_OK;
    size_t len = strlen(o->out) + 32;
    char *tmp = mk_malloc(len, "the temporary file name", &err);
    if (err != MK_OK) return err;
    snprintf(tmp, len, "%s.tmp.%ld", o->out, (long)getpid());
    errno = 0;   /* HDF5 reports no cause; the failed open(2) leaves one in errno */
    hid_t file = H5Fcreate(tmp, H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
    if (file < 0) {
        err = mk_fail(MK_EIO, "synth: cannot create '%s' (temporary file for '%s'): %s", tmp, o->out,
                      errno ? strerror(errno) : "HDF5 error");
        remove(tmp);
        free(tmp);
        return err;
    }
    err = write_contents(file, o, pl, o->out);
    if (H5Fclose(file) < 0 && err == MK_OK)
        err = mk_fail(MK_EIO, "synth: %s: cannot close (flush) '%s'", o->out, tmp);
    if (err == MK_OK && rename(tmp, o->out) != 0)
        err = mk_fail(MK_EIO, "synth: cannot rename '%s' to '%s': %s", tmp, o->out, strerror(errno));
    if (err != MK_OK) remove(tmp);
    free(tmp);
    return err;
}

/* Our messages name the file and the dataset; HDF5's stack dump adds only noise. */
mk_err mk__synth_write(const struct synth_opts *o, const struct synth_plan *pl)
{
    H5E_auto2_t efunc;
    void *edata;
    if (H5Eget_auto2(H5E_DEFAULT, &efunc, &edata) < 0 || H5Eset_auto2(H5E_DEFAULT, NULL, NULL) < 0)
        return mk_fail(MK_EIO, "synth: %s: cannot configure HDF5 error reporting", o->out);
    mk_err err = write_file(o, pl);
    if (H5Eset_auto2(H5E_DEFAULT, efunc, edata) < 0 && err == MK_OK)
        err = mk_fail(MK_EIO, "synth: %s: cannot restore HDF5 error reporting", o->out);
    return err;
}
