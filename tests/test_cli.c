/* The command line: the options parser every subcommand uses (mpicka/cli.h),
 * on a table of its own, then the mpicka binary: --set behaves in check as in
 * run, and every subcommand takes `--opt=VALUE` as `--opt VALUE`. */
#include <check.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mpicka/cli.h"
#include "mpicka/config.h"

#include "resultfile.h"
#include "testutil.h"

/* ---- the parser --------------------------------------------------------------- */

enum { OUT, N, BLOCK, RATE, OFFSET, SEED, HALF, SET, COUNT };

static const mk_opt opts[COUNT] = {
    [OUT] = {"--output", "-o", MK_OPT_STRING, "FILE", .help = "where"},
    [N] = {"--n", NULL, MK_OPT_INT, "N", 1, 100, .deflt = "10", .help = "how many"},
    [BLOCK] = {"--block", NULL, MK_OPT_INT, "ROWS", 1, INT64_MAX, .help = "rows at a time"},
    [RATE] = {"--rate", NULL, MK_OPT_REAL, "R", 0, 1, .min_open = 1, .help = "a rate"},
    [OFFSET] = {"--offset", NULL, MK_OPT_REAL, "C", -HUGE_VAL, HUGE_VAL, .help = "anything finite"},
    [SEED] = {"--seed", NULL, MK_OPT_UINT64, "S", .help = "a seed"},
    [HALF] = {"--half", NULL, MK_OPT_FLAG, .help = "a flag"},
    [SET] = {"--set", NULL, MK_OPT_LIST, "KEY=VALUE", .check = mk_config_check_set, .help = "a list\nof overrides"},
};

static const char *const demo_args[] = {"IN"};

static const mk_cli_cmd demo = {"demo", "mpicka demo IN [options]", "Demonstrates.", opts, COUNT, demo_args, 1};

typedef struct {
    mk_opt_val v[COUNT];
    const char *in;
    int help;
} parsed;

/* Parses a NULL-terminated argument list after argv[0] = "demo". */
static mk_err parse(parsed *p, const char **args)
{
    char *argv[32] = {(char *)"demo"};
    int argc = 1;
    for (int k = 0; args[k]; k++) argv[argc++] = (char *)args[k];
    return mk_cli_parse(&demo, argc, argv, p->v, &p->in, &p->help);
}

#define PARSE(p, ...) parse(p, (const char *[]){__VA_ARGS__, NULL})

/* A command line that must fail with words in the message. */
#define BAD(words, ...) expect_error(words, (const char *[]){__VA_ARGS__, NULL})

static void expect_error(const char *words, const char **args)
{
    parsed p;
    mk_err err = parse(&p, args);
    mk_cli_free(&demo, p.v);
    ck_assert_msg(err == MK_EUSAGE, "%s: not a usage error but %s: %s", args[0], mk_errname(err), mk_errmsg());
    ck_assert_msg(strstr(mk_errmsg(), words) != NULL, "'%s' not in: %s", words, mk_errmsg());
}

START_TEST(both_forms_give_the_same_values)
{
    parsed a, b;
    ck_assert_int_eq(PARSE(&a, "in.h5", "-o", "f.png", "--n", "5", "--block", "7", "--rate", "0.5", "--offset", "-2",
                           "--seed", "18446744073709551615", "--half", "--set", "k=v"),
                     MK_OK);
    ck_assert_int_eq(PARSE(&b, "--output=f.png", "--n=5", "--block=7", "--rate=0.5", "--offset=-2",
                           "--seed=18446744073709551615", "--half", "--set=k=v", "in.h5"),
                     MK_OK);
    for (parsed *p = &a; p; p = p == &a ? &b : NULL) {
        ck_assert_str_eq(p->in, "in.h5");
        ck_assert_str_eq(p->v[OUT].text, "f.png");
        ck_assert_int_eq(p->v[N].i, 5);
        ck_assert_int_eq(p->v[BLOCK].i, 7);
        ck_assert(p->v[RATE].r == 0.5 && p->v[OFFSET].r == -2.0);
        ck_assert(p->v[SEED].u == UINT64_MAX);
        ck_assert_int_eq(p->v[HALF].given, 1);
        ck_assert_int_eq(p->v[SET].given, 1);
        ck_assert_str_eq(p->v[SET].list[0], "k=v");
        ck_assert_int_eq(p->help, 0);
        mk_cli_free(&demo, p->v);
    }
}
END_TEST

