/* Tests of the option parser shared by plot and show (mpicka/cli.h). */
#include <check.h>
#include <stdlib.h>
#include <string.h>

#include "mpicka/cli.h"

#include "testutil.h"

static const mk_cli_opt table[] = {
    {"--output", "-o", "FILE", "where"},
    {"--vmin", NULL, "V", "low end"},
    {"--half", NULL, NULL, "a flag"},
};

enum { OUT, VMIN, HALF };

typedef struct {
    const char *v[3], *pos[2];
    int npos, help;
} parsed;

/* Parses a NULL-terminated argument list after argv[0] = "plot". */
static mk_err parse(parsed *p, int maxpos, const char **args)
{
    char *argv[32] = {(char *)"plot"};
    int argc = 1;
    for (int k = 0; args[k]; k++) argv[argc++] = (char *)args[k];
    return mk_cli_parse("plot", table, 3, argc, argv, p->v, p->pos, maxpos, &p->npos, &p->help);
}

#define PARSE(p, maxpos, ...) parse(p, maxpos, (const char *[]){__VA_ARGS__, NULL})

static void expect_error(mk_err err, const char *words)
{
    ck_assert_int_eq(err, MK_EUSAGE);
    ck_assert_msg(strncmp(mk_errmsg(), "plot: ", 6) == 0, "no command prefix: %s", mk_errmsg());
    ck_assert_msg(strstr(mk_errmsg(), words) != NULL, "'%s' not in: %s", words, mk_errmsg());
}

START_TEST(options_values_flags_and_positionals)
{
    parsed p;
    ck_assert_int_eq(PARSE(&p, 2, "r.h5", "-o", "f.png", "--vmin=-0.5", "--half", "--", "-odd.h5"), MK_OK);
    ck_assert_str_eq(p.v[OUT], "f.png");
    ck_assert_str_eq(p.v[VMIN], "-0.5");
    ck_assert_str_eq(p.v[HALF], "");
    ck_assert_int_eq(p.npos, 2);
    ck_assert_str_eq(p.pos[0], "r.h5");
    ck_assert_str_eq(p.pos[1], "-odd.h5");
    ck_assert_int_eq(p.help, 0);
    ck_assert_int_eq(PARSE(&p, 1, "--output", "g.svg", "--vmin", "-1"), MK_OK);
    ck_assert_str_eq(p.v[OUT], "g.svg");
    ck_assert_str_eq(p.v[VMIN], "-1");
    ck_assert_ptr_null(p.v[HALF]);
    ck_assert_int_eq(p.npos, 0);
}
END_TEST

START_TEST(help_stops_parsing)
{
    parsed p;
    ck_assert_int_eq(PARSE(&p, 1, "a", "-h", "--bogus"), MK_OK);
    ck_assert_int_eq(p.help, 1);
    ck_assert_int_eq(PARSE(&p, 1, "--help"), MK_OK);
    ck_assert_int_eq(p.help, 1);
}
END_TEST

START_TEST(every_mistake_is_named)
{
    parsed p;
    expect_error(PARSE(&p, 1, "--frob"), "unknown option '--frob'");
    expect_error(PARSE(&p, 1, "-x"), "unknown option '-x'");
    expect_error(PARSE(&p, 1, "--vmin"), "--vmin needs a value (V)");
    expect_error(PARSE(&p, 1, "--half=1"), "--half takes no value");
    expect_error(PARSE(&p, 1, "-o", "a.png", "--output=b.png"), "--output is given twice");
    expect_error(PARSE(&p, 1, "a.h5", "b.h5"), "unexpected argument 'b.h5'");
}
END_TEST

START_TEST(numbers_are_checked_whole)
{
    double d;
    long k;
    ck_assert_int_eq(mk_cli_real("plot", "--vmin", "-0.25", &d), MK_OK);
    ck_assert(d == -0.25);
    ck_assert_int_eq(mk_cli_real("plot", "--vmin", "1e-3", &d), MK_OK);
    ck_assert(d == 1e-3);
    expect_error(mk_cli_real("plot", "--vmin", "0.5x", &d), "--vmin '0.5x': expected a finite number");
    expect_error(mk_cli_real("plot", "--vmin", "", &d), "--vmin '': expected");
    expect_error(mk_cli_real("plot", "--vmin", "nan", &d), "finite");
    expect_error(mk_cli_real("plot", "--vmin", "inf", &d), "finite");
    expect_error(mk_cli_real("plot", "--vmin", "1e999", &d), "finite");
    ck_assert_int_eq(mk_cli_int("plot", "--k", "3", 0, 9, &k), MK_OK);
    ck_assert_int_eq(k, 3);
    expect_error(mk_cli_int("plot", "--k", "10", 0, 9, &k), "--k '10': expected an integer from 0 to 9");
    expect_error(mk_cli_int("plot", "--k", "-1", 0, 9, &k), "from 0 to 9");
    expect_error(mk_cli_int("plot", "--k", "2.5", 0, 9, &k), "'2.5'");
    expect_error(mk_cli_int("plot", "--k", " 2", 0, 9, &k), "' 2'");
}
END_TEST

TU_MAIN("cli", 0,
        TU_CASE("parse", NULL, NULL, 0, NULL, options_values_flags_and_positionals, help_stops_parsing,
                every_mistake_is_named, numbers_are_checked_whole))
