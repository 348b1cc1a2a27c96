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
    /* the optional contents of newer results (NULL: not written) */
    const double *cka_stderr, *cka_pvalue; /* nx by ny */
    const char *meta;                      /* the /meta group with this description and RF_META_* */
    int meta_fixed;                        /* /meta's strings fixed-length (valid) */
    /* and their breakage */
    int stderr_transposed; /* /cka_stderr written ny by nx */
    int pvalue_int;        /* /cka_pvalue as integers */
    int meta_dataset;      /* /meta a dataset, not a group */
} rf_result;

/* Values written for the attributes that rf_result does not set. */
#define RF_N 1000
#define RF_SEED 12345678901234567890ULL /* above INT64_MAX: stored unsigned */
#define RF_SECONDS 1.25
#define RF_RANKS 3
#define RF_CONFIG "x:\n  file: acts/a.h5\n  layers: [\"conv*\"]\nbatch_size: 256\noutput: out\n"

/* The attributes of /meta besides its description. */
#define RF_META_ESTIMATOR "hsic1"
#define RF_META_KERNEL "rbf"
#define RF_META_THRESHOLD 0.5
#define RF_META_GROUPS 20
#define RF_META_PERMUTATIONS 1000
#define RF_DESCRIPTION                                                                                 \
    "minibatch CKA, unbiased HSIC_1, RBF kernel (bandwidth 0.5 x median distance); jackknife over 20 " \
    "groups; 1000 permutations"

/* Writes path (replacing it); aborts on an HDF5 failure. */
void rf_write(const char *path, const rf_result *r);

/* A ready result: nx by ny with cka[i][j] = (i + 1) / (i + j + 2), names
 * "x/layer<i>" and "y/layer<j>", models "alpha" and "beta" (self: alpha). */
void rf_write_simple(const char *path, int nx, int ny, int self);

/* rf_write_simple's result with the newer contents: /cka_stderr
 * (i + j + 1) / 1000, /cka_pvalue 1 / (i + j + 2) and /meta (RF_DESCRIPTION). */
void rf_write_full(const char *path, int nx, int ny, int self);

#endif