START_TEST(defaults_fill_what_is_not_given)
{
    parsed p;
    ck_assert_int_eq(PARSE(&p, "in.h5"), MK_OK);
    ck_assert_int_eq(p.v[N].given, 0);
    ck_assert_int_eq(p.v[N].i, 10);
    ck_assert_str_eq(p.v[N].text, "10");
    ck_assert_ptr_null(p.v[OUT].text);
    ck_assert_int_eq(p.v[HALF].given, 0);
    ck_assert_int_eq(p.v[SET].given, 0);
    ck_assert_ptr_null(p.v[SET].list);
    mk_cli_free(&demo, p.v);
}
END_TEST

START_TEST(lists_repeat_and_others_do_not)
{
    parsed p;
    ck_assert_int_eq(PARSE(&p, "--set", "a=1", "in.h5", "--set=b=2", "--set", "c=x=y"), MK_OK);
    ck_assert_int_eq(p.v[SET].given, 3);
    ck_assert_str_eq(p.v[SET].list[0], "a=1");
    ck_assert_str_eq(p.v[SET].list[1], "b=2");
    ck_assert_str_eq(p.v[SET].list[2], "c=x=y");
    mk_cli_free(&demo, p.v);
    ck_assert_ptr_null(p.v[SET].list);
    BAD("demo: --n is given twice", "in", "--n", "2", "--n=3");
    BAD("demo: --output is given twice", "in", "-o", "a", "--output=b");
    BAD("demo: --half is given twice", "in", "--half", "--half");
}
END_TEST

START_TEST(bounds_and_kinds_are_checked)
{
    BAD("demo: --n '0': expected an integer from 1 to 100", "in", "--n", "0");
    BAD("demo: --n '101': expected an integer from 1 to 100", "in", "--n=101");
    BAD("--n '2.5'", "in", "--n", "2.5");
    BAD("--n ' 5'", "in", "--n", " 5");
    BAD("--n '': expected", "in", "--n", "");
    BAD("--n '99999999999999999999'", "in", "--n", "99999999999999999999");
    BAD("demo: --block '0': expected an integer >= 1", "in", "--block", "0");
    BAD("demo: --rate '0': expected a number in (0, 1]", "in", "--rate", "0");
    BAD("--rate '1.5': expected a number in (0, 1]", "in", "--rate", "1.5");
    BAD("demo: --offset 'nan': expected a finite number", "in", "--offset", "nan");
    BAD("--offset '1e999': expected a finite number", "in", "--offset", "1e999");
    BAD("--offset '0.5x'", "in", "--offset", "0.5x");
    BAD("demo: --seed '-1': expected an unsigned 64-bit integer", "in", "--seed", "-1");
    BAD("--seed '18446744073709551616'", "in", "--seed", "18446744073709551616");
    parsed p;
    ck_assert_int_eq(PARSE(&p, "in", "--rate", "1", "--offset", "-.25", "--n", "+100"), MK_OK);
    ck_assert(p.v[RATE].r == 1.0 && p.v[OFFSET].r == -0.25 && p.v[N].i == 100);
    mk_cli_free(&demo, p.v);
}
END_TEST

START_TEST(every_mistake_is_named)
{
    BAD("demo: unknown option '--frob' (see mpicka demo --help)", "in", "--frob");
    BAD("demo: unknown option '-x'", "in", "-x");
    BAD("demo: unknown option '--frob=1'", "in", "--frob=1");
    BAD("demo: unknown option '-o=a'", "in", "-o=a"); /* short forms take their value apart */
    BAD("demo: --n needs a value (N)", "in", "--n");
    BAD("demo: -o needs a value (FILE)", "in", "-o");
    BAD("demo: --set needs KEY=VALUE", "in", "--set");
    BAD("demo: --half takes no value (got '--half=1')", "in", "--half=1");
    BAD("demo: missing IN (see mpicka demo --help)", "--n", "3");
    BAD("demo: unexpected argument 'b' (see mpicka demo --help)", "a", "b");
    /* the list's own check, with the hint the next word gives */
    BAD("--set 'k': expected KEY=VALUE", "in", "--set", "k");
    BAD("write --set batch_size=50", "in", "--set", "batch_size", "50");
    BAD("write --set batch_size=50", "in", "--set=batch_size", "50");
}
END_TEST

