/* Tests of reading cka.h5 back (mpicka/ckafile.h): files written by the
 * test-side writer (resultfile.c, from the README's format), read back, and
 * every way a file can fail to be an mpicka result. */
#include <check.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "mpicka/ckafile.h"
#include "resultfile.h"
#include "testutil.h"

static char *dir;

static void setup(void) { dir = tu_tmpdir(); }

static void teardown(void)
{
    tu_rmrf(dir);
    free(dir);
}

static const double values[6] = {1.0, 0.25, -0.0125, 0.5, NAN, 0.75};
static const char *const xs[] = {"conv1", "block/relu"};
static const char *const ys[] = {"fc, \"head\"", "emb/é", "out"};

static rf_result base(void)
{
    rf_result r = {2, 3, values, xs, ys, "model a", "model b", 0, NULL, 0, 0, 0, 0, 0, 0};
    return r;
}

/* Writes r to dir/name and reads it back; returns the verdict. */
static mk_err write_read(const char *name, const rf_result *r, mk_ckafile *f)
{
    char *path = tu_path(dir, name);
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
    ck_assert_int_eq(f.nattrs, 20);
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
    rf_result r = {2, 2, values, same, same, "m", "m", 1, NULL, 0, 0, 0, 0, 0, 0};
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
    char *path = tu_path(dir, "none.h5");
    ck_assert_int_eq(mk_ckafile_read(path, &f), MK_EINPUT);
    ck_assert_ptr_nonnull(strstr(mk_errmsg(), "none.h5"));
    ck_assert_ptr_nonnull(strstr(mk_errmsg(), "No such file"));
    mk_ckafile_free(&f);
    free(path);
    path = tu_path(dir, "text.h5");
    tu_write_text(path, "layer,a\nb,1\n");
    ck_assert_int_eq(mk_ckafile_read(path, &f), MK_EINPUT);
    ck_assert_ptr_nonnull(strstr(mk_errmsg(), "text.h5' is not an HDF5 file"));
    mk_ckafile_free(&f);
    free(path);
    path = tu_path(dir, "acts.h5");
    hsize_t dims[2] = {4, 2};
    double data[8] = {0};
    tu_write_dataset(path, "layer1", H5T_IEEE_F32LE, 2, dims, data);
    ck_assert_int_eq(mk_ckafile_read(path, &f), MK_EINPUT);
    ck_assert_ptr_nonnull(strstr(mk_errmsg(), "acts.h5': not an mpicka result: no dataset /cka"));
    mk_ckafile_free(&f);
    free(path);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("ckafile");
    TCase *tc = tcase_create("read");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, reads_matrix_names_and_typed_attributes);
    tcase_add_test(tc, reads_fixed_length_names);
    tcase_add_test(tc, self_from_the_attribute_or_inferred);
    tcase_add_test(tc, every_missing_or_wrong_part_is_named);
    tcase_add_test(tc, missing_and_foreign_files);
    suite_add_tcase(s, tc);
    return tu_run_suite(s, 1);
}
