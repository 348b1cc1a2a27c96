/* The library session (mpicka/session.h) against `mpicka run`: the batches
 * of HDF5 files (mpicka synth, float16/32/64 layers) fed through the API, in
 * one session and split over three sessions joined by probe + export/merge
 * in a scrambled order (or gathered by a fourth), must give cka.h5's
 * matrices bitwise equal to the run's on 1 and 3 ranks; and every misuse or
 * damaged input is refused with a message, writing nothing. */
#include "testutil.h"

#include <hdf5.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mpicka/config.h"
#include "mpicka/session.h"

#define N_EX 300 /* 4 batches of 64 and a tail of 44 */
#define MAXL 8

/* One model's layers as the file holds them: raw bytes of the stored type. */
typedef struct {
    char name[32];
    int nlayers;
    char lname[MAXL][32];
    int ndims[MAXL];
    int64_t dims[MAXL][4];
    int dtype[MAXL];
    int64_t p[MAXL];
    char *raw[MAXL];
} model;

static int dtype_of(hid_t t)
{
    size_t size = H5Tget_size(t);
    return size == 2 ? MK_DTYPE_F16 : size == 4 ? MK_DTYPE_F32 : MK_DTYPE_F64;
}

static size_t dtype_size(int d) { return d == MK_DTYPE_F16 ? 2 : d == MK_DTYPE_F32 ? 4 : 8; }

/* synth FILE with layers of the shapes and types given, then read it raw. */
static void make_model(model *m, const char *name, const char *features, const char *dtypes, int nlayers, int seed)
{
    char cmd[1024];
    snprintf(cmd, sizeof cmd, "%s synth %s/%s.h5 --n %d --layers %d --features %s --dtype %s --seed %d", MK_TEST_EXE,
             tu_dir, name, N_EX, nlayers, features, dtypes, seed);
    tu_must_run(cmd);
    memset(m, 0, sizeof *m);
    snprintf(m->name, sizeof m->name, "%s", name);
    m->nlayers = nlayers;
    char file[512];
    snprintf(file, sizeof file, "%s/%s.h5", tu_dir, name);
    hid_t fid = H5Fopen(file, H5F_ACC_RDONLY, H5P_DEFAULT);
    ck_assert_int_ge(fid, 0);
    for (int l = 0; l < nlayers; l++) {
        snprintf(m->lname[l], sizeof m->lname[l], "layer%d", l + 1);
        hid_t d = H5Dopen2(fid, m->lname[l], H5P_DEFAULT), sp = H5Dget_space(d), t = H5Dget_type(d);
        hsize_t dims[5];
        int rank = H5Sget_simple_extent_dims(sp, dims, NULL);
        m->ndims[l] = rank - 1;
        m->p[l] = 1;
        for (int k = 1; k < rank; k++) m->dims[l][k - 1] = (int64_t)dims[k], m->p[l] *= (int64_t)dims[k];
        m->dtype[l] = dtype_of(t);
        m->raw[l] = malloc((size_t)(N_EX * m->p[l]) * dtype_size(m->dtype[l]));
        ck_assert_int_ge(H5Dread(d, t, H5S_ALL, H5S_ALL, H5P_DEFAULT, m->raw[l]), 0);
        H5Tclose(t), H5Sclose(sp), H5Dclose(d);
    }
    H5Fclose(fid);
}

static void free_models(model *ms, int n)
{
    for (int k = 0; k < n; k++)
        for (int l = 0; l < ms[k].nlayers; l++) free(ms[k].raw[l]);
}

#define OK(call) ck_assert_msg((call) == MK_OK, "%s: %s", #call, mk_errmsg())

static mk_session *open_session_n(const char *config, const model *ms, int n, int64_t examples, int rank, int nranks)
{
    mk_session *s;
    OK(mk_session_open(config, NULL, &s));
    for (int k = 0; k < n; k++) {
        int id;
        OK(mk_session_add_model(s, ms[k].name, &id));
        ck_assert_int_eq(id, k);
        for (int l = 0; l < ms[k].nlayers; l++)
            OK(mk_session_add_layer(s, id, ms[k].lname[l], ms[k].ndims[l], ms[k].dims[l], ms[k].dtype[l]));
    }
    OK(mk_session_start(s, examples, rank, nranks));
    return s;
}

static mk_session *open_session(const char *config, const model *ms, int n, int rank, int nranks)
{
    return open_session_n(config, ms, n, N_EX, rank, nranks);
}

