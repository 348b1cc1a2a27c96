/* Tests of reading cka.h5 back (mpicka/ckafile.h): files written by the
 * test-side writer (resultfile.c, from the format in docs/output.md), read back, and
 * every way a file can fail to be an mpicka result. */
#include <check.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "mpicka/ckafile.h"
#include "resultfile.h"
#include "testutil.h"

static const double values[6] = {1.0, 0.25, -0.0125, 0.5, NAN, 0.75};
static const char *const xs[] = {"conv1", "block/relu"};
static const char *const ys[] = {"fc, \"head\"", "emb/é", "out"};

static rf_result base(void)
{
    rf_result r = {.nx = 2, .ny = 3, .cka = values, .x_layers = xs, .y_layers = ys, .x_name = "model a",
                   .y_name = "model b"};
    return r;
}

/* Writes r to dir/name and reads it back; returns the verdict. */
static mk_err write_read(const char *name, const rf_result *r, mk_ckafile *f)
{
    char *path = tu_path(tu_dir, name);
    rf_write(path, r);
    mk_err err = mk_ckafile_read(path, f);
    free(path);
    return err;
}

static void check_contents(const mk_ckafile *f)
{
    ck_assert_int_eq(f->nx, 2);
    ck_assert_int_eq(f->ny, 3);
    for (int k = 0; k < 6; k++)
        if (isnan(values[k]))
            ck_assert(isnan(f->cka[k]));
        else
            ck_assert_msg(f->cka[k] == values[k], "cka[%d] = %.17g, wrote %.17g", k, f->cka[k], values[k]);
    for (int k = 0; k < 2; k++) ck_assert_str_eq(f->x_layers[k], xs[k]);
    for (int k = 0; k < 3; k++) ck_assert_str_eq(f->y_layers[k], ys[k]);
}

START_TEST(reads_matrix_names_and_typed_attributes)
{
    rf_result r = base();
    mk_ckafile f;
    ck_assert_int_eq(write_read("a.h5", &r, &f), MK_OK);
    check_contents(&f);
    ck_assert_int_eq(f.nattrs, 21); /* resultfile.c writes 21 root attributes */
    for (int k = 1; k < f.nattrs; k++) ck_assert_int_lt(strcmp(f.attrs[k - 1].name, f.attrs[k].name), 0);
    const mk_attr *a = mk_ckafile_attr(&f, "n");
    ck_assert(a && a->kind == MK_ATTR_INT && a->i == RF_N);
    a = mk_ckafile_attr(&f, "seed");
    ck_assert(a && a->kind == MK_ATTR_UINT && a->u == RF_SEED);
    a = mk_ckafile_attr(&f, "seconds");
    ck_assert(a && a->kind == MK_ATTR_REAL && a->r == RF_SECONDS);
    ck_assert_str_eq(mk_ckafile_text(&f, "config"), RF_CONFIG);
    ck_assert_str_eq(mk_ckafile_text(&f, "x_name"), "model a");
    ck_assert_ptr_null(mk_ckafile_text(&f, "n"));
    ck_assert_ptr_null(mk_ckafile_attr(&f, "no such"));
    mk_ckafile_free(&f);
    ck_assert_ptr_null(f.cka);
}
END_TEST

START_TEST(reads_fixed_length_names)
{
    rf_result r = base();
    r.fixed_strings = 1;
    mk_ckafile f;
    ck_assert_int_eq(write_read("fixed.h5", &r, &f), MK_OK);
    check_contents(&f);
    mk_ckafile_free(&f);
}
END_TEST

/* Without `self` (early results), a self comparison is recognised by equal
 * names, files and layers; with it, the attribute decides. */
