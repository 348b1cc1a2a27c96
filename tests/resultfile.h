/* A test-side writer of cka.h5, written from docs/output.md, "Output"
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
    /* a models result (nmodels > 0; nx = ny = model_offsets[nmodels]), as the
     * notes on the models format say: the `models` attribute and these */
    int nmodels;
    const char *const *model_names, *const *model_files; /* nmodels each */
    const char *files;                                   /* x_file and y_file: the files joined by ", " */
    const long long *model_offsets;                      /* nmodels + 1 */
    int nmatched;
    const char *const *matched_layers;                                  /* nmatched */
    const double *cka_matched, *cka_matched_stderr, *cka_matched_pvalue; /* nmatched by nmodels by nmodels */
    /* and their breakage (skip also takes model_names, model_offsets, ...) */
    long long models_attr;  /* nonzero: the `models` attribute says this instead */
    int models_as_text;     /* `models` a string */
    int offsets_count;      /* nonzero: /model_offsets holds this many of model_offsets */
    int offsets_float;      /* /model_offsets as floats */
    int names_count;        /* nonzero: /model_names holds this many of model_names */
    int matched_first;      /* nonzero: /cka_matched's first dimension (nmatched values repeated) */
} rf_result;

/* Values written for the attributes that rf_result does not set. */
#define RF_N 1000
#define RF_SEED 12345678901234567890ULL /* above INT64_MAX: stored unsigned */
#define RF_SECONDS 1.25
#define RF_SECONDS_TOTAL 434.8921778 /* printf("%.17g") gives 434.89217780000001 */
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

/* A models result: model k has layers[k] layers named "layer0", "layer1",
 * ... (so the first min(layers) are matched), file "acts/<name>.h5"; cka
 * (L by L, L the sum of layers) and, when not NULL, cka_stderr, cka_pvalue
 * and meta (RF_DESCRIPTION) as given; /cka_matched* copied out of them. */
typedef struct {
    int nmodels;
    const char *const *names;
    const int *layers;
    const double *cka, *cka_stderr, *cka_pvalue;
    const char *meta;
} rf_models;

void rf_write_models(const char *path, const rf_models *m);

/* rf_write_models's data without writing it, for tests that break it:
 * the strings and arrays live until rf_models_free. */
typedef struct {
    rf_result r;
    char **layers, **files, **matched, *joined_names, *joined_files;
    long long *offsets;
    double *matched_values[3];
} rf_models_made;

void rf_models_make(const rf_models *m, rf_models_made *made);
void rf_models_free(rf_models_made *made);

#endif