/* Batch g's rows of every layer, in the flat order. */
static mk_err feed(mk_session *s, const model *ms, int n, int64_t g)
{
    const void *layers[4 * MAXL];
    int64_t rows = mk_session_batch_rows(s, g), first = g * 64;
    for (int k = 0, f = 0; k < n; k++)
        for (int l = 0; l < ms[k].nlayers; l++, f++)
            layers[f] = ms[k].raw[l] + (size_t)(first * ms[k].p[l]) * dtype_size(ms[k].dtype[l]);
    return mk_session_feed(s, g, layers, rows);
}

/* The session config and the run's: the same keys, the run's with inputs. */
static const char *with_output(const char *config, const char *out)
{
    static char text[4096];
    snprintf(text, sizeof text, "%soutput: %s/%s\nplot: false\n", config, tu_dir, out);
    return text;
}

static void run_files(const char *config, const model *ms, int n, int np, const char *out)
{
    char text[8192], name[64];
    int off = snprintf(text, sizeof text, "%s", with_output(config, out));
    if (n == 2)
        off += snprintf(text + off, sizeof text - (size_t)off, "x: {file: %s.h5, layers: 'layer*'}\n"
                        "y: {file: %s.h5, layers: 'layer*'}\n", ms[0].name, ms[1].name);
    else if (n == 1)
        off += snprintf(text + off, sizeof text - (size_t)off, "x: {file: %s.h5, layers: 'layer*'}\n", ms[0].name);
    else {
        off += snprintf(text + off, sizeof text - (size_t)off, "models:\n");
        for (int k = 0; k < n; k++)
            off += snprintf(text + off, sizeof text - (size_t)off, "  - {name: %s, file: %s.h5, layers: 'layer*'}\n",
                            ms[k].name, ms[k].name);
    }
    snprintf(name, sizeof name, "%s.yaml", out);
    tu_write_config(name, text);
    char *output = NULL;
    int status = tu_run_config(np, name, "-q", &output);
    tu_assert_exit(status, 0);
    free(output);
}

/* One session fed every batch. */
static void one_session(const char *config, const model *ms, int n, const char *out)
{
    mk_session *s = open_session(with_output(config, out), ms, n, 0, 1);
    for (int64_t g = 0; g < mk_session_batches(s); g++) OK(feed(s, ms, n, g));
    OK(mk_session_finish(s));
    mk_session_close(s);
}

/* Three sessions: contiguous shares (round_robin 0) or batch g to session
 * g % 3; session 0 feeds batch 0 and gives the probe; session 1 finishes,
 * merging 2's state and then 0's. */
static void three_sessions(const char *config, const model *ms, int n, const char *out, int round_robin)
{
    mk_session *s[3];
    for (int r = 0; r < 3; r++) s[r] = open_session(with_output(config, out), ms, n, r, 3);
    void *probe;
    int64_t plen;
    int64_t B = mk_session_batches(s[0]);
    OK(feed(s[0], ms, n, 0));
    OK(mk_session_probe(s[0], &probe, &plen));
    OK(mk_session_set_probe(s[1], probe, plen));
    OK(mk_session_set_probe(s[2], probe, plen));
    mk_session_free_bytes(probe);
    for (int r = 0; r < 3; r++) {
        int64_t lo, hi;
        OK(mk_session_batch_range(s[r], r, 3, &lo, &hi));
        for (int64_t g = 1; g < B; g++)
            if (round_robin ? g % 3 == r : g >= lo && g < hi) OK(feed(s[r], ms, n, g));
    }
    void *b0, *b2;
    int64_t l0, l2;
    OK(mk_session_export(s[0], &b0, &l0));
    OK(mk_session_export(s[2], &b2, &l2));
    OK(mk_session_merge(s[1], b2, l2));
    OK(mk_session_merge(s[1], b0, l0));
    OK(mk_session_finish(s[1]));
    mk_session_free_bytes(b0), mk_session_free_bytes(b2);
    for (int r = 0; r < 3; r++) mk_session_close(s[r]);
}

/* Three sessions fed contiguous shares, their states gathered by a fourth
 * that fed nothing and takes the probe from the states it merges (2, 0, 1),
 * passing through a fifth (2 merged into 0, exported again). */
