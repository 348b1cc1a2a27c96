/* The command line of every subcommand (contract in mpicka/cli.h). */
#include "mpicka/cli.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#define CLI_HEAD_WIDTH 22 /* the column of option names in --help */

/* One pass over argv. */
typedef struct {
    const mk_cli_cmd *cmd;
    int argc;
    char **argv;
    mk_opt_val *vals;
    const char **args;
    int nargs; /* positional arguments found so far */
} parser;

static const mk_opt *find_opt(const mk_cli_cmd *cmd, const char *arg, size_t len)
{
    for (int k = 0; k < cmd->nopts; k++) {
        const char *names[2] = {cmd->opts[k].name, cmd->opts[k].alias};
        for (int a = 0; a < 2; a++)
            if (names[a] && strlen(names[a]) == len && strncmp(names[a], arg, len) == 0) return &cmd->opts[k];
    }
    return NULL;
}

static int is_help(const char *arg) { return strcmp(arg, "-h") == 0 || strcmp(arg, "--help") == 0; }

/* strto* skip leading blanks and take what they can: a number must start
 * with a digit or a sign (or a point, for reals) and be read whole. */
static int starts_number(const char *s) { return s[0] == '-' || s[0] == '+' || (s[0] >= '0' && s[0] <= '9'); }

static mk_err read_int(const char *cmd, const char *name, const mk_opt *o, const char *s, int64_t *v)
{
    char *end = NULL;
    errno = 0;
    long long x = starts_number(s) ? strtoll(s, &end, 10) : 0;
    if (end && *end == '\0' && errno == 0 && x >= o->min && x <= o->max) {
        *v = x;
        return MK_OK;
    }
    if (o->max >= 0x1p63) /* INT64_MAX: no upper bound to speak of */
        return mk_fail(MK_EUSAGE, "%s: %s '%s': expected an integer >= %.0f", cmd, name, s, o->min);
    return mk_fail(MK_EUSAGE, "%s: %s '%s': expected an integer from %.0f to %.0f", cmd, name, s, o->min,
                   o->max);
}

static mk_err read_uint64(const char *cmd, const char *name, const char *s, uint64_t *v)
{
    char *end = NULL;
    errno = 0;
    unsigned long long x = s[0] >= '0' && s[0] <= '9' ? strtoull(s, &end, 10) : 0;
    if (!end || *end != '\0' || errno != 0)
        return mk_fail(MK_EUSAGE, "%s: %s '%s': expected an unsigned 64-bit integer", cmd, name, s);
    *v = x;
    return MK_OK;
}

static mk_err read_real(const char *cmd, const char *name, const mk_opt *o, const char *s, double *v)
{
    char *end = NULL;
    errno = 0;
    double x = starts_number(s) || s[0] == '.' ? strtod(s, &end) : 0.0;
    int low = o->min_open ? x <= o->min : x < o->min;
    if (end && *end == '\0' && isfinite(x) && !low && x <= o->max) {
        *v = x;
        return MK_OK;
    }
    if (o->min == -HUGE_VAL && o->max == HUGE_VAL)
        return mk_fail(MK_EUSAGE, "%s: %s '%s': expected a finite number", cmd, name, s);
    if (o->max == HUGE_VAL)
        return mk_fail(MK_EUSAGE, "%s: %s '%s': expected a finite number %s %g", cmd, name, s,
                       o->min_open ? ">" : ">=", o->min);
    return mk_fail(MK_EUSAGE, "%s: %s '%s': expected a number in %c%g, %g]", cmd, name, s,
                   o->min_open ? '(' : '[', o->min, o->max);
}

/* The value s of option o (written, or its default) into v by o's kind;
 * messages call o name, as the user wrote it ("-n" or "--ranks"). */
static mk_err read_value(const parser *p, const mk_opt *o, const char *name, const char *s, mk_opt_val *v)
{
    const char *cmd = p->cmd->name;
    v->text = s;
    switch (o->kind) {
    case MK_OPT_FLAG:
    case MK_OPT_STRING: return MK_OK;
    case MK_OPT_INT: return read_int(cmd, name, o, s, &v->i);
    case MK_OPT_UINT64: return read_uint64(cmd, name, s, &v->u);
    case MK_OPT_REAL: return read_real(cmd, name, o, s, &v->r);
    case MK_OPT_LIST:
        if (!v->list) { /* room for every argument: no list is longer */
            mk_err err = MK_OK;
            v->list = mk_calloc((size_t)p->argc, sizeof *v->list, "an option list", &err);
            MK_TRY(err);
        }
        v->list[v->given] = (char *)s;
        return MK_OK;
    }
    return mk_fail(MK_EINTERNAL, "%s: %s: unknown kind of option", cmd, o->name);
}

/* The value of o at argv[*i]: after its '=' (eq), else the next argument.
 * name is o's name as written there. */
static mk_err take_value(parser *p, const mk_opt *o, const char *name, const char *eq, int *i)
{
    const char *cmd = p->cmd->name, *arg = p->argv[*i];
    if (o->kind == MK_OPT_FLAG) {
        if (eq) return mk_fail(MK_EUSAGE, "%s: %s takes no value (got '%s')", cmd, o->name, arg);
        return read_value(p, o, name, "", &p->vals[o - p->cmd->opts]);
    }
    if (!eq && *i + 1 >= p->argc) {
        /* A value with a syntax of its own is named by it: "--set needs KEY=VALUE". */
        if (o->check) return mk_fail(MK_EUSAGE, "%s: %s needs %s", cmd, name, o->metavar);
        return mk_fail(MK_EUSAGE, "%s: %s needs a value (%s)", cmd, name, o->metavar);
    }
    const char *value = eq ? eq + 1 : p->argv[++*i];
    if (o->check) MK_TRY(o->check(value, *i + 1 < p->argc ? p->argv[*i + 1] : NULL));
    return read_value(p, o, name, value, &p->vals[o - p->cmd->opts]);
}

