/* Reading a result back: the cka.h5 that `mpicka run` writes (docs/output.md), for `mpicka plot` and `mpicka show`. Not MPI; one process.
 *
 * Required: the datasets /cka (2-D float, Lx by Ly), /x_layers (Lx strings)
 * and /y_layers (Ly strings), and the string attributes x_name and y_name;
 * their absence is MK_EINPUT naming the file and what is missing. `self`, if
 * there (results of early versions lack it), must be an integer.
 * Every other scalar root attribute (integer, float or string) is read as it
 * is, in name order, whatever its name.
 *
 * Optional (results of earlier versions lack them): /cka_stderr (jackknife
 * standard errors) and /cka_pvalue (permutation p-values), float datasets of
 * /cka's shape, and the group /meta, whose scalar attributes say how the
 * matrix was made (estimator, kernel, rbf_threshold, debiased,
 * jackknife_groups, permutations, description), read like the root ones.
 * A present one of the wrong kind or shape is MK_EINPUT naming the file and
 * it.
 *
 * A models result (a run with `models:`; the root attribute `models` = N)
 * is a self comparison over the N models' layers one after another (L in
 * all) and also holds /model_names (N unique non-empty strings),
 * /model_offsets (N + 1 integers from 0 to L, strictly increasing: model k
 * is rows and columns [off[k], off[k+1]) of /cka), /model_files (N
 * strings), /matched_layers (K >= 0 layer paths every model has) and, when
 * K > 0, /cka_matched (K by N by N) with /cka_matched_stderr and
 * /cka_matched_pvalue beside /cka_stderr and /cka_pvalue. Every one of them
 * is checked; a wrong one is MK_EINPUT naming the file and the dataset. */
#ifndef MPICKA_CKAFILE_H
#define MPICKA_CKAFILE_H

#include <stdint.h>

#include "mpicka/error.h"

typedef enum { MK_ATTR_INT, MK_ATTR_UINT, MK_ATTR_REAL, MK_ATTR_TEXT } mk_attr_kind;

typedef struct {
    char *name;
    mk_attr_kind kind;
    int64_t i;  /* MK_ATTR_INT */
    uint64_t u; /* MK_ATTR_UINT */
    double r;   /* MK_ATTR_REAL */
    char *text; /* MK_ATTR_TEXT, UTF-8 */
} mk_attr;

/* The matrices a result can hold, all nx by ny. */
typedef enum { MK_MATRIX_CKA, MK_MATRIX_STDERR, MK_MATRIX_PVALUE } mk_matrix;
#define MK_MATRIX_COUNT 3

typedef struct {
    int nx, ny;
    double *cka;        /* nx by ny, row-major */
    double *cka_stderr; /* nx by ny, or NULL when the file has none; may hold NaN */
    double *cka_pvalue; /* nx by ny, or NULL */
    char **x_layers, **y_layers;
    mk_attr *attrs; /* sorted by name */
    int nattrs;
    mk_attr *meta; /* the attributes of /meta, sorted by name; NULL and 0 without it */
    int nmeta;
    /* What `mpicka show` prints as table and CSV (mk_show_write): MK_MATRIX_CKA
     * when read; mk_ckafile_choose sets another. */
    mk_matrix shown;
    /* A models result (nmodels >= 1; 0 and NULLs for a two-model one). */
    int nmodels;
    char **model_names, **model_files; /* nmodels each */
    int *model_offsets;                /* nmodels + 1: model k is rows/columns [off[k], off[k+1]) */
    int nmatched;
    char **matched_layers;                 /* nmatched layer paths every model has */
    double *cka_matched;                   /* nmatched by nmodels by nmodels; NULL when nmatched is 0 */
    double *cka_matched_stderr, *cka_matched_pvalue; /* the same shape, or NULL */
    /* 1 for mk_ckafile_matched's view: rows and columns are models, not layers. */
    int matched;
    /* mk_ckafile_measure's: the measure whose values replace cka (NULL: CKA). */
    char *measure;
    /* ...and that measure's attributes (measure, description, its
     * parameters: keep, k, alpha), in name order; NULL and 0 for CKA. */
    mk_attr *measure_attrs;
    int nmeasure_attrs;
} mk_ckafile;

/* Fills f (owned by the caller, freed with mk_ckafile_free, also after a
 * failure). */
mk_err mk_ckafile_read(const char *path, mk_ckafile *f);
void mk_ckafile_free(mk_ckafile *f);