START_TEST(positionals_dash_and_help)
{
    parsed p;
    ck_assert_int_eq(PARSE(&p, "--", "-odd.h5"), MK_OK);
    ck_assert_str_eq(p.in, "-odd.h5");
    ck_assert_int_eq(PARSE(&p, "-"), MK_OK);
    ck_assert_str_eq(p.in, "-");
    ck_assert_int_eq(PARSE(&p, "--n", "0", "-h"), MK_EUSAGE); /* read in order: the mistake comes first */
    mk_cli_free(&demo, p.v);
    ck_assert_int_eq(PARSE(&p, "-h", "--bogus"), MK_OK); /* no IN needed, the rest unread */
    ck_assert_int_eq(p.help, 1);
    ck_assert_int_eq(PARSE(&p, "a", "b", "--help"), MK_EUSAGE);
    ck_assert_int_eq(PARSE(&p, "a", "--help"), MK_OK);
    ck_assert_int_eq(p.help, 1);
    mk_cli_free(&demo, p.v);
}
END_TEST

START_TEST(help_comes_from_the_table)
{
    char *text = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&text, &len);
    mk_cli_help(f, &demo);
    fclose(f);
    const char *lines[] = {
        "usage: mpicka demo IN [options]\nDemonstrates.\n\n",
        "\n  -o, --output FILE      where\n",
        "\n  --n N                  how many (default 10)\n",
        "\n  --half                 a flag\n",
        "\n  --set KEY=VALUE        a list\n                         of overrides\n",
        "\n  -h, --help             print this text\n",
    };
    for (size_t k = 0; k < sizeof lines / sizeof lines[0]; k++)
        ck_assert_msg(strstr(text, lines[k]) != NULL, "'%s' not in:\n%s", lines[k], text);
    free(text);
}
END_TEST

/* ---- the binary ----------------------------------------------------------------- */

static char *dir;

/* `mpicka ARGS` in dir, run under mpirun on one rank, the others as they are. */
static int mpicka(const char *args, char **out)
{
    char cmd[4096];
    if (strncmp(args, "run ", 4) == 0) return tu_mpicka(1, dir, args, out);
    snprintf(cmd, sizeof cmd, "cd '%s' && '%s' %s", dir, MK_TEST_EXE, args);
    return tu_run(cmd, out);
}

/* args must exit with status; the failure message shows the command's output. */
static char *expect_status(const char *args, int status)
{
    char *out;
    int got = mpicka(args, &out);
    ck_assert_msg(got == status, "mpicka %s: exit %d, not %d; its output:\n%s", args, got, status, out);
    return out;
}

static void expect_in(const char *args, const char *out, const char *words)
{
    ck_assert_msg(strstr(out, words) != NULL, "mpicka %s: '%s' not in its output:\n%s", args, words, out);
}