static void collected(const char *config, const model *ms, int n, const char *out)
{
    mk_session *s[3], *c = open_session(with_output(config, out), ms, n, 0, 1);
    void *probe, *b[3];
    int64_t plen, len[3], B;
    for (int r = 0; r < 3; r++) s[r] = open_session(config, ms, n, r, 3);
    B = mk_session_batches(s[0]);
    OK(feed(s[0], ms, n, 0));
    OK(mk_session_probe(s[0], &probe, &plen));
    OK(mk_session_set_probe(s[1], probe, plen));
    OK(mk_session_set_probe(s[2], probe, plen));
    mk_session_free_bytes(probe);
    for (int r = 0; r < 3; r++) {
        int64_t lo, hi;
        OK(mk_session_batch_range(s[r], r, 3, &lo, &hi));
        for (int64_t g = lo > 0 ? lo : 1; g < hi && g < B; g++) OK(feed(s[r], ms, n, g));
    }
    OK(mk_session_export(s[2], &b[2], &len[2]));
    OK(mk_session_merge(s[0], b[2], len[2]));
    OK(mk_session_export(s[0], &b[0], &len[0]));
    OK(mk_session_export(s[1], &b[1], &len[1]));
    OK(mk_session_merge(c, b[0], len[0]));
    OK(mk_session_merge(c, b[1], len[1]));
    OK(mk_session_finish(c));
    for (int r = 0; r < 3; r++) mk_session_free_bytes(b[r]), mk_session_close(s[r]);
    mk_session_close(c);
}

/* Dataset name of result a equal to b's to the bit; present when want. */
static void same_bits(const char *a, const char *b, const char *name, int want)
{
    enum { MAX = 1 << 16 };
    static double va[MAX], vb[MAX];
    char fa[512], fb[512];
    snprintf(fa, sizeof fa, "%s/%s/cka.h5", tu_dir, a);
    snprintf(fb, sizeof fb, "%s/%s/cka.h5", tu_dir, b);
    int64_t na = tu_read_doubles(fa, name, va, MAX), nb = tu_read_doubles(fb, name, vb, MAX);
    ck_assert_msg(na == nb, "%s: %lld values in %s, %lld in %s", name, (long long)na, a, (long long)nb, b);
    ck_assert_msg((na > 0) == want, "%s: %lld values in %s", name, (long long)na, a);
    ck_assert_msg(na <= 0 || !memcmp(va, vb, (size_t)na * sizeof *va), "%s differs between %s and %s", name, a, b);
}

/* measures: NULL, or the measures' dataset names, separated by spaces. */
static void compare_all(const char *a, const char *b, int jack, int perm, int matched, const char *measures)
{
    same_bits(a, b, "/cka", 1);
    same_bits(a, b, "/hsic_xy", 1);
    same_bits(a, b, "/hsic_xx", 1);
    same_bits(a, b, "/hsic_yy", 1);
    same_bits(a, b, "/cka_stderr", jack);
    same_bits(a, b, "/cka_pvalue", perm);
    same_bits(a, b, "/cka_matched", matched);
    char name[128];
    for (const char *m = measures; m && *m; m += strspn(m, " ")) {
        size_t len = strcspn(m, " ");
        snprintf(name, sizeof name, "%.*s", (int)len, m);
        same_bits(a, b, name, 1);
        m += len;
    }
}

/* Every way to the result against the run on 1 rank. */
static void check_case(const char *config, const model *ms, int n, int jack, int perm, const char *measures)
{
    run_files(config, ms, n, 1, "run1");
    run_files(config, ms, n, 3, "run3");
    one_session(config, ms, n, "one");
    three_sessions(config, ms, n, "three", 0);
    three_sessions(config, ms, n, "rr", 1);
    collected(config, ms, n, "collected");
    const char *others[] = {"run3", "one", "three", "rr", "collected"};
    for (int k = 0; k < 5; k++) compare_all("run1", others[k], jack, perm, n >= 3, measures);
}

START_TEST(hsic1_x_vs_y)
{
    model ms[2];
    make_model(&ms[0], "a", "8,2x3,5", "f16,f32,f64", 3, 1);
    make_model(&ms[1], "b", "6,4", "f32,f64", 2, 2);
    check_case("batch_size: 64\njackknife: 4\npermutations: 3\nseed: 7\n", ms, 2, 1, 1, NULL);
    free_models(ms, 2);
}
END_TEST