/* The attribute called name, or NULL. */
const mk_attr *mk_ckafile_attr(const mk_ckafile *f, const char *name);
/* A string attribute's text, or NULL when missing or not a string. */
const char *mk_ckafile_text(const mk_ckafile *f, const char *name);
/* Whether x is compared with itself: the `self` attribute, or without it,
 * whether both sides have the same name, file and layers. */
int mk_ckafile_self(const mk_ckafile *f);

/* The attribute of /meta called name, or NULL (also without /meta). */
const mk_attr *mk_ckafile_meta(const mk_ckafile *f, const char *name);
/* A string attribute of /meta, or NULL when missing or not a string; e.g.
 * mk_ckafile_meta_text(f, "description"), one line saying how it was made. */
const char *mk_ckafile_meta_text(const mk_ckafile *f, const char *name);

/* Matrix m of f (nx by ny), or NULL when the file has none. */
const double *mk_ckafile_matrix(const mk_ckafile *f, mk_matrix m);
/* Makes m the matrix shown, or MK_EINPUT naming path (f's file), the
 * dataset and how to get it when f has none. */
mk_err mk_ckafile_choose(mk_ckafile *f, const char *path, mk_matrix m);

/* Replaces f's CKA by the measure /measures/NAME of path (f read from it;
 * written by a run with `measures:`), and CKA's standard errors and
 * p-values by the measure's standard errors (/measures/NAME_stderr, the
 * measures from the minibatch Grams) or none. Of a models result, the whole
 * L by L grid (which mk_ckafile_pair then slices), and the matched views by
 * the measure's (/measures/NAME_matched and NAME_matched_stderr; none in a
 * file of before they were written). MK_EINPUT naming the file and the
 * measures it has when it has no such measure. */
mk_err mk_ckafile_measure(mk_ckafile *f, const char *path, const char *name);

/* The same (plot's name for a models result's grid). */
mk_err mk_ckafile_measure_grid(mk_ckafile *f, const char *path, const char *name);

/* The attribute of the measure shown called name (mk_ckafile_measure), or
 * NULL (also when the CKA is shown). */
const mk_attr *mk_ckafile_measure_attr(const mk_ckafile *f, const char *name);

/* The names of the measures under /measures of the result at path, in name
 * order, into *names (n of them; 0 and NULL without /measures); free with
 * mk_ckafile_names_free. MK_EINPUT naming the file when it cannot be read. */
mk_err mk_ckafile_measure_names(const char *path, char ***names, int *n);
void mk_ckafile_names_free(char **names, int n);

/* ---- views of a models result: ordinary two-model values, so that plot
 * and show draw and print them as any result (out is the caller's, freed
 * with mk_ckafile_free, also after a failure) ---- */

/* The block of model a's layers (rows) against model b's (columns): every
 * matrix sliced, x_name a, y_name b, x_file and y_file theirs, `self` 1
 * exactly when a is b, the other attributes and /meta copied. MK_EUSAGE
 * when f is not a models result, or a or b is not one of its models (the
 * message lists them); path names f's file in messages. */
mk_err mk_ckafile_pair(const mk_ckafile *f, const char *path, const char *a, const char *b, mk_ckafile *out);

/* The same, from the command-line form "A,B" (option is "--pair" for
 * messages, cmd "plot" or "show"): MK_EUSAGE when spec is not two non-empty
 * names around a comma. A name with a comma in it is found when the split
 * at one of the commas gives two model names. */
mk_err mk_ckafile_pair_spec(const mk_ckafile *f, const char *path, const char *cmd, const char *spec,
                            mk_ckafile *out);

/* The N by N matrix of the layer called layer in every model (from
 * /cka_matched*): x_layers = y_layers = the model names, x_name = y_name =
 * layer, `self` 1, `matched` 1. MK_EUSAGE when f is not a models result or
 * layer is not one of /matched_layers (the message lists them, or says no
 * layer is shared). */
mk_err mk_ckafile_matched(const mk_ckafile *f, const char *path, const char *layer, mk_ckafile *out);

/* "cka", "stderr" or "pvalue": m on the command line (--matrix). */
const char *mk_matrix_name(mk_matrix m);
/* "cka", "cka_stderr" or "cka_pvalue": m's dataset in cka.h5. */
const char *mk_matrix_dataset(mk_matrix m);
/* What the values are, for titles: "CKA", "standard error of CKA", "p-value of CKA". */
const char *mk_matrix_what(mk_matrix m);
/* s (a name of mk_matrix_name) as m, or MK_EUSAGE "cmd: --matrix 's': ...". */
mk_err mk_matrix_parse(const char *cmd, const char *s, mk_matrix *m);

#endif
