/* Tests of `mpicka show` (mpicka/show.h) on cka.h5 files from the test-side
 * writer: the CSV is parsed back (RFC 4180) and its numbers compared bit for
 * bit, the JSON is run through a validator written here and its numbers
 * compared, the table is checked for alignment and provenance; and the CSV
 * is compared with the cka.csv of a real `mpicka run`. */
#include <check.h>
#include <ctype.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mpicka/show.h"
#include "mpicka/text.h"
#include "resultfile.h"
#include "testutil.h"

/* 3 by 4, with NaN, a negative value, awkward names. */
static const double values[12] = {1.0,  0.5,       1.0 / 3.0, NAN, -0.0125, 0.1 + 0.2, 1e-300, 0.999999999999,
                                  0.25, 2.0 / 7.0, 0.0,       0.75};
static const char *const xs[] = {"conv1", "block/\"quoted\", with comma",
                                 "a/very/long/layer/path/that/goes/on/and/on/to/the/end"};
static const char *const ys[] = {"fc", "couche/é", "tab\there back\\slash", "bad \xff byte"};

/* Standard errors and p-values of newer results, for the same cells. */
static const double errors[12] = {0.012, 0.0, 0.25, NAN, NAN, 0.0234, 1e-300, 0.0005, 0.001, 0.1, 0.0, 0.03};
static const double pvalues[12] = {0.000999, 1.0, 0.5, NAN, 0.3, 0.0001, 0.04, 0.2, 0.9, 0.001, 0.75, 0.05};

static char *write_result(const char *name, const char *skip, int full)
{
    char *path = tu_path(tu_dir, name);
    rf_result r = {.nx = 3, .ny = 4, .cka = values, .x_layers = xs, .y_layers = ys, .x_name = "alpha",
                   .y_name = "beta", .skip = skip};
    if (full) {
        r.cka_stderr = errors;
        r.cka_pvalue = pvalues;
        r.meta = RF_DESCRIPTION;
    }
    rf_write(path, &r);
    return path;
}

static char *write_file(const char *name, const char *skip) { return write_result(name, skip, 0); }

/* mk_show_write's output of matrix m of the file at path (malloc'd). */
static char *show_matrix(const char *path, mk_show_format fmt, int width, mk_matrix m)
{
    mk_ckafile f;
    char *buf = NULL;
    size_t len = 0;
    ck_assert_msg(mk_ckafile_read(path, &f) == MK_OK, "%s", mk_errmsg());
    ck_assert_msg(mk_ckafile_choose(&f, path, m) == MK_OK, "%s", mk_errmsg());
    FILE *out = open_memstream(&buf, &len);
    ck_assert_int_eq(mk_show_write(out, &f, fmt, width), MK_OK);
    fclose(out);
    mk_ckafile_free(&f);
    return buf;
}

static char *show(const char *path, mk_show_format fmt, int width)
{
    return show_matrix(path, fmt, width, MK_MATRIX_CKA);
}

static int same_double(double a, double b) { return (isnan(a) && isnan(b)) || memcmp(&a, &b, sizeof a) == 0; }

/* ---- CSV --------------------------------------------------------------------------- */

/* One RFC 4180 field at *s into out (size cap); returns the delimiter that
 * ended it (',', '\n' or '\0') and moves *s past it. */
static char csv_next(const char **s, char *out, size_t cap)
{
    size_t n = 0;
    const char *p = *s;
    if (*p == '"') {
        for (p++; !(*p == '"' && p[1] != '"'); p++) {
            ck_assert_msg(*p != '\0', "unterminated quoted field");
            if (*p == '"') p++;
            if (n + 1 < cap) out[n++] = *p;
        }
        p++;
    } else {
        for (; *p && *p != ',' && *p != '\n'; p++) {
            ck_assert_msg(*p != '"', "bare quote in a field");
            if (n + 1 < cap) out[n++] = *p;
        }
    }
    out[n] = '\0';
    char delim = *p;
    *s = *p ? p + 1 : p;
    return delim;
}

START_TEST(csv_round_trips_names_and_values_exactly)
{
    char *path = write_file("r.h5", NULL), *csv = show(path, MK_SHOW_CSV, 0), field[256];
    const char *s = csv;
    ck_assert_int_eq(csv_next(&s, field, sizeof field), ',');
    ck_assert_str_eq(field, "layer");
    for (int j = 0; j < 4; j++) {
        ck_assert_int_eq(csv_next(&s, field, sizeof field), j < 3 ? ',' : '\n');
        ck_assert_str_eq(field, ys[j]);
    }
    for (int i = 0; i < 3; i++) {
        ck_assert_int_eq(csv_next(&s, field, sizeof field), ',');
        ck_assert_str_eq(field, xs[i]);
        for (int j = 0; j < 4; j++) {
            ck_assert_int_eq(csv_next(&s, field, sizeof field), j < 3 ? ',' : '\n');
            char *end;
            double v = strtod(field, &end);
            ck_assert_msg(*end == '\0' && same_double(v, values[i * 4 + j]), "cell %d,%d: '%s'", i, j, field);
        }
    }
    ck_assert_int_eq(*s, '\0');
    ck_assert_ptr_nonnull(strstr(csv, "\"block/\"\"quoted\"\", with comma\","));
    /* the shortest text that reads back as the same double, as Python's repr */
    ck_assert_ptr_nonnull(strstr(csv, "\nconv1,1,0.5,0.3333333333333333,nan\n"));
    free(csv);
    free(path);
}
END_TEST