START_TEST(self_from_the_attribute_or_inferred)
{
    static const char *const same[] = {"conv1", "block/relu"};
    rf_result r = {.nx = 2, .ny = 2, .cka = values, .x_layers = same, .y_layers = same, .x_name = "m",
                   .y_name = "m", .self = 1};
    mk_ckafile f;
    ck_assert_int_eq(write_read("self.h5", &r, &f), MK_OK);
    ck_assert_int_eq(mk_ckafile_self(&f), 1);
    mk_ckafile_free(&f);
    r.skip = "self";
    ck_assert_int_eq(write_read("old_self.h5", &r, &f), MK_OK);
    ck_assert_ptr_null(mk_ckafile_attr(&f, "self"));
    ck_assert_int_eq(mk_ckafile_self(&f), 1);
    mk_ckafile_free(&f);
    r.self = 0; /* the writer then names y's file acts/b.h5 */
    ck_assert_int_eq(write_read("old_xy.h5", &r, &f), MK_OK);
    ck_assert_int_eq(mk_ckafile_self(&f), 0);
    mk_ckafile_free(&f);
    r = base();
    ck_assert_int_eq(write_read("xy.h5", &r, &f), MK_OK);
    ck_assert_int_eq(mk_ckafile_self(&f), 0);
    mk_ckafile_free(&f);
}
END_TEST

/* Each broken file: the code, and words the message must hold. */
static void expect_failure(const rf_result *r, mk_err code, const char *words1, const char *words2)
{
    mk_ckafile f;
    ck_assert_int_eq(write_read("bad.h5", r, &f), code);
    ck_assert_msg(strstr(mk_errmsg(), "bad.h5") != NULL, "message does not name the file: %s", mk_errmsg());
    ck_assert_msg(strstr(mk_errmsg(), words1) != NULL, "'%s' not in: %s", words1, mk_errmsg());
    ck_assert_msg(strstr(mk_errmsg(), words2) != NULL, "'%s' not in: %s", words2, mk_errmsg());
    mk_ckafile_free(&f);
}

START_TEST(every_missing_or_wrong_part_is_named)
{
    rf_result r = base();
    r.skip = "cka";
    expect_failure(&r, MK_EINPUT, "not an mpicka result", "no dataset /cka");
    r.skip = "x_layers";
    expect_failure(&r, MK_EINPUT, "no dataset /x_layers", "layer names");
    r.skip = "y_layers";
    expect_failure(&r, MK_EINPUT, "no dataset /y_layers", "not an mpicka result");
    r.skip = "x_name";
    expect_failure(&r, MK_EINPUT, "no string attribute 'x_name'", "not an mpicka result");
    r.skip = "y_name";
    expect_failure(&r, MK_EINPUT, "'y_name'", "model's name");
    r = base();
    r.self_as_text = 1;
    expect_failure(&r, MK_EINPUT, "attribute 'self'", "not an integer");
    r = base();
    r.cka_1d = 1;
    expect_failure(&r, MK_EINPUT, "/cka has 1 dimension(s)", "expected 2");
    r = base();
    r.cka_int = 1;
    expect_failure(&r, MK_EINPUT, "/cka", "not a floating-point dataset");
    r = base();
    r.x_layers_short = 1;
    expect_failure(&r, MK_EINPUT, "/x_layers has 1 names", "/cka has 2 rows");
    r = base();
    r.x_layers_numeric = 1;
    expect_failure(&r, MK_EINPUT, "/x_layers", "not a dataset of strings");
}
END_TEST

START_TEST(missing_and_foreign_files)
{
    mk_ckafile f;
    char *path = tu_path(tu_dir, "none.h5");
    ck_assert_int_eq(mk_ckafile_read(path, &f), MK_EINPUT);
    ck_assert_ptr_nonnull(strstr(mk_errmsg(), "none.h5"));
    ck_assert_ptr_nonnull(strstr(mk_errmsg(), "No such file"));
    mk_ckafile_free(&f);
    free(path);
    path = tu_path(tu_dir, "text.h5");
    tu_write_text(path, "layer,a\nb,1\n");
    ck_assert_int_eq(mk_ckafile_read(path, &f), MK_EINPUT);
    ck_assert_ptr_nonnull(strstr(mk_errmsg(), "text.h5' is not an HDF5 file"));
    mk_ckafile_free(&f);
    free(path);
    path = tu_path(tu_dir, "acts.h5");
    hsize_t dims[2] = {4, 2};
    double data[8] = {0};
    tu_write_dataset(path, "layer1", H5T_IEEE_F32LE, 2, dims, data);
    ck_assert_int_eq(mk_ckafile_read(path, &f), MK_EINPUT);
    ck_assert_ptr_nonnull(strstr(mk_errmsg(), "acts.h5': not an mpicka result: no dataset /cka"));
    mk_ckafile_free(&f);
    free(path);
}
END_TEST