START_TEST(exact_with_measures)
{
    model ms[2];
    make_model(&ms[0], "a", "8,2x3", "f16,f64", 2, 3);
    make_model(&ms[1], "b", "5", "f32", 1, 4);
    check_case("batch_size: 64\nestimator: exact\nmeasures: [procrustes, {shape: {alpha: 0.5}}]\n", ms, 2, 0, 0,
               "/measures/shape");
    free_models(ms, 2);
}
END_TEST

START_TEST(self_hsic0_float32)
{
    model ms[1];
    make_model(&ms[0], "a", "8,2x3,5", "f16,f32,f64", 3, 5);
    check_case("batch_size: 64\nestimator: hsic0\nprecision: float32\njackknife: 5\n", ms, 1, 1, 0, NULL);
    free_models(ms, 1);
}
END_TEST

START_TEST(three_models)
{
    model ms[3];
    make_model(&ms[0], "a", "8,6", "f32", 2, 6);
    make_model(&ms[1], "b", "8,6", "f16", 2, 7);
    make_model(&ms[2], "c", "8,6", "f64", 2, 8);
    check_case("batch_size: 64\njackknife: 3\npermutations: 2\n"
               "measures: [{rsa: {method: spearman, distance: correlation}}, {cknna: {k: 5}}, jaccard]\n", ms, 3, 1,
               1, "/measures/rsa /measures/rsa_stderr /measures/cknna_matched /measures/cknna_matched_stderr "
               "/measures/jaccard");
    free_models(ms, 3);
}
END_TEST

/* The matrices the session keeps are those it wrote. */
START_TEST(matrices_kept)
{
    model ms[2];
    make_model(&ms[0], "a", "8,5", "f32", 2, 1);
    make_model(&ms[1], "b", "6", "f64", 1, 2);
    mk_session *s = open_session("batch_size: 64\njackknife: 4\n", ms, 2, 0, 1); /* no output: nothing written */
    for (int64_t g = 0; g < mk_session_batches(s); g++) OK(feed(s, ms, 2, g));
    OK(mk_session_finish(s));
    one_session("batch_size: 64\njackknife: 4\n", ms, 2, "one");
    const char *names[] = {"cka", "hsic_xy", "hsic_xx", "hsic_yy", "cka_stderr"};
    for (int k = 0; k < 5; k++) {
        const double *data;
        int64_t r, c;
        double file[64];
        char h5[512], ds[64];
        OK(mk_session_matrix(s, names[k], &data, &r, &c));
        snprintf(h5, sizeof h5, "%s/one/cka.h5", tu_dir);
        snprintf(ds, sizeof ds, "/%s", names[k]);
        ck_assert_int_eq(tu_read_doubles(h5, ds, file, 64), r * c);
        ck_assert_msg(!memcmp(file, data, (size_t)(r * c) * sizeof *data), "%s differs", names[k]);
    }
    const double *data;
    int64_t r, c;
    tu_assert_error(mk_session_matrix(s, "cka_pvalue", &data, &r, &c), MK_EUSAGE, "no matrix 'cka_pvalue'");
    mk_session_close(s);
    free_models(ms, 2);
}
END_TEST

/* The same files as run: cka.csv to the byte, the heatmap drawn. */
START_TEST(same_files_as_run)
{
    model ms[2];
    make_model(&ms[0], "a", "8,5", "f32", 2, 1);
    make_model(&ms[1], "b", "6", "f16", 1, 2);
    char cfg[1024];
    snprintf(cfg, sizeof cfg, "batch_size: 64\noutput: %s/lib\n", tu_dir);
    mk_session *s = open_session(cfg, ms, 2, 0, 1);
    for (int64_t g = 0; g < mk_session_batches(s); g++) OK(feed(s, ms, 2, g));
    OK(mk_session_finish(s));
    mk_session_close(s);
    tu_write_config("run.yaml", "batch_size: 64\noutput: run\nx: {file: a.h5, layers: 'layer*'}\n"
                    "y: {file: b.h5, layers: 'layer*'}\n");
    char *out = NULL;
    tu_assert_exit(tu_run_config(2, "run.yaml", "-q", &out), 0);
    free(out);
    ck_assert(tu_exists(tu_in("lib/cka.png")));
    char cmd[1200];
    snprintf(cmd, sizeof cmd, "cmp %s/run/cka.csv %s/lib/cka.csv", tu_dir, tu_dir);
    tu_must_run(cmd);
    free_models(ms, 2);
}
END_TEST

/* Every other batch of 800 to each of two sessions: 400 partial sums each,
 * more than an accumulator's stack holds; the bits of one session. */
