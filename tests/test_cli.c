/* The options parser every subcommand uses (mpicka/cli.h), on a table of its own. */
#include <check.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "mpicka/cli.h"
#include "mpicka/config.h"

#include "testutil.h"

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

int main(void)
{
    Suite *s = suite_create("cli");
    TCase *tc = tcase_create("parse");
    tcase_add_test(tc, both_forms_give_the_same_values);
    tcase_add_test(tc, defaults_fill_what_is_not_given);
    tcase_add_test(tc, lists_repeat_and_others_do_not);
    tcase_add_test(tc, bounds_and_kinds_are_checked);
    tcase_add_test(tc, every_mistake_is_named);
    tcase_add_test(tc, positionals_dash_and_help);
    tcase_add_test(tc, help_comes_from_the_table);
    suite_add_tcase(s, tc);
    return tu_run_suite(s, 1);
}