/* ---- the optional contents of newer results ------------------------------------ */

static const double errors[6] = {0.012, 0.5, NAN, 0.001, 0.0, 1e-9};
static const double pvalues[6] = {0.000999, 1.0, 0.5, 0.25, NAN, 0.002};

static rf_result full(void)
{
    rf_result r = base();
    r.cka_stderr = errors;
    r.cka_pvalue = pvalues;
    r.meta = RF_DESCRIPTION;
    return r;
}

static void check_same(const double *got, const double *wrote, const char *what)
{
    ck_assert_ptr_nonnull(got);
    for (int k = 0; k < 6; k++)
        ck_assert_msg((isnan(got[k]) && isnan(wrote[k])) || got[k] == wrote[k], "%s[%d] = %.17g, wrote %.17g",
                      what, k, got[k], wrote[k]);
}

static void check_meta(const mk_ckafile *f)
{
    static const char *const names[] = {"debiased", "description",  "estimator",    "jackknife_groups",
                                        "kernel",   "permutations", "rbf_threshold"};
    ck_assert_int_eq(f->nmeta, 7);
    for (int k = 0; k < 7; k++) ck_assert_str_eq(f->meta[k].name, names[k]);
    ck_assert_str_eq(mk_ckafile_meta_text(f, "description"), RF_DESCRIPTION);
    ck_assert_str_eq(mk_ckafile_meta_text(f, "estimator"), RF_META_ESTIMATOR);
    ck_assert_str_eq(mk_ckafile_meta_text(f, "kernel"), RF_META_KERNEL);
    const mk_attr *a = mk_ckafile_meta(f, "rbf_threshold");
    ck_assert(a && a->kind == MK_ATTR_REAL && a->r == RF_META_THRESHOLD);
    a = mk_ckafile_meta(f, "permutations");
    ck_assert(a && a->kind == MK_ATTR_INT && a->i == RF_META_PERMUTATIONS);
    a = mk_ckafile_meta(f, "jackknife_groups");
    ck_assert(a && a->kind == MK_ATTR_INT && a->i == RF_META_GROUPS);
    ck_assert_ptr_null(mk_ckafile_meta_text(f, "debiased"));
    ck_assert_ptr_null(mk_ckafile_meta(f, "no such"));
    /* /meta's estimator is not the root's */
    ck_assert_str_eq(mk_ckafile_text(f, "estimator"), "minibatch linear CKA, unbiased HSIC_1");
}

START_TEST(reads_errors_pvalues_and_meta)
{
    rf_result r = full();
    mk_ckafile f;
    ck_assert_msg(write_read("full.h5", &r, &f) == MK_OK, "%s", mk_errmsg());
    check_contents(&f);
    check_same(f.cka_stderr, errors, "cka_stderr");
    check_same(f.cka_pvalue, pvalues, "cka_pvalue");
    ck_assert_int_eq(f.nattrs, 21);
    check_meta(&f);
    ck_assert_int_eq(f.shown, MK_MATRIX_CKA);
    ck_assert_ptr_eq(mk_ckafile_matrix(&f, MK_MATRIX_CKA), f.cka);
    ck_assert_ptr_eq(mk_ckafile_matrix(&f, MK_MATRIX_STDERR), f.cka_stderr);
    ck_assert_ptr_eq(mk_ckafile_matrix(&f, MK_MATRIX_PVALUE), f.cka_pvalue);
    ck_assert_int_eq(mk_ckafile_choose(&f, "full.h5", MK_MATRIX_PVALUE), MK_OK);
    ck_assert_int_eq(f.shown, MK_MATRIX_PVALUE);
    mk_ckafile_free(&f);
    ck_assert_ptr_null(f.cka_stderr);
    ck_assert_ptr_null(f.meta);
    r.meta_fixed = 1;
    r.fixed_strings = 1;
    ck_assert_msg(write_read("fixed.h5", &r, &f) == MK_OK, "%s", mk_errmsg());
    check_meta(&f);
    mk_ckafile_free(&f);
}
END_TEST

