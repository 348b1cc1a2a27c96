/* The command line of every subcommand (run, check, show, plot, synth): each
 * declares a table of its options, and one parser reads argv against it,
 * checks kinds and bounds, fills in defaults, writes the error messages and
 * generates --help. Not MPI. */
#ifndef MPICKA_CLI_H
#define MPICKA_CLI_H

#include <stdint.h>
#include <stdio.h>

#include "mpicka/error.h"

typedef enum {
    MK_OPT_FLAG,   /* no value */
    MK_OPT_STRING, /* any text, "" included */
    MK_OPT_INT,    /* a whole int64 within [min, max] */
    MK_OPT_UINT64, /* any unsigned 64-bit integer */
    MK_OPT_REAL,   /* a finite number within [min, max] ((min, max] with min_open) */
    MK_OPT_LIST    /* text, repeatable: every value is kept, in order (--set) */
} mk_opt_kind;

typedef struct {
    const char *name;    /* "--title" */
    const char *alias;   /* short form ("-o") or NULL */
    mk_opt_kind kind;
    const char *metavar; /* the value in help and messages ("FIG"); NULL for a flag */
    double min, max;     /* MK_OPT_INT and MK_OPT_REAL: the bounds (+-HUGE_VAL, or INT64_MAX: none) */
    int min_open;        /* MK_OPT_REAL: min itself is out */
    const char *deflt;   /* taken as if given when the option is not (not for lists); NULL: none */
    /* A value's own syntax, checked as it is read, with its own messages;
     * next is the argument after it (NULL: none), for hints such as "write
     * --set K=V". A missing value is then named by the metavar: "--set needs
     * KEY=VALUE", not "--set needs a value (KEY=VALUE)". NULL: none. */
    mk_err (*check)(const char *value, const char *next);
    const char *help;    /* one line, or lines joined by '\n' */
} mk_opt;

/* One subcommand: its options and its positional arguments, all required. */
typedef struct {
    const char *name;    /* "plot": prefixes every message */
    const char *usage;   /* the synopsis after "usage: " */
    const char *about;   /* what it does, printed under the synopsis */
    const mk_opt *opts;
    int nopts;
    const char *const *args; /* names of the positional arguments ("RESULT.h5") */
    int nargs;
} mk_cli_cmd;

/* What the command line says about one option. */
typedef struct {
    int given;        /* on the command line (a list: how many times) */
    const char *text; /* the value as written, else the default, else NULL; a flag given: "" */
    int64_t i;        /* MK_OPT_INT */
    uint64_t u;       /* MK_OPT_UINT64 */
    double r;         /* MK_OPT_REAL */
    char **list;      /* MK_OPT_LIST: every value, in order (count of them: given) */
} mk_opt_val;

/* Parses argv[1..argc) against cmd: `--opt VALUE`, `--opt=VALUE`, short
 * aliases (`-o VALUE`), flags, repeated lists and cmd->nargs positional
 * arguments anywhere (after `--`, everything is positional). vals (cmd->nopts
 * of them) and args (cmd->nargs) are filled in; free vals with mk_cli_free,
 * whatever this returns. An unknown option, a value missing, out of bounds
 * or given to a flag, an option given twice, an argument too many or one
 * missing is MK_EUSAGE, prefixed by cmd->name and naming the argument. Stops
 * early, with *help = 1 and no argument required, at -h or --help. */
mk_err mk_cli_parse(const mk_cli_cmd *cmd, int argc, char **argv, mk_opt_val *vals, const char **args,
                    int *help);
void mk_cli_free(const mk_cli_cmd *cmd, mk_opt_val *vals);

/* A subcommand's main: parses argv against cmd (at most MK_CLI_MAX_OPTS
 * options and MK_CLI_MAX_ARGS arguments), then prints --help or runs body
 * with the values and the positional arguments, and frees the values. */
#define MK_CLI_MAX_OPTS 32
#define MK_CLI_MAX_ARGS 4
mk_err mk_cli_main(const mk_cli_cmd *cmd, int argc, char **argv,
                   mk_err (*body)(const mk_opt_val *vals, const char *const *args));

/* --help from the table: the synopsis, cmd->about and one entry per option
 * with its default, then -h, --help. */
void mk_cli_help(FILE *out, const mk_cli_cmd *cmd);

#endif