/* The CSV of a real run's cka.h5 is its cka.csv, byte for byte. */
START_TEST(csv_is_what_a_run_writes)
{
    char cmd[4096], *out;
    snprintf(
        cmd, sizeof cmd,
        "cd '%s' && '%s' synth a.h5 --n 120 --layers 3 --names 'c1,b/\"q\",fc' --seed 4 && "
        "printf 'x:\\n  file: a.h5\\n  layers: [c1, \"b/*\", fc]\\nbatch_size: 40\\noutput: out\\n' > c.yaml",
        tu_dir, MK_TEST_EXE);
    ck_assert_msg(tu_run(cmd, &out) == 0, "%s", out);
    free(out);
    ck_assert_msg(tu_mpicka(2, tu_dir, "run c.yaml", &out) == 0, "%s", out);
    free(out);
    char *h5 = tu_path(tu_dir, "out/cka.h5"), *csvpath = tu_path(tu_dir, "out/cka.csv"), *shown, *stored;
    shown = show(h5, MK_SHOW_CSV, 0);
    snprintf(cmd, sizeof cmd, "cat '%s'", csvpath);
    tu_assert_exit(tu_run(cmd, &stored), 0);
    ck_assert_str_eq(shown, stored);
    free(shown);
    free(stored);
    free(h5);
    free(csvpath);
}
END_TEST

/* ---- JSON: a validator written from RFC 8259 --------------------------------------- */

static int j_value(const char **p);

static void j_ws(const char **p)
{
    while (**p == ' ' || **p == '\n' || **p == '\t' || **p == '\r') (*p)++;
}

static int j_string(const char **p)
{
    const char *s = *p;
    if (*s++ != '"') return 0;
    while (*s != '"') {
        if ((unsigned char)*s < 0x20) return 0;
        if (*s == '\\') {
            s++;
            if (*s == 'u') {
                for (int k = 1; k <= 4; k++)
                    if (!isxdigit((unsigned char)s[k])) return 0;
                s += 4;
            } else if (!strchr("\"\\/bfnrt", *s) || !*s) {
                return 0;
            }
        }
        s++;
    }
    *p = s + 1;
    return 1;
}

static int j_number(const char **p)
{
    const char *s = *p;
    if (*s == '-') s++;
    if (*s == '0')
        s++;
    else if (*s >= '1' && *s <= '9')
        while (isdigit((unsigned char)*s)) s++;
    else
        return 0;
    if (*s == '.') {
        if (!isdigit((unsigned char)*++s)) return 0;
        while (isdigit((unsigned char)*s)) s++;
    }
    if (*s == 'e' || *s == 'E') {
        if (*++s == '+' || *s == '-') s++;
        if (!isdigit((unsigned char)*s)) return 0;
        while (isdigit((unsigned char)*s)) s++;
    }
    *p = s;
    return 1;
}

/* [v, ...] or {"k": v, ...}: close is ']' or '}'. */
static int j_list(const char **p, char close)
{
    (*p)++;
    j_ws(p);
    if (**p == close) {
        (*p)++;
        return 1;
    }
    for (;;) {
        if (close == '}') {
            j_ws(p);
            if (!j_string(p)) return 0;
            j_ws(p);
            if (*(*p)++ != ':') return 0;
        }
        if (!j_value(p)) return 0;
        j_ws(p);
        if (**p == close) {
            (*p)++;
            return 1;
        }
        if (*(*p)++ != ',') return 0;
    }
}

static int j_value(const char **p)
{
    j_ws(p);
    if (**p == '"') return j_string(p);
    if (**p == '[') return j_list(p, ']');
    if (**p == '{') return j_list(p, '}');
    static const char *const words[] = {"true", "false", "null"};
    for (int k = 0; k < 3; k++)
        if (strncmp(*p, words[k], strlen(words[k])) == 0) {
            *p += strlen(words[k]);
            return 1;
        }
    return j_number(p);
}

static int json_valid(const char *text)
{
    const char *p = text;
    if (!j_value(&p)) return 0;
    j_ws(&p);
    return *p == '\0';
}

/* The numbers of the array called key, row after row (null as NaN). */
static int json_array(const char *text, const char *key, double *out, int max)
{
    char quoted[64];
    snprintf(quoted, sizeof quoted, "\"%s\": [", key);
    const char *start = strstr(text, quoted);
    ck_assert_msg(start != NULL, "no %s in:\n%s", quoted, text);
    char *p = (char *)start + strlen(quoted) - 1;
    int n = 0, depth = 0;
    while (*p && n < max) {
        if (*p == '[' || *p == ']') {
            depth += *p == '[' ? 1 : -1;
            p++;
            if (depth == 0) break;
        } else if (strncmp(p, "null", 4) == 0) {
            out[n++] = NAN;
            p += 4;
        } else if (*p == '-' || isdigit((unsigned char)*p)) {
            out[n++] = strtod(p, &p);
        } else {
            p++;
        }
    }
    return n;
}

static int json_cka(const char *text, double *out, int max) { return json_array(text, "cka", out, max); }

START_TEST(json_is_valid_with_exact_numbers_and_attributes)
{
    char *path = write_file("r.h5", NULL), *json = show(path, MK_SHOW_JSON, 0);
    ck_assert_msg(json_valid(json), "not valid JSON:\n%s", json);
    ck_assert_msg(!json_valid("{\"a\": [1, 2,]}") && !json_valid("{\"a\": \"x\ty\"}") && !json_valid("[nan]"),
                  "the validator accepts invalid JSON");
    double got[16];
    ck_assert_int_eq(json_cka(json, got, 16), 12);
    for (int k = 0; k < 12; k++) ck_assert_msg(same_double(got[k], values[k]), "cka[%d] = %.17g", k, got[k]);
    const char *expect[] = {
        "\"x_layers\": [\"conv1\", \"block/\\\"quoted\\\", with comma\", \"a/very/long/",
        "\"y_layers\": [\"fc\", \"couche/é\", \"tab\\there back\\\\slash\", \"bad \\ufffd byte\"]",
        "[1, 0.5, 0.3333333333333333, null]",
        "\"n\": 1000",
        "\"seed\": 12345678901234567890",
        "\"seconds\": 1.25",
        "\"self\": 0",
        "\"config\": \"x:\\n  file: acts/a.h5\\n  layers: [\\\"conv*\\\"]\\n",
        "\"x_name\": \"alpha\"",
        "\"precision\": \"float64\"",
    };
    for (size_t k = 0; k < sizeof expect / sizeof expect[0]; k++)
        ck_assert_msg(strstr(json, expect[k]) != NULL, "'%s' not in:\n%s", expect[k], json);
    free(json);
    free(path);
}
END_TEST