/* Each one alone; results written before them lack all three. */
START_TEST(each_is_optional)
{
    rf_result r = base();
    mk_ckafile f;
    ck_assert_int_eq(write_read("old.h5", &r, &f), MK_OK);
    ck_assert(!f.cka_stderr && !f.cka_pvalue && !f.meta && f.nmeta == 0);
    ck_assert_ptr_null(mk_ckafile_meta_text(&f, "description"));
    ck_assert_ptr_null(mk_ckafile_matrix(&f, MK_MATRIX_STDERR));
    ck_assert_int_eq(mk_ckafile_choose(&f, "dir/old.h5", MK_MATRIX_CKA), MK_OK);
    ck_assert_int_eq(mk_ckafile_choose(&f, "dir/old.h5", MK_MATRIX_PVALUE), MK_EINPUT);
    ck_assert_str_eq(mk_errmsg(), "'dir/old.h5' has no /cka_pvalue (p-value of CKA): run with permutations: R "
                                  "(e.g. --set permutations=1000)");
    ck_assert_int_eq(mk_ckafile_choose(&f, "dir/old.h5", MK_MATRIX_STDERR), MK_EINPUT);
    ck_assert_ptr_nonnull(strstr(mk_errmsg(), "'dir/old.h5' has no /cka_stderr"));
    ck_assert_ptr_nonnull(strstr(mk_errmsg(), "run with jackknife: G"));
    ck_assert_int_eq(f.shown, MK_MATRIX_CKA);
    mk_ckafile_free(&f);
    r.cka_pvalue = pvalues;
    ck_assert_int_eq(write_read("p.h5", &r, &f), MK_OK);
    ck_assert(!f.cka_stderr && f.cka_pvalue && !f.meta);
    mk_ckafile_free(&f);
    r = base();
    r.meta = "exact CKA";
    ck_assert_int_eq(write_read("m.h5", &r, &f), MK_OK);
    ck_assert(!f.cka_stderr && !f.cka_pvalue && f.nmeta == 7);
    ck_assert_str_eq(mk_ckafile_meta_text(&f, "description"), "exact CKA");
    mk_ckafile_free(&f);
}
END_TEST

START_TEST(wrong_optional_contents_are_named)
{
    rf_result r = full();
    r.stderr_transposed = 1;
    expect_failure(&r, MK_EINPUT, "/cka_stderr is 3 by 2", "but /cka is 2 by 3");
    r = full();
    r.pvalue_int = 1;
    expect_failure(&r, MK_EINPUT, "/cka_pvalue", "not a floating-point dataset");
    r = full();
    r.meta_dataset = 1;
    expect_failure(&r, MK_EINPUT, "/meta", "is not a group");
}
END_TEST

START_TEST(matrix_names)
{
    static const char *const names[] = {"cka", "stderr", "pvalue"};
    static const char *const sets[] = {"cka", "cka_stderr", "cka_pvalue"};
    for (int k = 0; k < MK_MATRIX_COUNT; k++) {
        mk_matrix m = MK_MATRIX_PVALUE;
        ck_assert_int_eq(mk_matrix_parse("show", names[k], &m), MK_OK);
        ck_assert_int_eq(m, k);
        ck_assert_str_eq(mk_matrix_name(m), names[k]);
        ck_assert_str_eq(mk_matrix_dataset(m), sets[k]);
    }
    ck_assert_str_eq(mk_matrix_what(MK_MATRIX_STDERR), "standard error of CKA");
    mk_matrix m = MK_MATRIX_STDERR;
    ck_assert_int_eq(mk_matrix_parse("plot", "cka_stderr", &m), MK_EUSAGE);
    ck_assert_str_eq(mk_errmsg(), "plot: --matrix 'cka_stderr': expected cka, stderr or pvalue");
    ck_assert_int_eq(m, MK_MATRIX_STDERR);
}
END_TEST