/* /measures/svcca (nx by ny) in the result at path, as a run with measures writes it. */
static void add_measure(const char *path, int nx, int ny)
{
    double v[64] = {0.5};
    hsize_t dims[2] = {(hsize_t)nx, (hsize_t)ny};
    hid_t fid = H5Fopen(path, H5F_ACC_RDWR, H5P_DEFAULT);
    hid_t gid = H5Gcreate2(fid, "measures", H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    hid_t space = H5Screate_simple(2, dims, NULL);
    hid_t dset = H5Dcreate2(gid, "svcca", H5T_IEEE_F64LE, space, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    ck_assert(fid >= 0 && gid >= 0 && dset >= 0);
    ck_assert(H5Dwrite(dset, H5T_NATIVE_DOUBLE, H5S_ALL, H5S_ALL, H5P_DEFAULT, v) >= 0);
    H5Dclose(dset), H5Sclose(space), H5Gclose(gid), H5Fclose(fid);
}

static void make_inputs(void)
{
    dir = tu_tmpdir();
    char *x = tu_path(dir, "x.h5"), *r = tu_path(dir, "r.h5"), *m = tu_path(dir, "m.h5");
    char *c = tu_path(dir, "c.yaml");
    free(expect_status("synth x.h5 --n 64 --layers 2 --features 8 --seed 1", 0));
    tu_write_text(c, "x:\n  file: x.h5\n  layers: [\"layer*\"]\nbatch_size: 16\nplot: false\noutput: out\n");
    rf_write_full(r, 2, 3, 0);
    add_measure(r, 2, 3);
    static const char *const names[] = {"a", "b"};
    static const int layers[] = {2, 2};
    static double cka[16];
    for (int k = 0; k < 16; k++) cka[k] = (k % 5) / 5.0;
    rf_models models = {.nmodels = 2, .names = names, .layers = layers, .cka = cka, .cka_stderr = cka};
    rf_write_models(m, &models);
    free(x), free(r), free(m), free(c);
}

static void remove_inputs(void)
{
    tu_rmrf(dir);
    free(dir);
}

/* The batch_size stored in the result in folder out. */
static int64_t batch_size_of(const char *out)
{
    char name[256];
    snprintf(name, sizeof name, "%s/cka.h5", out);
    char *path = tu_path(dir, name);
    int64_t m = tu_read_int_attr(path, "batch_size");
    free(path);
    return m;
}

START_TEST(set_in_check_as_in_run)
{
    static const char *const cmds[] = {"check", "run"};
    char args[512];
    for (int c = 0; c < 2; c++) {
        const char *sets[] = {"--set=batch_size=32 --set=output=eq", "--set batch_size=32 --set output=apart"};
        for (int f = 0; f < 2; f++) {
            snprintf(args, sizeof args, c ? "run c.yaml --quiet %s" : "check c.yaml %s", sets[f]);
            char *out = expect_status(args, 0);
            if (c == 0) expect_in(args, out, "batch_size 32: 2 batch(es) per epoch");
            free(out);
        }
    }
    ck_assert_int_eq(batch_size_of("eq"), 32);
    ck_assert_int_eq(batch_size_of("apart"), 32);
    /* the same mistakes, the same answers */
    static const struct {
        const char *args, *words;
    } bad[] = {
        {"--set=batch_size", "--set 'batch_size': expected KEY=VALUE"},
        {"--set batch_size", "--set 'batch_size': expected KEY=VALUE"},
        {"--set=batch_size 32", "write --set batch_size=32"},
        {"--set batch_size 32", "write --set batch_size=32"},
        {"--set=nokey=3", "--set nokey=3: unknown key 'nokey'"},
        {"--set nokey=3", "--set nokey=3: unknown key 'nokey'"},
        {"--set=batch_size=", "the value is empty"},
        {"--set", "--set needs KEY=VALUE"},
    };
    for (int c = 0; c < 2; c++)
        for (size_t k = 0; k < sizeof bad / sizeof bad[0]; k++) {
            snprintf(args, sizeof args, "%s c.yaml %s", cmds[c], bad[k].args);
            char *out = expect_status(args, 2);
            expect_in(args, out, bad[k].words);
            free(out);
        }
}
END_TEST

/* One value option of a subcommand, with a value it takes, after base. */
static const struct {
    const char *base, *opt, *value;
} forms[] = {
    {"run c.yaml --quiet --force", "--set", "batch_size=32"},
    {"run c.yaml --force", "--progress", "lines"},
    {"check c.yaml", "--ranks", "2"},
    {"check c.yaml", "--ranks-per-node", "2"},
    {"check c.yaml", "--node-memory", "4.5"},
    {"check c.yaml", "--set", "batch_size=32"},
    {"synth s.h5", "--n", "100"},
    {"synth s.h5", "--layers", "3"},
    {"synth s.h5", "--features", "8,2x2"},
    {"synth s.h5", "--dtype", "f16,i8"},
    {"synth s.h5", "--corr", "0.5"},
    {"synth s.h5", "--latent", "4"},
    {"synth s.h5", "--noise", "0.25"},
    {"synth s.h5", "--offset", "-1"},
    {"synth s.h5", "--seed", "18446744073709551615"},
    {"synth s.h5", "--names", "a,g/b,c,d"},
    {"synth s.h5", "--chunk", "100"},
    {"synth s.h5 --chunk 100", "--gzip", "4"},
    {"synth s.h5", "--block", "100"},
    {"show r.h5", "--format", "csv"},
    {"show r.h5", "--matrix", "stderr"},
    {"show m.h5", "--pair", "a,b"},
    {"show m.h5", "--matched", "layer0"},
    {"show r.h5", "--measure", "svcca"},
    {"plot r.h5", "--output", "f.svg"},
    {"plot r.h5 -o f.svg", "--title", "a title"},
    {"plot r.h5 -o f.svg", "--cmap", "viridis"},
    {"plot r.h5 -o f.svg", "--vmin", "-0.5"},
    {"plot r.h5 -o f.svg", "--vmax", "2"},
    {"plot r.h5 -o f.svg", "--short-names", "1"},
    {"plot r.h5 -o f.svg", "--matrix", "stderr"},
    {"plot m.h5 -o f.svg", "--pair", "a,b"},
    {"plot m.h5 -o f.svg", "--matched", "layer0"},
    {"plot r.h5 -o f.svg", "--measure", "svcca"},
    {"plot r.h5 -o f.svg", "--measures", "cka,svcca"},
};

#define NFORMS (sizeof forms / sizeof forms[0])

/* out without the lines that differ from one run to the next (the BLAS
 * measurement of check); run's output, all timings, is not compared. */
static void drop_volatile(char *out)
{
    char *keep = out;
    for (char *line = out; *line;) {
        size_t len = strcspn(line, "\n") + (line[strcspn(line, "\n")] == '\n');
        if (!strstr(line, "GFLOP/s") && !strstr(line, "estimated time")) {
            memmove(keep, line, len);
            keep += len;
        }
        line += len;
    }
    *keep = '\0';
}

START_TEST(every_value_option_takes_both_forms)
{
    char eq[512], apart[512];
    snprintf(eq, sizeof eq, "%s '%s=%s'", forms[_i].base, forms[_i].opt, forms[_i].value);
    snprintf(apart, sizeof apart, "%s %s '%s'", forms[_i].base, forms[_i].opt, forms[_i].value);
    char *a = expect_status(eq, 0), *b = expect_status(apart, 0);
    if (strncmp(eq, "run ", 4) != 0) {
        drop_volatile(a);
        drop_volatile(b);
        ck_assert_msg(strcmp(a, b) == 0, "mpicka %s said:\n%s\nmpicka %s said:\n%s", eq, a, apart, b);
    }
    free(a);
    free(b);
}
END_TEST

/* The forms above cover every value option each subcommand's --help lists
 * ("  [-x, ]--name METAVAR  help"), so that a new option is tested too. */
START_TEST(every_value_option_is_covered)
{
    static const char *const cmds[] = {"run", "check", "synth", "show", "plot"};
    for (size_t c = 0; c < sizeof cmds / sizeof cmds[0]; c++) {
        char args[64], *out;
        snprintf(args, sizeof args, "%s --help", cmds[c]);
        out = expect_status(args, 0);
        int found = 0;
        for (char *line = strtok(out, "\n"); line; line = strtok(NULL, "\n")) {
            char a[64] = "", b[64] = "", d[64] = "";
            if (strncmp(line, "  -", 3) != 0) continue;
            int n = sscanf(line, "%63s %63s %63s", a, b, d);
            const char *name = a[strlen(a) - 1] == ',' ? b : a, *metavar = name == a ? b : d;
            int words = name == a ? n - 1 : n - 2; /* after the name: METAVAR, then help */
            if (words < 1 || metavar[0] == '-' || strcmp(name, "--help") == 0) continue;
            /* a flag's help follows its name after two spaces, a metavar after one */
            const char *after = strstr(line, name) + strlen(name);
            if (after[0] == ' ' && after[1] == ' ') continue;
            int covered = 0;
            for (size_t k = 0; k < NFORMS; k++)
                covered |= strncmp(forms[k].base, cmds[c], strlen(cmds[c])) == 0 &&
                           forms[k].base[strlen(cmds[c])] == ' ' && strcmp(forms[k].opt, name) == 0;
            ck_assert_msg(covered, "mpicka %s %s: no case of %s=VALUE in test_cli", cmds[c], name, name);
            found++;
        }
        ck_assert_msg(found > 0, "mpicka %s --help lists no option with a value", cmds[c]);
        free(out);
    }
}
END_TEST

static void binary_case(TCase *tc)
{
    tcase_add_unchecked_fixture(tc, make_inputs, remove_inputs);
    tcase_add_loop_test(tc, every_value_option_takes_both_forms, 0, NFORMS);
}

TU_MAIN("cli", 0,
        TU_CASE("parse", NULL, NULL, 0, NULL, both_forms_give_the_same_values, defaults_fill_what_is_not_given,
                lists_repeat_and_others_do_not, bounds_and_kinds_are_checked, every_mistake_is_named,
                positionals_dash_and_help, help_comes_from_the_table),
        TU_CASE("binary", NULL, NULL, 0, binary_case, set_in_check_as_in_run, every_value_option_is_covered))