/* ---- table ----------------------------------------------------------------------------- */

static int width_of(const char *s, size_t len)
{
    int n = 0;
    for (size_t k = 0; k < len; k++) n += ((unsigned char)s[k] & 0xc0) != 0x80;
    return n;
}

/* The display width of line number `line` (from 0) of text. */
static int line_width(const char *text, int line)
{
    const char *s = text;
    for (int k = 0; k < line; k++) s = strchr(s, '\n') + 1;
    return width_of(s, strcspn(s, "\n"));
}

START_TEST(table_is_aligned_and_tells_the_provenance)
{
    char *path = write_file("r.h5", NULL), *t = show(path, MK_SHOW_TABLE, 120);
    ck_assert_msg(strncmp(t, "CKA of alpha (rows, 3 layers) vs beta (columns, 4 layers)\n\n", 59) == 0, "%s",
                  t);
    int w = line_width(t, 2);
    for (int line = 3; line <= 5; line++)
        ck_assert_msg(line_width(t, line) == w, "line %d misaligned:\n%s", line, t);
    const char *expect[] = {
        "\n                                     fc couche/é ...ack\\slash bad ? byte\n",
        "\nconv1                             1.000    0.500        0.333        nan\n",
        "\nblock/\"quoted\", with comma       -0.013    0.300        0.000      1.000\n",
        "\n...hat/goes/on/and/on/to/the/end  0.250    0.286        0.000      0.750\n",
        "  x model            alpha (acts/a.h5)\n",
        "  y model            beta (acts/b.h5)\n",
        "  n                  1000\n",
        "  batch_size         256\n",
        "  batches            3\n",
        "  dropped per epoch  1\n",
        "  epochs             1\n",
        "  shuffle            no\n",
        "  seed               12345678901234567890\n",
        "  ranks              3\n",
        "  BLAS threads       1\n",
        "  precision          float64\n",
        "  version            0.1.0\n",
        "  time taken         1.250 s\n",
        "  seconds_total      434.8921778\n", /* the shortest text that reads back the same */
        "  estimator          minibatch linear CKA, unbiased HSIC_1\n",
        "config (resolved; save it to a file to run again):\n  x:\n    file: acts/a.h5\n    layers: "
        "[\"conv*\"]\n",
    };
    for (size_t k = 0; k < sizeof expect / sizeof expect[0]; k++)
        ck_assert_msg(strstr(t, expect[k]) != NULL, "'%s' not in:\n%s", expect[k], t);
    free(t);
    free(path);
}
END_TEST

START_TEST(table_splits_wide_matrices_and_marks_what_is_missing)
{
    char *path = tu_path(tu_dir, "wide.h5");
    rf_write_simple(path, 3, 30, 0);
    char *t = show(path, MK_SHOW_TABLE, 80);
    for (const char *s = t; *s; s += strcspn(s, "\n") + (s[strcspn(s, "\n")] != '\0'))
        ck_assert_msg(width_of(s, strcspn(s, "\n")) <= 80, "line too wide:\n%.*s", (int)strcspn(s, "\n"), s);
    ck_assert_ptr_nonnull(strstr(t, "columns 1-"));
    ck_assert_ptr_nonnull(strstr(t, "-30 of 30:\n"));
    char name[32];
    for (int j = 0; j < 30; j++) {
        int n = 0;
        snprintf(name, sizeof name, " y/layer%d ", j);
        n += tu_count(t, name);
        snprintf(name, sizeof name, " y/layer%d\n", j);
        n += tu_count(t, name);
        ck_assert_msg(n == 1, "y/layer%d is there %d times in:\n%s", j, n, t);
    }
    free(t);
    free(path);
    path = write_file("partial.h5", "seconds");
    t = show(path, MK_SHOW_TABLE, 0);
    ck_assert_ptr_nonnull(strstr(t, "  time taken         - (not stored)\n"));
    free(t);
    free(path);
    path = tu_path(tu_dir, "self.h5");
    rf_write_simple(path, 2, 2, 1);
    t = show(path, MK_SHOW_TABLE, 0);
    ck_assert_ptr_nonnull(strstr(t, "CKA of alpha (rows, 2 layers) against itself\n"));
    ck_assert_ptr_nonnull(strstr(t, "  y model            x against itself\n"));
    free(t);
    free(path);
}
END_TEST

/* ---- standard errors, p-values and how the matrix was made --------------------------- */

/* Lines from..to (from 0) of text are equally wide. */
static void assert_aligned(const char *text, int from, int to)
{
    int w = line_width(text, from);
    for (int line = from + 1; line <= to; line++)
        ck_assert_msg(line_width(text, line) == w, "line %d misaligned:\n%s", line, text);
}