/* ---- a models result (many models in one pass) ----------------------------------- */

#define MODELS 3
#define GRID 9 /* 3 + 4 + 2 layers */
static const char *const model_names[MODELS] = {"resnet", "vit", "tiny, the small"};
static const int model_layers[MODELS] = {3, 4, 2};
static const int model_offsets[MODELS + 1] = {0, 3, 7, 9};
static double grid[GRID * GRID], grid_se[GRID * GRID], grid_p[GRID * GRID];

/* The whole matrix, made here: asymmetric, so that a transposed or shifted
 * slice shows. */
static void make_grid(void)
{
    for (int i = 0; i < GRID; i++)
        for (int j = 0; j < GRID; j++) {
            grid[i * GRID + j] = (1.0 + (i * 7 + j * 3) % 11) / 12.0;
            grid_se[i * GRID + j] = (i + 1) / 1000.0 + j / 1e6;
            grid_p[i * GRID + j] = 1.0 / (2 + i + 2 * j);
        }
}

static rf_models models_spec(void)
{
    make_grid();
    rf_models m = {.nmodels = MODELS, .names = model_names, .layers = model_layers, .cka = grid,
                   .cka_stderr = grid_se, .cka_pvalue = grid_p, .meta = RF_DESCRIPTION};
    return m;
}

static mk_err read_models_file(const char *name, const rf_result *r, mk_ckafile *f)
{
    return write_read(name, r, f);
}

static void read_good_models(mk_ckafile *f)
{
    rf_models m = models_spec();
    rf_models_made made;
    rf_models_make(&m, &made);
    ck_assert_msg(read_models_file("models.h5", &made.r, f) == MK_OK, "%s", mk_errmsg());
    rf_models_free(&made);
}

START_TEST(reads_a_models_result)
{
    mk_ckafile f;
    read_good_models(&f);
    ck_assert_int_eq(f.nx, GRID);
    ck_assert_int_eq(f.nmodels, MODELS);
    for (int k = 0; k < MODELS; k++) {
        char file[64];
        snprintf(file, sizeof file, "acts/%s.h5", model_names[k]);
        ck_assert_str_eq(f.model_names[k], model_names[k]);
        ck_assert_str_eq(f.model_files[k], file);
    }
    for (int k = 0; k <= MODELS; k++) ck_assert_int_eq(f.model_offsets[k], model_offsets[k]);
    ck_assert_int_eq(f.nmatched, 2);
    ck_assert_str_eq(f.matched_layers[0], "layer0");
    ck_assert_str_eq(f.matched_layers[1], "layer1");
    /* [k][a][b]: layer k of model a against layer k of model b, from the grid made here */
    for (int k = 0; k < 2; k++)
        for (int a = 0; a < MODELS; a++)
            for (int b = 0; b < MODELS; b++) {
                size_t at = ((size_t)k * MODELS + a) * MODELS + b;
                int i = model_offsets[a] + k, j = model_offsets[b] + k;
                ck_assert(f.cka_matched[at] == grid[i * GRID + j]);
                ck_assert(f.cka_matched_stderr[at] == grid_se[i * GRID + j]);
                ck_assert(f.cka_matched_pvalue[at] == grid_p[i * GRID + j]);
            }
    ck_assert_int_eq(mk_ckafile_self(&f), 1);
    ck_assert_str_eq(mk_ckafile_text(&f, "x_name"), "resnet, vit, tiny, the small");
    mk_ckafile_free(&f);
    ck_assert_ptr_null(f.model_names);
    ck_assert_int_eq(f.nmodels, 0);
    rf_result r = base(); /* a two-model result has none of it */
    ck_assert_int_eq(write_read("xy.h5", &r, &f), MK_OK);
    ck_assert(f.nmodels == 0 && !f.model_names && !f.model_offsets && f.nmatched == 0 && !f.cka_matched);
    mk_ckafile_free(&f);
}
END_TEST

