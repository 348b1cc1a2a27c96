/* A test-side writer of cka.h5, written from the README's "Output" section
 * (not from src/output.c), with switches that break it in the ways the
 * readers must report. Shared by test_ckafile, test_plot and test_show. */
#ifndef MK_RESULTFILE_H
#define MK_RESULTFILE_H

typedef struct {
    int nx, ny;
    const double *cka; /* nx by ny */
    const char *const *x_layers, *const *y_layers;
    const char *x_name, *y_name;
    int self;
    /* breakage */
    const char *skip;     /* a dataset or attribute left out */
    int cka_1d;           /* /cka written with one dimension */
    int cka_int;          /* /cka written as integers */
    int x_layers_short;   /* /x_layers with one name too few */
    int x_layers_numeric; /* /x_layers as numbers */
    int fixed_strings;    /* names as fixed-length strings (valid) */
    int self_as_text;     /* `self` as a string */
} rf_result;

/* Values written for the attributes that rf_result does not set. */
#define RF_N 1000
#define RF_SEED 12345678901234567890ULL /* above INT64_MAX: stored unsigned */
#define RF_SECONDS 1.25
#define RF_RANKS 3
#define RF_CONFIG "x:\n  file: acts/a.h5\n  layers: [\"conv*\"]\nbatch_size: 256\noutput: out\n"

/* Writes path (replacing it); aborts on an HDF5 failure. */
void rf_write(const char *path, const rf_result *r);

/* A ready result: nx by ny with cka[i][j] = (i + 1) / (i + j + 2), names
 * "x/layer<i>" and "y/layer<j>", models "alpha" and "beta" (self: alpha). */
void rf_write_simple(const char *path, int nx, int ny, int self);

#endif
