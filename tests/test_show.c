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
#include "resultfile.h"
#include "testutil.h"

static char *dir;

static void setup(void) { dir = tu_tmpdir(); }

static void teardown(void)
{
    tu_rmrf(dir);
    free(dir);
}

/* 3 by 4, with NaN, a negative value, awkward names. */
static const double values[12] = {1.0,  0.5,       1.0 / 3.0, NAN, -0.0125, 0.1 + 0.2, 1e-300, 0.999999999999,
                                  0.25, 2.0 / 7.0, 0.0,       0.75};
static const char *const xs[] = {"conv1", "block/\"quoted\", with comma",
                                 "a/very/long/layer/path/that/goes/on/and/on/to/the/end"};
static const char *const ys[] = {"fc", "couche/é", "tab\there back\\slash", "bad \xff byte"};

static char *write_file(const char *name, const char *skip)
{
    char *path = tu_path(dir, name);
    rf_result r = {3, 4, values, xs, ys, "alpha", "beta", 0, skip, 0, 0, 0, 0, 0, 0};
    rf_write(path, &r);
    return path;
}

/* mk_show_write's output for the file at path (malloc'd). */
static char *show(const char *path, mk_show_format fmt, int width)
{
    mk_ckafile f;
    char *buf = NULL;
    size_t len = 0;
    ck_assert_msg(mk_ckafile_read(path, &f) == MK_OK, "%s", mk_errmsg());
    FILE *out = open_memstream(&buf, &len);
    ck_assert_int_eq(mk_show_write(out, &f, fmt, width), MK_OK);
    fclose(out);
    mk_ckafile_free(&f);
    return buf;
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
    ck_assert_ptr_nonnull(strstr(csv, "\nconv1,1,0.5,0.33333333333333331,nan\n"));
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
        dir, MK_TEST_EXE);
    ck_assert_msg(tu_run(cmd, &out) == 0, "%s", out);
    free(out);
    ck_assert_msg(tu_mpicka(2, dir, "run c.yaml", &out) == 0, "%s", out);
    free(out);
    char *h5 = tu_path(dir, "out/cka.h5"), *csvpath = tu_path(dir, "out/cka.csv"), *shown, *stored;
    shown = show(h5, MK_SHOW_CSV, 0);
    snprintf(cmd, sizeof cmd, "cat '%s'", csvpath);
    ck_assert_int_eq(tu_run(cmd, &stored), 0);
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

/* The numbers of the "cka" array, row after row (null as NaN). */
static int json_cka(const char *text, double *out, int max)
{
    const char *start = strstr(text, "\"cka\": [");
    ck_assert_ptr_nonnull(start);
    char *p = (char *)start + 7;
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
        "[1, 0.5, 0.33333333333333331, null]",
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
    char *path = tu_path(dir, "wide.h5");
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
    path = tu_path(dir, "self.h5");
    rf_write_simple(path, 2, 2, 1);
    t = show(path, MK_SHOW_TABLE, 0);
    ck_assert_ptr_nonnull(strstr(t, "CKA of alpha (rows, 2 layers) against itself\n"));
    ck_assert_ptr_nonnull(strstr(t, "  y model            x against itself\n"));
    free(t);
    free(path);
}
END_TEST

/* ---- command line ------------------------------------------------------------------------ */

static mk_err show_cmd(const char **args)
{
    char *argv[16] = {(char *)"show"};
    int argc = 1;
    for (int k = 0; args[k]; k++) argv[argc++] = (char *)args[k];
    return mk_show_main(argc, argv);
}

#define SHOW(...) show_cmd((const char *[]){__VA_ARGS__, NULL})

static void expect(mk_err got, mk_err code, const char *words)
{
    ck_assert_int_eq(got, code);
    ck_assert_msg(strstr(mk_errmsg(), words) != NULL, "'%s' not in: %s", words, mk_errmsg());
}

START_TEST(show_command_mistakes)
{
    char *path = tu_path(dir, "r.h5");
    rf_write_simple(path, 2, 2, 0);
    expect(SHOW("--format", "csv"), MK_EUSAGE, "show: missing RESULT.h5");
    expect(SHOW(path, "--format", "xml"), MK_EUSAGE, "--format 'xml': expected table, csv or json");
    expect(SHOW(path, "--format"), MK_EUSAGE, "--format needs a value");
    expect(SHOW(path, "--format=csv", "--format=json"), MK_EUSAGE, "--format is given twice");
    expect(SHOW(path, "--wide"), MK_EUSAGE, "unknown option '--wide'");
    expect(SHOW(path, path), MK_EUSAGE, "unexpected argument");
    expect(SHOW("nothing.h5"), MK_EINPUT, "cannot open 'nothing.h5'");
    ck_assert_int_eq(SHOW("-h"), MK_OK);
    free(path);
}
END_TEST

START_TEST(the_mpicka_binary)
{
    char *path = write_file("r.h5", NULL), cmd[4096], *out;
    snprintf(cmd, sizeof cmd, "'%s' show '%s' --format json", MK_TEST_EXE, path);
    ck_assert_int_eq(tu_run(cmd, &out), 0);
    ck_assert_msg(json_valid(out), "%s", out);
    free(out);
    snprintf(cmd, sizeof cmd, "COLUMNS=60 '%s' show '%s'", MK_TEST_EXE, path);
    ck_assert_int_eq(tu_run(cmd, &out), 0);
    ck_assert_ptr_nonnull(strstr(out, "columns 1-"));
    ck_assert_ptr_nonnull(strstr(out, "provenance:"));
    free(out);
    snprintf(cmd, sizeof cmd, "'%s' show '%s/none.h5'", MK_TEST_EXE, dir);
    ck_assert_int_eq(tu_run(cmd, &out), 3);
    ck_assert_ptr_nonnull(strstr(out, "mpicka: input error: cannot open"));
    free(out);
    snprintf(cmd, sizeof cmd, "'%s' show --format yaml x.h5", MK_TEST_EXE);
    ck_assert_int_eq(tu_run(cmd, &out), 2);
    free(out);
    free(path);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("show");
    TCase *formats = tcase_create("formats"), *cmd = tcase_create("command");
    tcase_add_checked_fixture(formats, setup, teardown);
    tcase_add_checked_fixture(cmd, setup, teardown);
    tcase_set_timeout(cmd, 300);
    tcase_add_test(formats, csv_round_trips_names_and_values_exactly);
    tcase_add_test(formats, json_is_valid_with_exact_numbers_and_attributes);
    tcase_add_test(formats, table_is_aligned_and_tells_the_provenance);
    tcase_add_test(formats, table_splits_wide_matrices_and_marks_what_is_missing);
    tcase_add_test(cmd, csv_is_what_a_run_writes);
    tcase_add_test(cmd, show_command_mistakes);
    tcase_add_test(cmd, the_mpicka_binary);
    suite_add_tcase(s, formats);
    suite_add_tcase(s, cmd);
    return tu_run_suite(s, 1);
}