START_TEST(table_shows_errors_beside_values_and_the_method)
{
    char *path = write_result("full.h5", NULL, 1), *t = show(path, MK_SHOW_TABLE, 120);
    /* the description is broken after a "; " to fit 120 characters */
    const char *head = "CKA of alpha (rows, 3 layers) vs beta (columns, 4 layers)\nminibatch CKA, unbiased "
                       "HSIC_1, RBF kernel (bandwidth 0.5 x median distance); jackknife over 20 groups;\n1000 "
                       "permutations\neach cell: CKA±standard error (jackknife)\n\n";
    ck_assert_msg(strncmp(t, head, strlen(head)) == 0, "%s", t);
    assert_aligned(t, 5, 8);
    const char *expect[] = {
        "\n                                          fc    couche/é ...ack\\slash  bad ? byte\n",
        "\nconv1                            1.000±0.012 0.500±0.000  0.333±0.250         nan\n",
        "\nblock/\"quoted\", with comma        -0.013±nan 0.300±0.023  0.000±0.000 1.000±0.001\n",
        "\n...hat/goes/on/and/on/to/the/end 0.250±0.001 0.286±0.100  0.000±0.000 0.750±0.030\n",
        "  y model            beta (acts/b.h5)\n  method             minibatch CKA, unbiased HSIC_1, RBF "
        "kernel (bandwidth 0.5 x median distance);\n                     jackknife over 20 groups; 1000 "
        "permutations\n  n ",
        "\nmethod settings (/meta):\n  debiased           yes\n  estimator          hsic1\n"
        "  jackknife_groups   20\n  kernel             rbf\n  permutations       1000\n"
        "  rbf_threshold      0.5\n\nconfig (resolved",
        "  estimator          minibatch linear CKA, unbiased HSIC_1\n",
    };
    for (size_t k = 0; k < sizeof expect / sizeof expect[0]; k++)
        ck_assert_msg(strstr(t, expect[k]) != NULL, "'%s' not in:\n%s", expect[k], t);
    free(t);
    /* runs that store the description as the root estimator too: said once */
    rf_result r = {.nx = 3, .ny = 4, .cka = values, .x_layers = xs, .y_layers = ys, .x_name = "alpha",
                   .y_name = "beta", .meta = "minibatch linear CKA, unbiased HSIC_1"};
    rf_write(path, &r);
    t = show(path, MK_SHOW_TABLE, 120);
    ck_assert_msg(strncmp(t, "CKA of alpha (rows, 3 layers) vs beta (columns, 4 layers)\nminibatch linear CKA, "
                             "unbiased HSIC_1\n\n",
                          97) == 0,
                  "%s", t);
    ck_assert_ptr_nonnull(strstr(t, "  method             minibatch linear CKA, unbiased HSIC_1\n  n "));
    ck_assert_int_eq(tu_count(t, "minibatch linear CKA"), 2);
    free(t);
    r.meta = ""; /* an empty description is none */
    rf_write(path, &r);
    t = show(path, MK_SHOW_TABLE, 120);
    ck_assert_msg(strncmp(t, "CKA of alpha (rows, 3 layers) vs beta (columns, 4 layers)\n\n", 59) == 0, "%s", t);
    ck_assert(!strstr(t, "  method ") && strstr(t, "\nmethod settings (/meta):\n  debiased "));
    free(t);
    free(path);
}
END_TEST

/* With a column of "0.123±0.045" values, fewer columns fit, none is lost. */
START_TEST(errors_wrap_in_narrow_tables)
{
    char *path = tu_path(tu_dir, "wide.h5"), name[32];
    rf_write_full(path, 3, 30, 0);
    char *t = show(path, MK_SHOW_TABLE, 80);
    for (const char *s = t; *s; s += strcspn(s, "\n") + (s[strcspn(s, "\n")] != '\0'))
        ck_assert_msg(width_of(s, strcspn(s, "\n")) <= 80, "line too wide:\n%.*s", (int)strcspn(s, "\n"), s);
    for (int j = 0; j < 30; j++) {
        snprintf(name, sizeof name, " y/layer%d%c", j, j % 6 == 5 ? '\n' : ' ');
        ck_assert_msg(tu_count(t, name) == 1, "y/layer%d in:\n%s", j, t);
    }
    ck_assert_ptr_nonnull(strstr(t, "\nx/layer2 0.750±0.003 0.600±0.004 0.500±0.005 "));
    ck_assert_int_eq(tu_count(t, "columns "), 5);
    ck_assert_ptr_nonnull(strstr(t, "\n  method             minibatch CKA, unbiased HSIC_1, RBF kernel (bandwidth 0.5 x\n"
                                    "                     median distance); jackknife over 20 groups;\n"
                                    "                     1000 permutations\n"));
    free(t);
    free(path);
}
END_TEST

START_TEST(table_of_each_matrix)
{
    char *path = write_result("full.h5", NULL, 1), *t = show_matrix(path, MK_SHOW_TABLE, 120, MK_MATRIX_STDERR);
    const char *head = "Standard error of CKA of alpha (rows, 3 layers) vs beta (columns, 4 layers)\nminibatch";
    ck_assert_msg(strncmp(t, head, strlen(head)) == 0, "%s", t);
    ck_assert_ptr_nonnull(strstr(t, "1000 permutations\n\n "));
    assert_aligned(t, 4, 7);
    const char *se_rows[] = {"\nconv1                             0.012    0.000        0.250        nan\n",
                             "\nblock/\"quoted\", with comma          nan    0.023        0.000      0.001\n"};
    for (int k = 0; k < 2; k++) ck_assert_msg(strstr(t, se_rows[k]) != NULL, "'%s' not in:\n%s", se_rows[k], t);
    ck_assert_ptr_null(strstr(t, "±"));
    free(t);
    t = show_matrix(path, MK_SHOW_TABLE, 120, MK_MATRIX_PVALUE);
    ck_assert_msg(strncmp(t, "P-value of CKA of alpha (rows, 3 layers) vs beta", 48) == 0, "%s", t);
    assert_aligned(t, 4, 7);
    const char *p_rows[] = {"\nconv1                            0.0010   1.0000       0.5000        nan\n",
                            "\nblock/\"quoted\", with comma       0.3000   0.0001       0.0400     0.2000\n"};
    for (int k = 0; k < 2; k++) ck_assert_msg(strstr(t, p_rows[k]) != NULL, "'%s' not in:\n%s", p_rows[k], t);
    free(t);
    free(path);
}
END_TEST