static void check_block(const mk_ckafile *p, int a, int b)
{
    int r0 = model_offsets[a], c0 = model_offsets[b];
    char file[64];
    ck_assert_int_eq(p->nx, model_layers[a]);
    ck_assert_int_eq(p->ny, model_layers[b]);
    ck_assert_int_eq(p->nmodels, 0);
    for (int i = 0; i < p->nx; i++)
        for (int j = 0; j < p->ny; j++) {
            int at = (r0 + i) * GRID + c0 + j;
            ck_assert_msg(p->cka[i * p->ny + j] == grid[at], "block %d,%d cell %d,%d", a, b, i, j);
            ck_assert(p->cka_stderr[i * p->ny + j] == grid_se[at]);
            ck_assert(p->cka_pvalue[i * p->ny + j] == grid_p[at]);
        }
    for (int i = 0; i < p->nx; i++) {
        snprintf(file, sizeof file, "layer%d", i);
        ck_assert_str_eq(p->x_layers[i], file);
    }
    ck_assert_str_eq(mk_ckafile_text(p, "x_name"), model_names[a]);
    ck_assert_str_eq(mk_ckafile_text(p, "y_name"), model_names[b]);
    snprintf(file, sizeof file, "acts/%s.h5", model_names[b]);
    ck_assert_str_eq(mk_ckafile_text(p, "y_file"), file);
    ck_assert_int_eq(mk_ckafile_self(p), a == b);
    ck_assert_ptr_null(mk_ckafile_attr(p, "models"));
    for (int k = 1; k < p->nattrs; k++) ck_assert_int_lt(strcmp(p->attrs[k - 1].name, p->attrs[k].name), 0);
    ck_assert_int_eq(p->nattrs, 21); /* as many as a two-model result's */
    ck_assert_str_eq(mk_ckafile_meta_text(p, "description"), RF_DESCRIPTION);
    ck_assert_str_eq(mk_ckafile_text(p, "config"), RF_CONFIG);
}

START_TEST(pair_slices_every_block)
{
    mk_ckafile f, p;
    read_good_models(&f);
    for (int a = 0; a < MODELS; a++)
        for (int b = 0; b < MODELS; b++) {
            ck_assert_msg(mk_ckafile_pair(&f, "models.h5", model_names[a], model_names[b], &p) == MK_OK, "%s",
                          mk_errmsg());
            check_block(&p, a, b);
            ck_assert_int_eq(mk_ckafile_choose(&p, "models.h5", MK_MATRIX_PVALUE), MK_OK);
            mk_ckafile_free(&p);
        }
    /* "A,B" with a comma inside a name */
    ck_assert_int_eq(mk_ckafile_pair_spec(&f, "models.h5", "plot", "tiny, the small,resnet", &p), MK_OK);
    check_block(&p, 2, 0);
    mk_ckafile_free(&p);
    ck_assert_int_eq(mk_ckafile_pair_spec(&f, "models.h5", "show", "vit,tiny, the small", &p), MK_OK);
    check_block(&p, 1, 2);
    mk_ckafile_free(&p);
    mk_ckafile_free(&f);
}
END_TEST

static void expect_usage(mk_err got, const char *words1, const char *words2)
{
    ck_assert_int_eq(got, MK_EUSAGE);
    ck_assert_msg(strstr(mk_errmsg(), words1) != NULL, "'%s' not in: %s", words1, mk_errmsg());
    ck_assert_msg(strstr(mk_errmsg(), words2) != NULL, "'%s' not in: %s", words2, mk_errmsg());
}

