/* Helpers shared by the Check suites: temporary folders (tu_dir, a fixture),
 * running commands (mpirun included, the launcher read at run time),
 * assertions that show a command's output, writing and reading small HDF5
 * files, and each test program's main (TU_MAIN). */
#ifndef MK_TESTUTIL_H
#define MK_TESTUTIL_H

#include <check.h>
#include <hdf5.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "mpicka/error.h"

/* A fresh folder under the system's temporary folder (malloc'd path). */
char *tu_tmpdir(void);
void tu_rmrf(const char *path);
char *tu_path(const char *dir, const char *name);  /* malloc'd dir/name */

/* The test's folder, as a Check fixture: tu_dir_setup makes a fresh tu_dir,
 * tu_dir_teardown removes it and frees what tu_in returned (a checked
 * fixture: one folder per test; unchecked: one per case, for its tests). */
extern char *tu_dir;
void tu_dir_setup(void);
void tu_dir_teardown(void);
/* tu_dir/name, freed by tu_dir_teardown. */
char *tu_in(const char *name);

/* Run a shell command; returns its exit status, and its merged stdout and
 * stderr in *output (malloc'd) when output is not NULL. */
int tu_run(const char *cmd, char **output);
/* tu_run that must succeed (a Check failure naming the command otherwise). */
void tu_must_run(const char *cmd);
/* The command line and the output of the last tu_run (tu_mpicka and
 * tu_run_config included) of this process, for failure messages. */
const char *tu_last_command(void);
const char *tu_last_output(void);
/* Asserts that status, the exit status of the last command run, is want; a
 * failure shows that command and its output. */
#define tu_assert_exit(status, want)                                                                                   \
    do {                                                                                                               \
        int tu_got_ = (status), tu_want_ = (want);                                                                     \
        ck_assert_msg(tu_got_ == tu_want_, "exit status %d, not %d, of %s\n%s", tu_got_, tu_want_, tu_last_command(), \
                      tu_last_output());                                                                               \
    } while (0)
/* Assert that text holds needle, does not, or holds it n times; a failure
 * shows the text (a command's output, say). */
#define tu_assert_has(text, needle)                                                                                    \
    ck_assert_msg(strstr((text), (needle)) != NULL, "'%s' not in:\n%s", (needle), (text))
#define tu_assert_lacks(text, needle) ck_assert_msg(strstr((text), (needle)) == NULL, "'%s' in:\n%s", (needle), (text))
#define tu_assert_count(text, needle, n)                                                                               \
    do {                                                                                                               \
        int tu_n_ = tu_count((text), (needle)), tu_want_ = (n);                                                        \
        ck_assert_msg(tu_n_ == tu_want_, "'%s' %d time(s), not %d, in:\n%s", (needle), tu_n_, tu_want_, (text));      \
    } while (0)
/* A subcommand's main (mk_plot_main, mk_show_main, ...) called in this
 * process as `name args...`, args NULL-terminated; TU_COMMAND lists them. */
mk_err tu_command(mk_err (*command_main)(int, char **), const char *name, const char **args);
#define TU_COMMAND(command_main, name, ...) tu_command((command_main), (name), (const char *[]){__VA_ARGS__, NULL})
/* Asserts that got is code and that the recorded message (mk_errmsg) holds
 * words; a failure shows both. */
void tu_assert_error(mk_err got, mk_err code, const char *words);
/* The number right after label in text (a Check failure when absent). */
double tu_number_after(const char *text, const char *label);
/* Status 1 with Open MPI's "exiting improperly": the launcher's own exit
 * race after ranks that finalized; tu_mpicka runs such a command again. */
int tu_launcher_race(int status, const char *output);
/* `mpirun -np N mpicka ARGS` in folder cwd (as root, oversubscribed, one
 * BLAS thread per rank). The launcher, its flags and its rank-count flag are
 * $MPIEXEC, $MPIEXEC_FLAGS and $MPIEXEC_NUMPROC_FLAG at run time, else the
 * configured mpirun, "--allow-run-as-root --oversubscribe" and -np. */
int tu_mpicka(int np, const char *cwd, const char *args, char **output);

/* `mpirun -np N mpicka run CONFIG EXTRA` in tu_dir (extra may be NULL). */
int tu_run_config(int np, const char *config, const char *extra, char **output);
/* Write text to tu_dir/name. */
void tu_write_config(const char *name, const char *text);

/* How many times needle occurs in hay. */
int tu_count(const char *hay, const char *needle);

void tu_write_text(const char *path, const char *text);
int tu_exists(const char *path);

/* Write dataset `name` (created with intermediate groups) of file type ftype
 * from double data, creating the file when missing. */
void tu_write_dataset(const char *file, const char *name, hid_t ftype, int rank, const hsize_t *dims,
                      const double *data);
/* Read a whole dataset as double; returns the element count or -1. */
int64_t tu_read_doubles(const char *file, const char *name, double *out, int64_t max);
/* Read a string attribute of the root group (malloc'd) or NULL. */
char *tu_read_str_attr(const char *file, const char *name);
int64_t tu_read_int_attr(const char *file, const char *name);

/* One case of a suite: its name, a checked fixture (setup and teardown
 * around each test; NULL: none), a timeout in seconds (0: Check's default,
 * CK_DEFAULT_TIMEOUT), what else to do to it (more: loop tests, tags, an
 * unchecked fixture; NULL: nothing) and its tests, NULL-terminated. */
typedef struct {
    const char *name;
    SFun setup, teardown;
    double timeout;
    void (*more)(TCase *tc);
    const TTest *const *tests;
} tu_case;
#define TU_CASE(name, setup, teardown, timeout, more, ...)                                                            \
    ((tu_case){(name), (setup), (teardown), (timeout), (more), (const TTest *const[]){__VA_ARGS__, NULL}})
/* Runs suite `suite` of the cases (a list that ends with {NULL}), each test in
 * a child process; with mpi, between MPI_Init and MPI_Finalize and without
 * forking (Open MPI dislikes fork()). Returns main's exit status. */
int tu_main(const char *suite, int mpi, const tu_case *cases);
/* A test program's main: TU_MAIN("suite", mpi, TU_CASE(...), ...). */
#define TU_MAIN(suite, mpi, ...)                                                                                       \
    int main(void) { return tu_main((suite), (mpi), (const tu_case[]){__VA_ARGS__, {NULL}}); }

/* Uniform in [0,1) from a seeded state (tests' own generator). */
double tu_uniform(uint64_t *state);
double tu_normal(uint64_t *state);

#endif
