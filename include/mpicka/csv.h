/* The CSV of a result, which `mpicka run` writes as cka.csv and
 * `mpicka show --format csv` prints: one writer, so both give the same bytes.
 * Not collective; no HDF5. */
#ifndef MPICKA_CSV_H
#define MPICKA_CSV_H

#include <stdio.h>

/* cka.csv, which `mpicka show --format csv` prints too. A field with a
 * comma, quote or line break is quoted; values are the shortest text that
 * reads back as the same double (mk_double_text in mpicka/text.h).
 * The matrix: the column names as header, a row name first on each line.
 * A models result: one line per pair of layers (model_a, layer_a, model_b,
 * layer_b, cka, stderr, pvalue; se and pv may be NULL: empty fields), the
 * flat layer names in `layers`, model k's from offset[k] to offset[k+1]. */
void mk_csv_field(FILE *f, const char *s);
void mk_csv_matrix(FILE *f, int nx, int ny, const char *const *xl, const char *const *yl, const double *v);
void mk_csv_models(FILE *f, int nmodels, const char *const *names, const int *offset,
                   const char *const *layers, const double *cka, const double *se, const double *pv);
/* The same with the value column called what (a measure's name) instead of cka. */
void mk_csv_models_of(FILE *f, const char *what, int nmodels, const char *const *names, const int *offset,
                      const char *const *layers, const double *v, const double *se, const double *pv);

#endif