START_TEST(round_robin_many_batches)
{
    enum { N = 3200, P = 2 };
    static float x[N * P];
    static double y[N * P];
    uint64_t st = 5;
    for (int i = 0; i < N * P; i++) x[i] = (float)tu_normal(&st), y[i] = x[i] * x[i] + tu_normal(&st);
    const char *cfg = "batch_size: 4\njackknife: 10\n";
    mk_session *one, *s[2];
    model m[2] = {{.name = "x", .nlayers = 1, .lname = {"l"}, .ndims = {1}, .dims = {{P}}, .dtype = {MK_DTYPE_F32},
                   .p = {P}, .raw = {(char *)x}},
                  {.name = "y", .nlayers = 1, .lname = {"l"}, .ndims = {1}, .dims = {{P}}, .dtype = {MK_DTYPE_F64},
                   .p = {P}, .raw = {(char *)y}}};
    one = open_session_n(cfg, m, 2, N, 0, 1);
    for (int r = 0; r < 2; r++) s[r] = open_session_n(cfg, m, 2, N, r, 2);
    void *probe, *bytes;
    int64_t plen, blen;
    ck_assert_int_eq(mk_session_batches(s[0]), 800);
    for (int64_t g = 0; g < 800; g++) {
        const void *layers[2] = {x + g * 4 * P, y + g * 4 * P};
        OK(mk_session_feed(one, g, layers, 4));
        OK(mk_session_feed(s[g % 2], g, layers, 4));
        if (g == 0) {
            OK(mk_session_probe(s[0], &probe, &plen));
            OK(mk_session_set_probe(s[1], probe, plen));
            mk_session_free_bytes(probe);
        }
    }
    OK(mk_session_export(s[0], &bytes, &blen));
    OK(mk_session_merge(s[1], bytes, blen));
    OK(mk_session_finish(s[1]));
    OK(mk_session_finish(one));
    const char *names[] = {"cka", "hsic_xy", "cka_stderr"};
    for (int k = 0; k < 3; k++) {
        const double *a, *b;
        int64_t r, c;
        OK(mk_session_matrix(one, names[k], &a, &r, &c));
        OK(mk_session_matrix(s[1], names[k], &b, &r, &c));
        ck_assert_msg(!memcmp(a, b, (size_t)(r * c) * sizeof *a), "%s differs", names[k]);
    }
    mk_session_free_bytes(bytes);
    mk_session_close(one), mk_session_close(s[0]), mk_session_close(s[1]);
}
END_TEST

/* ---- errors ---- */

static model em[2];

static void errors_setup(void)
{
    tu_dir_setup();
    make_model(&em[0], "a", "8,5", "f32,f16", 2, 1);
    make_model(&em[1], "b", "6", "f64", 1, 2);
}

static void errors_teardown(void)
{
    free_models(em, 2);
    tu_dir_teardown();
}

#define CFG "batch_size: 64\njackknife: 4\n"

START_TEST(feed_errors)
{
    mk_session *s = open_session(with_output(CFG, "out"), em, 2, 0, 1);
    const void *layers[3] = {em[0].raw[0], em[0].raw[1], em[1].raw[0]};
    tu_assert_error(mk_session_feed(s, 1, layers, 64), MK_EUSAGE, "batch 1 before the probe");
    tu_assert_error(mk_session_feed(s, 0, layers, 63), MK_EUSAGE, "batch 0 holds 64 examples");
    tu_assert_error(mk_session_feed(s, 5, layers, 64), MK_EUSAGE, "batch 5 is outside the plan");
    tu_assert_error(mk_session_feed(s, -1, layers, 64), MK_EUSAGE, "outside the plan");
    const void *missing[3] = {em[0].raw[0], NULL, em[1].raw[0]};
    tu_assert_error(mk_session_feed(s, 0, missing, 64), MK_EUSAGE, "model 'a', layer 'layer2' has no data");
    /* NaN in model b's layer at example 70: batch 1, row 6 */
    double saved = ((double *)em[1].raw[0])[70 * 6 + 2];
    ((double *)em[1].raw[0])[70 * 6 + 2] = NAN;
    OK(feed(s, em, 2, 0));
    tu_assert_error(feed(s, em, 2, 1), MK_EDATA, "model 'b', layer 'layer1', batch 1: NaN or Inf at example 70");
    ((double *)em[1].raw[0])[70 * 6 + 2] = INFINITY;
    tu_assert_error(feed(s, em, 2, 1), MK_EDATA, "batch 1: NaN or Inf at example 70");
    ((double *)em[1].raw[0])[70 * 6 + 2] = saved;
    OK(feed(s, em, 2, 1)); /* a refused batch leaves the session as it was */
    tu_assert_error(feed(s, em, 2, 1), MK_EUSAGE, "batch 1 is in this session already");
    OK(feed(s, em, 2, 3));
    tu_assert_error(feed(s, em, 2, 2), MK_EUSAGE, "batch 2 after batch 3; a session is fed batches in ascending order");
    tu_assert_error(mk_session_finish(s), MK_EUSAGE, "batch 2 (examples 128..191) of 5 was neither fed");
    ck_assert_msg(!tu_exists(tu_in("out")), "a failed finish wrote its output folder");
    mk_session_close(s);
}
END_TEST