/* The CKA's CSV is cka.csv whatever else the file holds; the others alike. */
START_TEST(csv_of_each_matrix)
{
    char *old = write_result("old.h5", NULL, 0), *path = write_result("full.h5", NULL, 1);
    char *a = show(old, MK_SHOW_CSV, 0), *b = show(path, MK_SHOW_CSV, 0);
    ck_assert_str_eq(a, b);
    free(a);
    free(b);
    const double *want[2] = {errors, pvalues};
    for (int m = 0; m < 2; m++) {
        char *csv = show_matrix(path, MK_SHOW_CSV, 0, m ? MK_MATRIX_PVALUE : MK_MATRIX_STDERR), field[256];
        const char *s = strchr(csv, '\n') + 1;
        ck_assert(strncmp(csv, "layer,fc,", 9) == 0);
        for (int i = 0; i < 3; i++) {
            ck_assert_int_eq(csv_next(&s, field, sizeof field), ',');
            ck_assert_str_eq(field, xs[i]);
            for (int j = 0; j < 4; j++) {
                csv_next(&s, field, sizeof field);
                ck_assert_msg(same_double(strtod(field, NULL), want[m][i * 4 + j]), "%d: '%s'", m, field);
            }
        }
        free(csv);
    }
    free(old);
    free(path);
}
END_TEST

START_TEST(json_holds_every_matrix_and_the_meta)
{
    char *path = write_result("full.h5", NULL, 1), *json = show_matrix(path, MK_SHOW_JSON, 0, MK_MATRIX_PVALUE);
    ck_assert_msg(json_valid(json), "not valid JSON:\n%s", json);
    double got[16];
    const char *keys[3] = {"cka", "cka_stderr", "cka_pvalue"};
    const double *want[3] = {values, errors, pvalues};
    for (int m = 0; m < 3; m++) {
        ck_assert_int_eq(json_array(json, keys[m], got, 16), 12);
        for (int k = 0; k < 12; k++)
            ck_assert_msg(same_double(got[k], want[m][k]), "%s[%d] = %.17g", keys[m], k, got[k]);
    }
    const char *meta = "\n  \"meta\": {\n    \"debiased\": 1,\n    \"description\": \"" RF_DESCRIPTION
                       "\",\n    \"estimator\": \"hsic1\",\n    \"jackknife_groups\": 20,\n    \"kernel\": "
                       "\"rbf\",\n    \"permutations\": 1000,\n    \"rbf_threshold\": 0.5\n  }\n}\n";
    ck_assert_msg(strstr(json, meta) != NULL, "'%s' not in:\n%s", meta, json);
    ck_assert_ptr_nonnull(strstr(json, "\"estimator\": \"minibatch linear CKA, unbiased HSIC_1\""));
    free(json);
    free(path);
    path = write_file("old.h5", NULL);
    json = show(path, MK_SHOW_JSON, 0);
    ck_assert_msg(json_valid(json), "%s", json);
    ck_assert(!strstr(json, "cka_stderr") && !strstr(json, "cka_pvalue") && !strstr(json, "\"meta\""));
    ck_assert_msg(strstr(json, "\"precision\": \"float64\",\n") && strstr(json, "\n  }\n}\n"), "%s", json);
    free(json);
    free(path);
}
END_TEST

/* ---- command line ------------------------------------------------------------------------ */

#define SHOW(...) TU_COMMAND(mk_show_main, "show", __VA_ARGS__)

START_TEST(show_command_mistakes)
{
    char *path = tu_path(tu_dir, "r.h5");
    rf_write_simple(path, 2, 2, 0);
    tu_assert_error(SHOW("--format", "csv"), MK_EUSAGE, "show: missing RESULT.h5");
    tu_assert_error(SHOW(path, "--format", "xml"), MK_EUSAGE, "--format 'xml': expected table, csv or json");
    tu_assert_error(SHOW(path, "--format"), MK_EUSAGE, "--format needs a value");
    tu_assert_error(SHOW(path, "--format=csv", "--format=json"), MK_EUSAGE, "--format is given twice");
    tu_assert_error(SHOW(path, "--wide"), MK_EUSAGE, "unknown option '--wide'");
    tu_assert_error(SHOW(path, path), MK_EUSAGE, "unexpected argument");
    tu_assert_error(SHOW("nothing.h5"), MK_EINPUT, "cannot open 'nothing.h5'");
    tu_assert_error(SHOW(path, "--matrix", "se"), MK_EUSAGE, "show: --matrix 'se': expected cka, stderr or pvalue");
    tu_assert_error(SHOW(path, "--matrix", "pvalue"), MK_EINPUT, "r.h5' has no /cka_pvalue (p-value of CKA): run with "
                                                         "permutations: R");
    tu_assert_error(SHOW(path, "--format", "json", "--matrix", "stderr"), MK_EINPUT, "r.h5' has no /cka_stderr");
    ck_assert_int_eq(SHOW("-h"), MK_OK);
    free(path);
}
END_TEST