START_TEST(pair_and_matched_mistakes)
{
    mk_ckafile f, p;
    read_good_models(&f);
    expect_usage(mk_ckafile_pair(&f, "models.h5", "resnet", "bert", &p), "'models.h5' has no model 'bert'",
                 "(its models: resnet, vit, tiny, the small)");
    mk_ckafile_free(&p);
    const char *bad[] = {"resnet", ",vit", "vit,", ""};
    for (int k = 0; k < 4; k++) {
        expect_usage(mk_ckafile_pair_spec(&f, "models.h5", "plot", bad[k], &p), "plot: --pair '",
                     "expected A,B (two model names");
        mk_ckafile_free(&p);
    }
    expect_usage(mk_ckafile_pair_spec(&f, "models.h5", "show", "vit,vit,resnet", &p), "no model 'vit,resnet'",
                 "its models: resnet");
    mk_ckafile_free(&p);
    expect_usage(mk_ckafile_matched(&f, "models.h5", "layer3", &p), "--matched 'layer3': not a layer every model",
                 "(those are: layer0, layer1)");
    mk_ckafile_free(&p);
    mk_ckafile_free(&f);
    rf_result r = base();
    ck_assert_int_eq(write_read("xy.h5", &r, &f), MK_OK);
    expect_usage(mk_ckafile_pair(&f, "xy.h5", "model a", "model b", &p), "--pair needs the result of a run with "
                 "models:", "'xy.h5' compares model a with model b");
    mk_ckafile_free(&p);
    expect_usage(mk_ckafile_pair_spec(&f, "xy.h5", "plot", "model a,model b", &p), "--pair needs", "xy.h5");
    mk_ckafile_free(&p);
    expect_usage(mk_ckafile_matched(&f, "xy.h5", "conv1", &p), "--matched needs the result of a run with models",
                 "xy.h5");
    mk_ckafile_free(&p);
    mk_ckafile_free(&f);
    /* models without a shared layer */
    rf_models m = models_spec();
    rf_models_made made;
    rf_models_make(&m, &made);
    made.r.nmatched = 0;
    ck_assert_msg(read_models_file("none.h5", &made.r, &f) == MK_OK, "%s", mk_errmsg());
    ck_assert(f.nmatched == 0 && !f.cka_matched);
    expect_usage(mk_ckafile_matched(&f, "none.h5", "layer0", &p), "--matched 'layer0'",
                 "no layer of 'none.h5' is shared by every model");
    mk_ckafile_free(&p);
    mk_ckafile_free(&f);
    rf_models_free(&made);
}
END_TEST

START_TEST(matched_is_one_layer_across_models)
{
    mk_ckafile f, p;
    read_good_models(&f);
    for (int k = 0; k < 2; k++) {
        char layer[16];
        snprintf(layer, sizeof layer, "layer%d", k);
        ck_assert_msg(mk_ckafile_matched(&f, "models.h5", layer, &p) == MK_OK, "%s", mk_errmsg());
        ck_assert(p.nx == MODELS && p.ny == MODELS && p.matched == 1 && p.nmodels == 0);
        for (int a = 0; a < MODELS; a++) {
            ck_assert_str_eq(p.x_layers[a], model_names[a]);
            ck_assert_str_eq(p.y_layers[a], model_names[a]);
            for (int b = 0; b < MODELS; b++) {
                int at = (model_offsets[a] + k) * GRID + model_offsets[b] + k; /* found by its name, layer<k> */
                ck_assert(p.cka[a * MODELS + b] == grid[at]);
                ck_assert(p.cka_stderr[a * MODELS + b] == grid_se[at]);
                ck_assert(p.cka_pvalue[a * MODELS + b] == grid_p[at]);
            }
        }
        ck_assert_str_eq(mk_ckafile_text(&p, "x_name"), layer);
        ck_assert_str_eq(mk_ckafile_text(&p, "y_name"), layer);
        ck_assert_int_eq(mk_ckafile_self(&p), 1);
        ck_assert_ptr_null(mk_ckafile_attr(&p, "models"));
        mk_ckafile_free(&p);
    }
    mk_ckafile_free(&f);
}
END_TEST

