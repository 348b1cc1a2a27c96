/* Strict option parsing for plot and show (contract in mpicka/cli.h). */
#include "mpicka/cli.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

static int find_opt(const mk_cli_opt *table, int nopts, const char *arg, size_t len)
{
    for (int k = 0; k < nopts; k++) {
        const char *names[2] = {table[k].name, table[k].alias};
        for (int a = 0; a < 2; a++)
            if (names[a] && strlen(names[a]) == len && strncmp(names[a], arg, len) == 0) return k;
    }
    return -1;
}

static int is_help(const char *arg) { return strcmp(arg, "-h") == 0 || strcmp(arg, "--help") == 0; }

/* One option at argv[*i]; may consume the next argument as its value. */
static mk_err take_option(const char *cmd, const mk_cli_opt *table, int nopts, int argc, char **argv, int *i,
                          const char **values)
{
    const char *arg = argv[*i], *eq = strncmp(arg, "--", 2) == 0 ? strchr(arg, '=') : NULL;
    int k = find_opt(table, nopts, arg, eq ? (size_t)(eq - arg) : strlen(arg));
    if (k < 0) return mk_fail(MK_EUSAGE, "%s: unknown option '%s' (see mpicka %s --help)", cmd, arg, cmd);
    const mk_cli_opt *o = &table[k];
    if (values[k]) return mk_fail(MK_EUSAGE, "%s: %s is given twice", cmd, o->name);
    if (!o->metavar) {
        if (eq) return mk_fail(MK_EUSAGE, "%s: %s takes no value (got '%s')", cmd, o->name, arg);
        values[k] = "";
        return MK_OK;
    }
    if (eq) {
        values[k] = eq + 1;
        return MK_OK;
    }
    if (*i + 1 >= argc) return mk_fail(MK_EUSAGE, "%s: %s needs a value (%s)", cmd, o->name, o->metavar);
    values[k] = argv[++*i];
    return MK_OK;
}

mk_err mk_cli_parse(const char *cmd, const mk_cli_opt *table, int nopts, int argc, char **argv,
                    const char **values, const char **pos, int maxpos, int *npos, int *help)
{
    int options_done = 0;
    *npos = 0;
    *help = 0;
    for (int k = 0; k < nopts; k++) values[k] = NULL;
    for (int i = 1; i < argc; i++) {
        const char *arg = argv[i];
        if (!options_done && is_help(arg)) {
            *help = 1;
            return MK_OK;
        }
        if (!options_done && strcmp(arg, "--") == 0) {
            options_done = 1;
        } else if (!options_done && arg[0] == '-' && arg[1] != '\0') {
            MK_TRY(take_option(cmd, table, nopts, argc, argv, &i, values));
        } else if (*npos < maxpos) {
            pos[(*npos)++] = arg;
        } else {
            return mk_fail(MK_EUSAGE, "%s: unexpected argument '%s' (see mpicka %s --help)", cmd, arg, cmd);
        }
    }
    return MK_OK;
}

mk_err mk_cli_real(const char *cmd, const char *opt, const char *s, double *v)
{
    char *end = NULL;
    errno = 0;
    double x = s[0] != '\0' && s[0] != ' ' ? strtod(s, &end) : 0.0;
    if (!end || *end != '\0' || errno != 0 || !isfinite(x))
        return mk_fail(MK_EUSAGE, "%s: %s '%s': expected a finite number", cmd, opt, s);
    *v = x;
    return MK_OK;
}

mk_err mk_cli_int(const char *cmd, const char *opt, const char *s, long lo, long hi, long *v)
{
    char *end = NULL;
    errno = 0;
    long x = (s[0] >= '0' && s[0] <= '9') || s[0] == '-' ? strtol(s, &end, 10) : 0;
    if (!end || *end != '\0' || errno != 0 || x < lo || x > hi)
        return mk_fail(MK_EUSAGE, "%s: %s '%s': expected an integer from %ld to %ld", cmd, opt, s, lo, hi);
    *v = x;
    return MK_OK;
}

void mk_cli_help(FILE *out, const mk_cli_opt *table, int nopts)
{
    for (int k = 0; k < nopts; k++) {
        char head[64];
        snprintf(head, sizeof head, "%s%s%s%s%s", table[k].alias ? table[k].alias : "",
                 table[k].alias ? ", " : "", table[k].name, table[k].metavar ? " " : "",
                 table[k].metavar ? table[k].metavar : "");
        fprintf(out, "  %-22s %s\n", head, table[k].help);
    }
}
