/* Strict command-line parsing for the small subcommands (plot, show): one
 * table of options drives parsing and --help. Not MPI. */
#ifndef MPICKA_CLI_H
#define MPICKA_CLI_H

#include <stdio.h>

#include "mpicka/error.h"

typedef struct {
    const char *name;    /* "--title" */
    const char *alias;   /* short form ("-o") or NULL */
    const char *metavar; /* NULL: a flag, which takes no value */
    const char *help;
} mk_cli_opt;

/* Parses argv[1..argc) against table: `--opt VALUE`, `--opt=VALUE`, flags,
 * and up to maxpos positional arguments (after `--`, everything is
 * positional). values[k] gets option k's value ("" for a flag) or stays
 * NULL. An unknown option, a missing value, a value given to a flag, an
 * option given twice or one positional too many is MK_EUSAGE, naming it and
 * prefixed by cmd. Stops early, with *help = 1, at -h or --help. */
mk_err mk_cli_parse(const char *cmd, const mk_cli_opt *table, int nopts, int argc, char **argv,
                    const char **values, const char **pos, int maxpos, int *npos, int *help);

/* s as a finite number, or MK_EUSAGE naming cmd, opt and s. */
mk_err mk_cli_real(const char *cmd, const char *opt, const char *s, double *v);
/* s as an integer in [lo, hi], or MK_EUSAGE naming cmd, opt and s. */
mk_err mk_cli_int(const char *cmd, const char *opt, const char *s, long lo, long hi, long *v);

/* The table as help text, one option a line. */
void mk_cli_help(FILE *out, const mk_cli_opt *table, int nopts);

#endif
