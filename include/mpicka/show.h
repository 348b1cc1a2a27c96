/* `mpicka show`: a cka.h5 as a table, CSV or JSON on stdout. Not MPI. */
#ifndef MPICKA_SHOW_H
#define MPICKA_SHOW_H

#include <stdio.h>

#include "mpicka/ckafile.h"
#include "mpicka/error.h"

typedef enum { MK_SHOW_TABLE, MK_SHOW_CSV, MK_SHOW_JSON } mk_show_format;

/* Writes f to out, the matrix being f->shown (CKA, its standard errors or
 * its p-values; see mk_ckafile_choose):
 * - MK_SHOW_TABLE: the matrix with 3 decimals ("nan" for NaN; CKA with its
 *   standard error as 0.831±0.012 when the file has them), aligned, layer
 *   names as row labels and column headers (long ones cut to their ends),
 *   split into blocks of columns no wider than width characters; then the
 *   provenance (models, files, sizes, run, version, time) and the stored config.
 * - MK_SHOW_CSV: exactly what cka.csv holds: "layer,<y names>", then
 *   "<x name>,<values>" rows, RFC 4180 quoting, each value the shortest text
 *   that reads back as the same double (mk_double_text).
 * - MK_SHOW_JSON: {"x_layers": [...], "y_layers": [...], "cka": [[...], ...],
 *   "attributes": {...}}, NaN and infinities as null, numbers as in the CSV. */
mk_err mk_show_write(FILE *out, const mk_ckafile *f, mk_show_format fmt, int width);

/* `mpicka show RESULT.h5 [--format table|csv|json] [--matrix cka|stderr|pvalue]`;
 * argv[0] is "show". JSON also holds "cka_stderr", "cka_pvalue" and "meta"
 * when the file has them. */
mk_err mk_show_main(int argc, char **argv);

#endif