START_TEST(the_mpicka_binary)
{
    char *path = write_file("r.h5", NULL), cmd[4096], *out;
    snprintf(cmd, sizeof cmd, "'%s' show '%s' --format json", MK_TEST_EXE, path);
    tu_assert_exit(tu_run(cmd, &out), 0);
    ck_assert_msg(json_valid(out), "%s", out);
    free(out);
    snprintf(cmd, sizeof cmd, "COLUMNS=60 '%s' show '%s'", MK_TEST_EXE, path);
    tu_assert_exit(tu_run(cmd, &out), 0);
    tu_assert_has(out, "columns 1-");
    tu_assert_has(out, "provenance:");
    free(out);
    snprintf(cmd, sizeof cmd, "'%s' show '%s/none.h5'", MK_TEST_EXE, tu_dir);
    tu_assert_exit(tu_run(cmd, &out), 3);
    tu_assert_has(out, "mpicka: input error: cannot open");
    free(out);
    snprintf(cmd, sizeof cmd, "'%s' show --format yaml x.h5", MK_TEST_EXE);
    tu_assert_exit(tu_run(cmd, &out), 2);
    free(out);
    snprintf(cmd, sizeof cmd, "'%s' show '%s' --matrix pvalue", MK_TEST_EXE, path);
    tu_assert_exit(tu_run(cmd, &out), 3);
    ck_assert_msg(strstr(out, "mpicka: input error: '") && strstr(out, "r.h5' has no /cka_pvalue"), "%s", out);
    free(out);
    snprintf(cmd, sizeof cmd, "'%s' show --help", MK_TEST_EXE);
    tu_assert_exit(tu_run(cmd, &out), 0);
    ck_assert_msg(strstr(out, "[--matrix cka|stderr|pvalue]") && strstr(out, "--matrix M"), "%s", out);
    free(out);
    free(path);
    path = write_result("full.h5", NULL, 1);
    char *csv = show_matrix(path, MK_SHOW_CSV, 0, MK_MATRIX_STDERR);
    snprintf(cmd, sizeof cmd, "'%s' show '%s' --matrix=stderr --format csv", MK_TEST_EXE, path);
    tu_assert_exit(tu_run(cmd, &out), 0);
    ck_assert_str_eq(out, csv);
    free(out);
    free(csv);
    snprintf(cmd, sizeof cmd, "'%s' show '%s' --matrix pvalue", MK_TEST_EXE, path);
    tu_assert_exit(tu_run(cmd, &out), 0);
    ck_assert_msg(strstr(out, "P-value of CKA of alpha") && strstr(out, "method settings (/meta):"), "%s", out);
    free(out);
    free(path);
}
END_TEST

/* ---- a models result ---------------------------------------------------------------- */

#define SM 3
#define SL 7 /* 2 + 3 + 2 layers */
static const char *const sm_names[SM] = {"resnet", "vit, big", "tiny"};
static const int sm_layers[SM] = {2, 3, 2}, sm_offsets[SM + 1] = {0, 2, 5, 7};
static double sm_cka[SL * SL], sm_se[SL * SL], sm_p[SL * SL];

/* The grid, made here, and written with or without errors and p-values. */
static char *write_models(const char *name, int full)
{
    for (int i = 0; i < SL; i++)
        for (int j = 0; j < SL; j++) {
            sm_cka[i * SL + j] = (1 + (5 * i + 3 * j) % 13) / 13.0;
            sm_se[i * SL + j] = (i + 1) * 1e-3 + j * 1e-5;
            sm_p[i * SL + j] = 1.0 / (1 + i + 3 * j);
        }
    sm_cka[3 * SL + 4] = NAN;
    char *path = tu_path(tu_dir, name);
    rf_models m = {.nmodels = SM, .names = sm_names, .layers = sm_layers, .cka = sm_cka,
                   .cka_stderr = full ? sm_se : NULL, .cka_pvalue = full ? sm_p : NULL,
                   .meta = full ? RF_DESCRIPTION : NULL};
    rf_write_models(path, &m);
    return path;
}

static int model_of(int i)
{
    int m = 0;
    while (i >= sm_offsets[m + 1]) m++;
    return m;
}

START_TEST(models_table_lists_models_and_the_small_grid)
{
    char *path = write_models("m.h5", 1), *t = show(path, MK_SHOW_TABLE, 120);
    const char *expect[] = {
        "CKA of 3 models, 7 layers in all, every layer against every other\nminibatch CKA",
        "\nmodels:\n  model     layers  offset  file\n"
        "  resnet         2       0  acts/resnet.h5\n"
        "  vit, big       3       2  acts/vit, big.h5\n"
        "  tiny           2       5  acts/tiny.h5\n",
        "\nmatched layers (2, in every model): layer0, layer1\n",
        "\neach cell: CKA±standard error (jackknife)\n",
        "\nresnet:layer0    0.077±0.001  0.308±0.001 ",
        " ...ig:layer2 tiny:layer0 ",
        "\nvit, big:layer2 ",
        "\nprovenance:\n  method ",
    };
    for (size_t k = 0; k < sizeof expect / sizeof expect[0]; k++)
        ck_assert_msg(strstr(t, expect[k]) != NULL, "'%s' not in:\n%s", expect[k], t);
    ck_assert_ptr_null(strstr(t, "x model"));
    ck_assert_ptr_null(strstr(t, "  models "));
    free(t);
    free(path);
    /* 10 models of 12 layers: the list, and how to see the blocks */
    static const int twelve[10] = {12, 12, 12, 12, 12, 12, 12, 12, 12, 12};
    static const char *const ten[10] = {"m0", "m1", "m2", "m3", "m4", "m5", "m6", "m7", "m8", "m9"};
    double *big = calloc(120 * 120, sizeof *big);
    rf_models m = {.nmodels = 10, .names = ten, .layers = twelve, .cka = big};
    path = tu_path(tu_dir, "big.h5");
    rf_write_models(path, &m);
    t = show(path, MK_SHOW_TABLE, 120);
    ck_assert_msg(strstr(t, "  m9         12     108  acts/m9.h5\n"), "%s", t);
    ck_assert_ptr_nonnull(strstr(t, "the whole matrix is 120 by 120: --pair A,B prints the block of model A"));
    ck_assert_ptr_null(strstr(t, "m0:layer0"));
    free(t);
    free(path);
    free(big);
}
END_TEST