/* Each broken models file: the verdict names the file and the dataset. */
static void expect_models_failure(const rf_result *r, const char *words1, const char *words2)
{
    expect_failure(r, MK_EINPUT, words1, words2);
}

START_TEST(every_wrong_models_part_is_named)
{
    rf_models m = models_spec();
    rf_models_made made;
    rf_models_make(&m, &made);
    rf_result good = made.r, r;
    static const char *const parts[] = {"model_names", "model_files", "model_offsets", "matched_layers",
                                        "cka_matched"};
    for (int k = 0; k < 5; k++) {
        r = good;
        r.skip = parts[k];
        expect_models_failure(&r, "a models result (attribute 'models' = 3) without the dataset /", parts[k]);
    }
    r = good;
    r.models_attr = -2;
    expect_models_failure(&r, "attribute 'models' is -2", "expected 1 to 9");
    r.models_attr = 10;
    expect_models_failure(&r, "attribute 'models' is 10", "expected 1 to 9");
    r.models_attr = 4;
    expect_models_failure(&r, "/model_names has 3 entries", "but attribute 'models' is 4");
    r = good;
    r.models_as_text = 1;
    expect_models_failure(&r, "attribute 'models'", "is not an integer");
    static const long long starts[] = {1, 3, 7, 9}, back[] = {0, 5, 4, 9}, short_end[] = {0, 3, 7, 8};
    r = good;
    r.model_offsets = starts;
    expect_models_failure(&r, "/model_offsets starts at 1", "expected 0");
    r.model_offsets = back;
    expect_models_failure(&r, "/model_offsets is not strictly increasing", "value 3 is 4 after 5");
    r.model_offsets = short_end;
    expect_models_failure(&r, "/model_offsets ends at 8", "/cka has 9 layers");
    r = good;
    r.offsets_count = 3;
    expect_models_failure(&r, "/model_offsets has 3 values", "expected 4");
    r = good;
    r.offsets_float = 1;
    expect_models_failure(&r, "/model_offsets", "not an integer dataset");
    static const char *const twice[] = {"resnet", "vit", "resnet"}, *const blank[] = {"resnet", "", "x"};
    r = good;
    r.model_names = twice;
    expect_models_failure(&r, "/model_names holds 'resnet' twice", "unique");
    r.model_names = blank;
    expect_models_failure(&r, "/model_names", "name 2 of 3 is empty");
    r = good;
    r.matched_first = 3;
    expect_models_failure(&r, "/cka_matched is 3 by 3 by 3", "expected 2 by 3 by 3");
    static const char *const three[] = {"layer0", "layer1", "layer2"};
    static double cube[27];
    r = good;
    r.nmatched = 3;
    r.matched_layers = three;
    r.cka_matched = cube;
    r.cka_matched_stderr = r.cka_matched_pvalue = NULL;
    expect_models_failure(&r, "/matched_layers has 3 layers", "more than the smallest model has (2)");
    r = good;
    r.ny = GRID - 1;
    r.cka_stderr = r.cka_pvalue = NULL;
    expect_models_failure(&r, "attribute 'models' marks a models result", "/cka is 9 by 8, not square");
    rf_models_free(&made);
}
END_TEST

TU_MAIN("ckafile", 0,
        TU_CASE("read", tu_dir_setup, tu_dir_teardown, 0, NULL, reads_matrix_names_and_typed_attributes,
                reads_fixed_length_names, self_from_the_attribute_or_inferred, every_missing_or_wrong_part_is_named,
                missing_and_foreign_files, reads_errors_pvalues_and_meta, each_is_optional,
                wrong_optional_contents_are_named, matrix_names, reads_a_models_result, pair_slices_every_block,
                pair_and_matched_mistakes, matched_is_one_layer_across_models, every_wrong_models_part_is_named))
