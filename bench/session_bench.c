/* The library session against export + `mpicka run`, on the same data in
 * one run of this program: the seconds of feeding the batches from memory,
 * of writing them to HDF5 (what an export writes), and of `mpirun -np 1
 * mpicka run` on that file, with the bytes written, and whether the two
 * CKA matrices are bitwise equal.
 *
 *   mk_session_bench MPICKA_EXE DIR [n] [features] [layers] [batch_size]
 *
 * Two models of `layers` float32 layers of `features` each, n examples. */
#include <hdf5.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "mpicka/log.h"
#include "mpicka/session.h"

static float *make_layer(int64_t n, int64_t p, uint64_t seed)
{
    float *v = malloc((size_t)(n * p) * sizeof *v);
    for (int64_t i = 0; v && i < n * p; i++) {
        seed = seed * 6364136223846793005ULL + 1442695040888963407ULL;
        v[i] = (float)((seed >> 40) % 10007) / 10007.0f + (float)(i / p % 7);
    }
    return v;
}

static double write_file(const char *path, float **layers, int L, int64_t n, int64_t p)
{
    double t0 = mk_now();
    hid_t f = H5Fcreate(path, H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
    hsize_t dims[2] = {(hsize_t)n, (hsize_t)p};
    for (int l = 0; l < L; l++) {
        char name[32];
        snprintf(name, sizeof name, "layer%d", l + 1);
        hid_t sp = H5Screate_simple(2, dims, NULL);
        hid_t d = H5Dcreate2(f, name, H5T_IEEE_F32LE, sp, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
        H5Dwrite(d, H5T_NATIVE_FLOAT, H5S_ALL, H5S_ALL, H5P_DEFAULT, layers[l]);
        H5Dclose(d), H5Sclose(sp);
    }
    H5Fclose(f);
    return mk_now() - t0;
}

int main(int argc, char **argv)
{
    if (argc < 3) {
        fprintf(stderr, "usage: %s MPICKA_EXE DIR [n] [features] [layers] [batch_size]\n", argv[0]);
        return 2;
    }
    const char *exe = argv[1], *dir = argv[2];
    int64_t n = argc > 3 ? atoll(argv[3]) : 16384, p = argc > 4 ? atoll(argv[4]) : 512, bs = argc > 6 ? atoll(argv[6]) : 256;
    int L = argc > 5 ? atoi(argv[5]) : 4;
    float *x[16], *y[16];
    for (int l = 0; l < L && l < 16; l++) x[l] = make_layer(n, p, 1 + l), y[l] = make_layer(n, p, 100 + l);
    char cfg[256], path[1024], cmd[4096];
    snprintf(cfg, sizeof cfg, "batch_size: %lld\njackknife: 10\n", (long long)bs);

    double t0 = mk_now();
    mk_session *s;
    int a, b;
    int64_t dims[1] = {p};
    if (mk_session_open(cfg, NULL, &s) || mk_session_add_model(s, "x", &a) || mk_session_add_model(s, "y", &b)) return 1;
    for (int l = 0; l < L; l++) {
        char name[32];
        snprintf(name, sizeof name, "layer%d", l + 1);
        if (mk_session_add_layer(s, a, name, 1, dims, MK_DTYPE_F32) || mk_session_add_layer(s, b, name, 1, dims, MK_DTYPE_F32))
            return 1;
    }
    if (mk_session_start(s, n, 0, 1)) return fprintf(stderr, "%s\n", mk_errmsg()), 1;
    const void *layers[32];
    for (int64_t g = 0; g < mk_session_batches(s); g++) {
        for (int l = 0; l < L; l++) layers[l] = x[l] + g * bs * p, layers[L + l] = y[l] + g * bs * p;
        if (mk_session_feed(s, g, layers, mk_session_batch_rows(s, g))) return fprintf(stderr, "%s\n", mk_errmsg()), 1;
    }
    if (mk_session_finish(s)) return fprintf(stderr, "%s\n", mk_errmsg()), 1;
    double t_session = mk_now() - t0;

    snprintf(path, sizeof path, "%s/x.h5", dir);
    double t_write = write_file(path, x, L, n, p);
    snprintf(path, sizeof path, "%s/y.h5", dir);
    t_write += write_file(path, y, L, n, p);
    struct stat st;
    double bytes = 0;
    for (int k = 0; k < 2; k++) {
        snprintf(path, sizeof path, "%s/%s.h5", dir, k ? "y" : "x");
        if (stat(path, &st) == 0) bytes += (double)st.st_size;
    }
    snprintf(path, sizeof path, "%s/run.yaml", dir);
    FILE *f = fopen(path, "w");
    fprintf(f, "%sx: {file: %s/x.h5, layers: 'layer*'}\ny: {file: %s/y.h5, layers: 'layer*'}\noutput: %s/out\n"
            "plot: false\n", cfg, dir, dir, dir);
    fclose(f);
    snprintf(cmd, sizeof cmd, "mpirun --allow-run-as-root -np 1 %s run %s/run.yaml -q > %s/run.log 2>&1", exe, dir, dir);
    t0 = mk_now();
    int status = system(cmd);
    double t_run = mk_now() - t0;

    const double *cka;
    int64_t r, c;
    mk_session_matrix(s, "cka", &cka, &r, &c);
    double *file = malloc((size_t)(r * c) * sizeof *file);
    snprintf(path, sizeof path, "%s/out/cka.h5", dir);
    hid_t h = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT), d = h < 0 ? -1 : H5Dopen2(h, "cka", H5P_DEFAULT);
    int same = d >= 0 && H5Dread(d, H5T_NATIVE_DOUBLE, H5S_ALL, H5S_ALL, H5P_DEFAULT, file) >= 0 &&
               !memcmp(file, cka, (size_t)(r * c) * sizeof *file);
    if (d >= 0) H5Dclose(d);
    if (h >= 0) H5Fclose(h);
    printf("n %lld, 2 models x %d layers x %lld features (float32), batch_size %lld, 1 process, 1 thread\n",
           (long long)n, L, (long long)p, (long long)bs);
    printf("session from memory:    %.3f s, writes nothing\n", t_session);
    printf("HDF5 write (export):    %.3f s, %.1f MiB\n", t_write, bytes / 1048576.0);
    printf("mpicka run -np 1:       %.3f s (exit %d)\n", t_run, status);
    printf("export + run / session: %.2f; run / session: %.2f\n", (t_write + t_run) / t_session, t_run / t_session);
    printf("CKA bitwise equal:      %s\n", same ? "yes" : "NO");
    mk_session_close(s);
    free(file);
    for (int l = 0; l < L; l++) free(x[l]), free(y[l]);
    return same && status == 0 ? 0 : 1;
}