/* cka.csv of a models run: a line per cell, every number exact. */
START_TEST(models_csv_is_the_long_form)
{
    for (int full = 0; full < 2; full++) {
        char *path = write_models("m.h5", full), *csv = show(path, MK_SHOW_CSV, 0), field[256];
        const char *s = csv;
        ck_assert_msg(strncmp(csv, "model_a,layer_a,model_b,layer_b,cka,stderr,pvalue\n", 50) == 0, "%s", csv);
        s = strchr(csv, '\n') + 1;
        for (int i = 0; i < SL; i++)
            for (int j = 0; j < SL; j++) {
                char want[32];
                const char *names[4] = {sm_names[model_of(i)], want, sm_names[model_of(j)], NULL};
                for (int k = 0; k < 4; k++) {
                    snprintf(want, sizeof want, "layer%d", (k < 2 ? i - sm_offsets[model_of(i)]
                                                                   : j - sm_offsets[model_of(j)]));
                    ck_assert_int_eq(csv_next(&s, field, sizeof field), ',');
                    ck_assert_str_eq(field, k % 2 ? want : names[k]);
                }
                const double wants[3] = {sm_cka[i * SL + j], sm_se[i * SL + j], sm_p[i * SL + j]};
                for (int k = 0; k < 3; k++) {
                    ck_assert_int_eq(csv_next(&s, field, sizeof field), k < 2 ? ',' : '\n');
                    if (k > 0 && !full)
                        ck_assert_str_eq(field, "");
                    else
                        ck_assert_msg(same_double(strtod(field, NULL), wants[k]), "%d,%d: '%s'", i, j, field);
                }
            }
        ck_assert_int_eq(*s, '\0');
        ck_assert_ptr_nonnull(strstr(csv, "\n\"vit, big\",layer0,resnet,layer1,"));
        free(csv);
        free(path);
    }
}
END_TEST

START_TEST(models_json_holds_the_models_and_matched)
{
    char *path = write_models("m.h5", 1), *json = show(path, MK_SHOW_JSON, 0);
    ck_assert_msg(json_valid(json), "not valid JSON:\n%s", json);
    ck_assert_ptr_nonnull(strstr(json, "  \"models\": [\n    {\"name\": \"resnet\", \"file\": \"acts/resnet.h5\", "
                                       "\"offset\": 0, \"layers\": 2},\n    {\"name\": \"vit, big\""));
    ck_assert_ptr_nonnull(strstr(json, "\"matched_layers\": [\"layer0\", \"layer1\"]"));
    double got[32];
    const char *keys[3] = {"cka_matched", "cka_matched_stderr", "cka_matched_pvalue"};
    const double *from[3] = {sm_cka, sm_se, sm_p};
    for (int c = 0; c < 3; c++) {
        ck_assert_int_eq(json_array(json, keys[c], got, 32), 2 * SM * SM);
        for (int k = 0; k < 2; k++)
            for (int a = 0; a < SM; a++)
                for (int b = 0; b < SM; b++)
                    ck_assert(same_double(got[(k * SM + a) * SM + b],
                                          from[c][(sm_offsets[a] + k) * SL + sm_offsets[b] + k]));
    }
    free(json);
    free(path);
}
END_TEST