/* NaN in batch 0 is found by the probe, with the same words. */
START_TEST(nan_in_probe)
{
    mk_session *s = open_session(CFG, em, 2, 0, 1);
    uint16_t saved = ((uint16_t *)em[0].raw[1])[3 * 5 + 1];
    ((uint16_t *)em[0].raw[1])[3 * 5 + 1] = 0x7e00; /* a float16 NaN */
    tu_assert_error(feed(s, em, 2, 0), MK_EDATA, "model 'a', layer 'layer2', batch 0: NaN or Inf at example 3");
    ((uint16_t *)em[0].raw[1])[3 * 5 + 1] = saved;
    OK(feed(s, em, 2, 0));
    mk_session_close(s);
}
END_TEST

START_TEST(declaration_errors)
{
    mk_session *s;
    int id;
    OK(mk_session_open(CFG, NULL, &s));
    OK(mk_session_add_model(s, "a", &id));
    tu_assert_error(mk_session_add_model(s, "a", &id), MK_EUSAGE, "model 'a' is declared twice");
    int64_t dims[2] = {4, 0};
    tu_assert_error(mk_session_add_layer(s, 0, "l", 2, dims, MK_DTYPE_F32), MK_EUSAGE, "dimension 1 is 0");
    tu_assert_error(mk_session_add_layer(s, 0, "l", 1, dims, 7), MK_EUSAGE, "dtype 7 is none of");
    tu_assert_error(mk_session_add_layer(s, 3, "l", 1, dims, MK_DTYPE_F32), MK_EUSAGE, "model 3 is not declared");
    tu_assert_error(mk_session_start(s, N_EX, 0, 1), MK_EUSAGE, "model 'a' has no layer");
    OK(mk_session_add_layer(s, 0, "l", 1, dims, MK_DTYPE_F32));
    tu_assert_error(mk_session_start(s, N_EX, 2, 2), MK_EUSAGE, "rank 2 of 2");
    tu_assert_error(mk_session_start(s, 10, 0, 1), MK_ECONFIG, "batch_size 64 is larger than n = 10");
    tu_assert_error(mk_session_finish(s), MK_EUSAGE, "mk_session_finish is called after mk_session_start");
    OK(mk_session_start(s, N_EX, 0, 1)); /* after a refused start */
    tu_assert_error(mk_session_add_model(s, "b", &id), MK_EUSAGE, "before mk_session_start only");
    ck_assert_int_eq(mk_session_batches(s), 5);
    ck_assert_int_eq(mk_session_batch_rows(s, 4), 44);
    ck_assert_int_eq(mk_session_batch_rows(s, 5), -1);
    mk_session_close(s);
}
END_TEST