/* One option at argv[*i]; may consume the next argument as its value. */
static mk_err take_option(parser *p, int *i)
{
    const char *cmd = p->cmd->name, *arg = p->argv[*i];
    const char *eq = strncmp(arg, "--", 2) == 0 ? strchr(arg, '=') : NULL;
    size_t len = eq ? (size_t)(eq - arg) : strlen(arg);
    const mk_opt *o = find_opt(p->cmd, arg, len);
    char name[64];
    if (!o) return mk_fail(MK_EUSAGE, "%s: unknown option '%s' (see mpicka %s --help)", cmd, arg, cmd);
    mk_opt_val *v = &p->vals[o - p->cmd->opts];
    if (v->given && o->kind != MK_OPT_LIST) return mk_fail(MK_EUSAGE, "%s: %s is given twice", cmd, o->name);
    snprintf(name, sizeof name, "%.*s", (int)len, arg);
    MK_TRY(take_value(p, o, name, eq, i));
    v->given++;
    return MK_OK;
}

static mk_err take_argument(parser *p, const char *arg)
{
    const char *cmd = p->cmd->name;
    if (p->nargs == p->cmd->nargs)
        return mk_fail(MK_EUSAGE, "%s: unexpected argument '%s' (see mpicka %s --help)", cmd, arg, cmd);
    p->args[p->nargs++] = arg;
    return MK_OK;
}

/* Defaults first, read as a written value would be: the table's defaults
 * are checked by the same rules as the user's. */
static mk_err set_defaults(parser *p)
{
    memset(p->vals, 0, (size_t)p->cmd->nopts * sizeof *p->vals);
    for (int k = 0; k < p->cmd->nopts; k++)
        if (p->cmd->opts[k].deflt && p->cmd->opts[k].kind != MK_OPT_LIST)
            MK_TRY(read_value(p, &p->cmd->opts[k], p->cmd->opts[k].name, p->cmd->opts[k].deflt, &p->vals[k]));
    return MK_OK;
}

mk_err mk_cli_parse(const mk_cli_cmd *cmd, int argc, char **argv, mk_opt_val *vals, const char **args,
                    int *help)
{
    parser p = {cmd, argc, argv, vals, args, 0};
    int options_done = 0;
    *help = 0;
    for (int k = 0; k < cmd->nargs; k++) args[k] = NULL;
    MK_TRY(set_defaults(&p));
    for (int i = 1; i < argc; i++) {
        const char *arg = argv[i];
        if (!options_done && is_help(arg)) {
            *help = 1;
            return MK_OK;
        }
        if (!options_done && strcmp(arg, "--") == 0)
            options_done = 1;
        else if (!options_done && arg[0] == '-' && arg[1] != '\0')
            MK_TRY(take_option(&p, &i));
        else
            MK_TRY(take_argument(&p, arg));
    }
    if (p.nargs < cmd->nargs)
        return mk_fail(MK_EUSAGE, "%s: missing %s (see mpicka %s --help)", cmd->name, cmd->args[p.nargs],
                       cmd->name);
    return MK_OK;
}

void mk_cli_free(const mk_cli_cmd *cmd, mk_opt_val *vals)
{
    for (int k = 0; k < cmd->nopts; k++) {
        free(vals[k].list);
        vals[k].list = NULL;
    }
}

mk_err mk_cli_main(const mk_cli_cmd *cmd, int argc, char **argv,
                   mk_err (*body)(const mk_opt_val *vals, const char *const *args))
{
    mk_opt_val vals[MK_CLI_MAX_OPTS];
    const char *args[MK_CLI_MAX_ARGS];
    int help;
    if (cmd->nopts > MK_CLI_MAX_OPTS || cmd->nargs > MK_CLI_MAX_ARGS)
        return mk_fail(MK_EINTERNAL, "%s: more options or arguments than the parser holds", cmd->name);
    mk_err err = mk_cli_parse(cmd, argc, argv, vals, args, &help);
    if (!err && help) mk_cli_help(stdout, cmd);
    else if (!err) err = body(vals, args);
    mk_cli_free(cmd, vals);
    return err;
}

/* One entry of --help: the names in a column, then the help text, its lines
 * indented to that column, and the default. */
static void help_entry(FILE *out, const char *alias, const char *name, const char *metavar, const char *help,
                       const char *deflt)
{
    char head[128];
    snprintf(head, sizeof head, "%s%s%s%s%s", alias ? alias : "", alias ? ", " : "", name, metavar ? " " : "",
             metavar ? metavar : "");
    if (strlen(head) > CLI_HEAD_WIDTH)
        fprintf(out, "  %s\n  %-*s ", head, CLI_HEAD_WIDTH, "");
    else
        fprintf(out, "  %-*s ", CLI_HEAD_WIDTH, head);
    for (const char *line = help; *line;) {
        size_t len = strcspn(line, "\n");
        fprintf(out, "%.*s", (int)len, line);
        line += len;
        if (*line == '\n' && *++line) fprintf(out, "\n  %-*s ", CLI_HEAD_WIDTH, "");
    }
    if (deflt) fprintf(out, " (default %s)", deflt);
    fputc('\n', out);
}

void mk_cli_help(FILE *out, const mk_cli_cmd *cmd)
{
    fprintf(out, "usage: %s\n%s\n\n", cmd->usage, cmd->about);
    for (int k = 0; k < cmd->nopts; k++) {
        const mk_opt *o = &cmd->opts[k];
        help_entry(out, o->alias, o->name, o->metavar, o->help, o->deflt);
    }
    help_entry(out, "-h", "--help", NULL, "print this text", NULL);
}