/* --pair and --matched print a view as a two-model result. */
START_TEST(models_pair_and_matched)
{
    char *path = write_models("m.h5", 1), cmd[4096], *out, field[256];
    snprintf(cmd, sizeof cmd, "'%s' show '%s' --pair 'vit, big,tiny' --format csv --matrix stderr", MK_TEST_EXE,
             path);
    tu_assert_exit(tu_run(cmd, &out), 0);
    const char *s = out;
    ck_assert_msg(strncmp(out, "layer,layer0,layer1\n", 20) == 0, "%s", out);
    s = strchr(out, '\n') + 1;
    for (int i = 0; i < 3; i++) {
        csv_next(&s, field, sizeof field);
        for (int j = 0; j < 2; j++) {
            csv_next(&s, field, sizeof field);
            ck_assert(same_double(strtod(field, NULL), sm_se[(2 + i) * SL + 5 + j]));
        }
    }
    free(out);
    /* a view is its table and one line saying where the provenance is; --provenance adds it */
    snprintf(cmd, sizeof cmd, "'%s' show '%s' --pair resnet,resnet", MK_TEST_EXE, path);
    tu_assert_exit(tu_run(cmd, &out), 0);
    ck_assert_msg(strncmp(out, "CKA of resnet (rows, 2 layers) against itself\n", 46) == 0 &&
                      tu_count(out, "\n") < 12 && !strstr(out, "provenance:") && !strstr(out, "config (resolved") &&
                      strstr(out, "provenance and config: mpicka show "),
                  "%s", out);
    free(out);
    snprintf(cmd, sizeof cmd, "'%s' show '%s' --pair resnet,resnet --provenance", MK_TEST_EXE, path);
    tu_assert_exit(tu_run(cmd, &out), 0);
    ck_assert_msg(strncmp(out, "CKA of resnet (rows, 2 layers) against itself\n", 46) == 0 &&
                      strstr(out, "  x model            resnet (acts/resnet.h5)\n") && strstr(out, "config (resolved"),
                  "%s", out);
    free(out);
    snprintf(cmd, sizeof cmd, "'%s' show '%s' --matched layer1 --format json", MK_TEST_EXE, path);
    tu_assert_exit(tu_run(cmd, &out), 0);
    ck_assert_msg(json_valid(out), "%s", out);
    tu_assert_has(out, "\"x_layers\": [\"resnet\", \"vit, big\", \"tiny\"]");
    double got[16];
    ck_assert_int_eq(json_array(out, "cka", got, 16), SM * SM);
    for (int a = 0; a < SM; a++)
        for (int b = 0; b < SM; b++)
            ck_assert(same_double(got[a * SM + b], sm_cka[(sm_offsets[a] + 1) * SL + sm_offsets[b] + 1]));
    free(out);
    snprintf(cmd, sizeof cmd, "'%s' show '%s' --matched layer0", MK_TEST_EXE, path);
    tu_assert_exit(tu_run(cmd, &out), 0);
    ck_assert_msg(strncmp(out, "CKA of layer layer0 across 3 models (rows and columns)\n", 55) == 0 &&
                      tu_count(out, "\n") < 12 && !strstr(out, "provenance:"),
                  "%s", out);
    free(out);
    snprintf(cmd, sizeof cmd, "'%s' show '%s' --matched layer0 --provenance", MK_TEST_EXE, path);
    tu_assert_exit(tu_run(cmd, &out), 0);
    ck_assert_msg(strncmp(out, "CKA of layer layer0 across 3 models (rows and columns)\n", 55) == 0 &&
                      strstr(out, "  layer              layer0, in every model\n"),
                  "%s", out);
    free(out);
    char *xy = tu_path(tu_dir, "xy.h5");
    rf_write_simple(xy, 2, 2, 0);
    tu_assert_error(SHOW(path, "--pair", "resnet"), MK_EUSAGE, "show: --pair 'resnet': expected A,B");
    tu_assert_error(SHOW(path, "--pair", "resnet,"), MK_EUSAGE, "expected A,B");
    tu_assert_error(SHOW(path, "--pair", "resnet,vgg"), MK_EUSAGE, "no model 'vgg' (its models: resnet, vit, big, tiny)");
    tu_assert_error(SHOW(path, "--matched", "layer2"), MK_EUSAGE, "(those are: layer0, layer1)");
    tu_assert_error(SHOW(path, "--pair", "resnet,tiny", "--matched", "layer0"), MK_EUSAGE, "give one of them");
    tu_assert_error(SHOW(xy, "--pair", "alpha,beta"), MK_EUSAGE, "--pair needs the result of a run with models");
    tu_assert_error(SHOW(xy, "--matched", "x/layer0"), MK_EUSAGE, "--matched needs the result of a run with models");
    free(xy);
    free(path);
}
END_TEST

/* mk_double_text: the shortest of %.15g, %.16g, %.17g that reads back as
 * the same double, checked against every candidate, on edge values and on
 * doubles made of random bits. */
static void check_double_text(double v)
{
    char got[MK_DOUBLE_TEXT], want[64] = "";
    mk_double_text(got, v);
    for (int digits = 15; digits <= 17 && !want[0]; digits++) {
        snprintf(want, sizeof want, "%.*g", digits, v);
        if (!isnan(v) && strtod(want, NULL) != v) want[0] = '\0';
    }
    ck_assert_msg(strcmp(got, want) == 0, "%a: got '%s', want '%s'", v, got, want);
    ck_assert_msg(isnan(v) ? isnan(strtod(got, NULL)) : memcmp(&(double){strtod(got, NULL)}, &v, sizeof v) == 0,
                  "%a: '%s' does not read back", v, got);
}

START_TEST(double_text_is_the_shortest_that_reads_back)
{
    const struct {
        double v;
        const char *text;
    } known[] = {{0.1, "0.1"}, {1.0 / 3.0, "0.3333333333333333"}, {434.8921778, "434.8921778"},
                 {0.32450822899999998, "0.324508229"}, {0.1 + 0.2, "0.30000000000000004"}, {1, "1"}, {0, "0"},
                 {-0.0, "-0"}, {1e-300, "1e-300"}, {5e-324, "4.94065645841247e-324"},
                 {1.7976931348623157e308, "1.7976931348623157e+308"}, {INFINITY, "inf"}, {-INFINITY, "-inf"}};
    char buf[MK_DOUBLE_TEXT];
    for (size_t k = 0; k < sizeof known / sizeof known[0]; k++) {
        ck_assert_str_eq(mk_double_text(buf, known[k].v), known[k].text);
        check_double_text(known[k].v);
    }
    check_double_text(NAN);
    uint64_t state = 12345;
    for (int k = 0; k < 100000; k++) {
        state = state * 6364136223846793005ULL + 1442695040888963407ULL;
        uint64_t bits = state ^ (state >> 29);
        double v;
        memcpy(&v, &bits, sizeof v);
        check_double_text(v);
        check_double_text(tu_normal(&state));
    }
}
END_TEST

static void under_mpirun(TCase *tc)
{
    tcase_set_tags(tc, "mpirun"); /* CTest's test_show_command (e2e); test_show leaves it out */
}

TU_MAIN("show", 0,
        TU_CASE("formats", tu_dir_setup, tu_dir_teardown, 0, NULL, csv_round_trips_names_and_values_exactly,
                json_is_valid_with_exact_numbers_and_attributes, table_is_aligned_and_tells_the_provenance,
                table_splits_wide_matrices_and_marks_what_is_missing, table_shows_errors_beside_values_and_the_method,
                errors_wrap_in_narrow_tables, table_of_each_matrix, csv_of_each_matrix,
                json_holds_every_matrix_and_the_meta, models_table_lists_models_and_the_small_grid,
                models_csv_is_the_long_form, models_json_holds_the_models_and_matched,
                double_text_is_the_shortest_that_reads_back),
        TU_CASE("command", tu_dir_setup, tu_dir_teardown, 300, under_mpirun, csv_is_what_a_run_writes,
                show_command_mistakes, the_mpicka_binary, models_pair_and_matched))