START_TEST(config_errors)
{
    mk_session *s = (mk_session *)1;
    tu_assert_error(mk_session_open("shuffle: true\n", NULL, &s), MK_ECONFIG, "or export and use `mpicka run`");
    ck_assert_ptr_null(s);
    tu_assert_error(mk_session_open("epochs: 2\n", NULL, &s), MK_ECONFIG, "'epochs' must be 1 in a session");
    tu_assert_error(mk_session_open("x: {file: a.h5, layers: [l]}\n", NULL, &s), MK_ECONFIG, "a session declares");
    tu_assert_error(mk_session_open("checkpoint: false\n", NULL, &s), MK_ECONFIG, "'checkpoint' is a key of a run");
    tu_assert_error(mk_session_open("batch_size: 2\n", NULL, &s), MK_ECONFIG, "batch_size");
    const char *sets[] = {"estimator=exact", "permutations=3", NULL};
    tu_assert_error(mk_session_open(NULL, sets, &s), MK_ECONFIG, "'permutations' needs a minibatch estimator");
    OK(mk_session_open(NULL, NULL, &s)); /* every default */
    mk_session_close(s);
    mk_session_close(NULL);
    /* A session's resolved config (stored in its cka.h5) parses back as a
     * session's: without the keys of files it would refuse. */
    mk_config cfg, again;
    OK(mk_config_parse_session("batch_size: 64\n", 14, "s", NULL, 0, &cfg));
    tu_assert_lacks(cfg.resolved, "checkpoint:");
    tu_assert_lacks(cfg.resolved, "layer_order:");
    tu_assert_lacks(cfg.resolved, "output:");
    tu_assert_has(cfg.resolved, "batch_size: 64");
    OK(mk_config_parse_session(cfg.resolved, strlen(cfg.resolved), "resolved", NULL, 0, &again));
    ck_assert_str_eq(cfg.resolved, again.resolved);
    mk_config_free(&cfg), mk_config_free(&again);
}
END_TEST

/* Sessions of 3 processes with the batches fed, the states exported. */
static void fed_three(mk_session *s[3], const char *config)
{
    for (int r = 0; r < 3; r++) s[r] = open_session(config, em, 2, r, 3);
    void *probe;
    int64_t plen;
    OK(feed(s[0], em, 2, 0));
    OK(mk_session_probe(s[0], &probe, &plen));
    OK(mk_session_set_probe(s[1], probe, plen));
    OK(mk_session_set_probe(s[2], probe, plen));
    tu_assert_error(mk_session_set_probe(s[2], probe, plen), MK_EUSAGE, "has its probe already");
    mk_session_free_bytes(probe);
    OK(feed(s[0], em, 2, 1));
    OK(feed(s[1], em, 2, 2));
    OK(feed(s[1], em, 2, 3));
    OK(feed(s[2], em, 2, 4));
}

START_TEST(merge_errors)
{
    mk_session *s[3], *other;
    fed_three(s, with_output(CFG, "out"));
    void *b0, *b2, *bo;
    int64_t l0, l2, lo;
    OK(mk_session_export(s[0], &b0, &l0));
    OK(mk_session_export(s[2], &b2, &l2));
    /* a state of another config (seed) */
    other = open_session(CFG "seed: 3\n", em, 2, 0, 1);
    OK(feed(other, em, 2, 0));
    OK(mk_session_export(other, &bo, &lo));
    tu_assert_error(mk_session_merge(s[1], bo, lo), MK_EINPUT, "of another session's config or models");
    mk_session *fresh = open_session(with_output(CFG, "out"), em, 2, 1, 3);
    tu_assert_error(mk_session_set_probe(fresh, b0, l0), MK_EINPUT, "these are a session's exported state");
    mk_session_close(fresh);
    /* its own bytes, or twice the same */
    void *b1;
    int64_t l1;
    OK(mk_session_export(s[1], &b1, &l1));
    tu_assert_error(mk_session_merge(s[1], b1, l1), MK_EUSAGE, "batch 2 is in this session already");
    OK(mk_session_merge(s[1], b2, l2));
    tu_assert_error(mk_session_merge(s[1], b2, l2), MK_EUSAGE, "batch 4 is in this session already");
    /* damaged: cut, a flipped bit, a wrong length, NULL */
    tu_assert_error(mk_session_merge(s[1], b0, l0 - 9), MK_EINPUT, "checksum does not match");
    tu_assert_error(mk_session_merge(s[1], b0, 10), MK_EINPUT, "too short");
    tu_assert_error(mk_session_merge(s[1], NULL, l0), MK_EINPUT, "too short");
    ((unsigned char *)b0)[l0 / 2] ^= 0x10;
    tu_assert_error(mk_session_merge(s[1], b0, l0), MK_EINPUT, "checksum does not match");
    ((unsigned char *)b0)[l0 / 2] ^= 0x10;
    ((unsigned char *)b0)[0] ^= 1;
    tu_assert_error(mk_session_merge(s[1], b0, l0), MK_EINPUT, "wrong magic");
    ((unsigned char *)b0)[0] ^= 1;
    tu_assert_error(mk_session_finish(s[1]), MK_EUSAGE, "batch 0 (examples 0..63) of 5 was neither fed");
    ck_assert_msg(!tu_exists(tu_in("out")), "a failed finish wrote its output folder");
    OK(mk_session_merge(s[1], b0, l0)); /* the refusals left it as it was */
    OK(mk_session_finish(s[1]));
    ck_assert(tu_exists(tu_in("out/cka.h5")));
    tu_assert_error(mk_session_merge(s[1], b0, l0), MK_EUSAGE, "mk_session_merge is called after mk_session_start");
    free(b0), free(b1), free(b2), free(bo);
    for (int r = 0; r < 3; r++) mk_session_close(s[r]);
    mk_session_close(other);
}
END_TEST

/* Bytes that pass the checksum but lie: rewritten with a fresh checksum. */
static void reseal(unsigned char *buf, int64_t len)
{
    uint64_t h = 1469598103934665603ULL;
    for (int64_t i = 0; i < len - 8; i++) h = (h ^ buf[i]) * 1099511628211ULL;
    memcpy(buf + len - 8, &h, 8);
}

START_TEST(hostile_bytes)
{
    mk_session *s[3];
    fed_three(s, CFG);
    void *b;
    int64_t len;
    OK(mk_session_export(s[2], &b, &len));
    unsigned char *c = b;
    unsigned char keep[8]; /* the last sum (the bytes align to nothing) */
    double nan = NAN;
    memcpy(keep, c + len - 16, 8);
    memcpy(c + len - 16, &nan, 8);
    reseal(c, len);
    tu_assert_error(mk_session_merge(s[1], b, len), MK_EINPUT, "not a finite number");
    memcpy(c + len - 16, keep, 8);
    reseal(c, len);
    OK(mk_session_merge(s[1], b, len));
    free(b);
    /* a probe whose scale is no power of two */
    void *p;
    int64_t plen;
    mk_session *t = open_session(CFG, em, 2, 1, 3);
    OK(mk_session_probe(s[0], &p, &plen));
    int64_t text;
    memcpy(&text, (char *)p + 16, 8);
    double three = 3.0;
    memcpy((char *)p + 24 + text + 8, &three, 8); /* the first scale */
    reseal(p, plen);
    tu_assert_error(mk_session_set_probe(t, p, plen), MK_EINPUT, "not a power of two");
    free(p);
    mk_session_close(t);
    for (int r = 0; r < 3; r++) mk_session_close(s[r]);
}
END_TEST

/* As run: a result of another configuration is not replaced unless forced;
 * the same configuration's is. */
static void finish_all(mk_session *s)
{
    for (int64_t g = 0; g < mk_session_batches(s); g++) OK(feed(s, em, 2, g));
    OK(mk_session_finish(s));
    mk_session_close(s);
}

START_TEST(other_results_kept)
{
    finish_all(open_session(with_output(CFG, "out"), em, 2, 0, 1));
    finish_all(open_session(with_output(CFG, "out"), em, 2, 0, 1)); /* a rerun */
    mk_session *s;
    OK(mk_session_open(with_output("batch_size: 64\njackknife: 5\n", "out"), NULL, &s));
    int id;
    OK(mk_session_add_model(s, em[0].name, &id));
    OK(mk_session_add_layer(s, id, em[0].lname[0], em[0].ndims[0], em[0].dims[0], em[0].dtype[0]));
    tu_assert_error(mk_session_start(s, N_EX, 0, 1), MK_ECONFIG, "holds the results of another configuration");
    tu_assert_error(mk_session_start(s, N_EX, 0, 1), MK_ECONFIG, "mk_session_set_force");
    OK(mk_session_set_force(s, 1));
    OK(mk_session_start(s, N_EX, 0, 1));
    const void *layers[1];
    for (int64_t g = 0; g < mk_session_batches(s); g++) {
        layers[0] = em[0].raw[0] + (size_t)(g * 64 * em[0].p[0]) * dtype_size(em[0].dtype[0]);
        OK(mk_session_feed(s, g, layers, mk_session_batch_rows(s, g)));
    }
    OK(mk_session_finish(s));
    mk_session_close(s);
}
END_TEST

TU_MAIN("session", 0,
        TU_CASE("bits", tu_dir_setup, tu_dir_teardown, 600, NULL, hsic1_x_vs_y, exact_with_measures,
                self_hsic0_float32, three_models, matrices_kept, same_files_as_run, round_robin_many_batches),
        TU_CASE("errors", errors_setup, errors_teardown, 120, NULL, feed_errors, nan_in_probe, declaration_errors,
                config_errors, merge_errors, hostile_bytes, other_results_kept))
