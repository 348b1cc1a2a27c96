/* `mpicka show` (contract in mpicka/show.h). */
#include "mpicka/show.h"

#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "mpicka/cli.h"
#include "mpicka/csv.h"
#include "mpicka/text.h"

#define SHOW_ROW_LABEL_MAX 32 /* characters of an x layer name in the table */
#define SHOW_COL_MIN 6        /* "-0.123" */
#define SHOW_COL_MAX 12
#define SHOW_DEFAULT_WIDTH 120
#define SHOW_CLEAN_MAX 1024 /* bytes of a name kept for the table (its end) */
#define SHOW_GRID_MAX 24    /* a models result's whole matrix is in the table up to this many layers */

/* ---- UTF-8 ------------------------------------------------------------------ */

/* Characters (code points) in valid UTF-8 s: what a terminal shows. */
static int text_width(const char *s)
{
    int n = 0;
    for (; *s; s++) n += ((unsigned char)*s & 0xc0) != 0x80;
    return n;
}

/* s for the terminal, into buf: control characters and bytes that are not
 * UTF-8 become '?'. A name longer than buf keeps its end, the part shown. */
static void clean(const char *s, char *buf, size_t size)
{
    size_t len = strlen(s), n = 0;
    const unsigned char *p = (const unsigned char *)s + (len > size - 8 ? len - (size - 8) : 0);
    while ((*p & 0xc0) == 0x80) p++;
    while (*p && n + 5 < size) {
        int k = mk_utf8_seq(p);
        if (k == 0 || *p < 0x20 || *p == 0x7f) {
            buf[n++] = '?';
            p++;
        } else {
            memcpy(buf + n, p, (size_t)k);
            n += (size_t)k;
            p += k;
        }
    }
    buf[n] = '\0';
}

static int shown_width(const char *s)
{
    char buf[SHOW_CLEAN_MAX];
    clean(s, buf, sizeof buf);
    return text_width(buf);
}

/* s in at most `width` characters: "..." and its last width-3 characters
 * when longer (layer paths differ at their ends), padded to `width` on the
 * left (right-aligned) or right. */
static void put_cell(FILE *out, const char *raw, int width, int right)
{
    char s[SHOW_CLEAN_MAX];
    clean(raw, s, sizeof s);
    int n = text_width(s);
    if (n > width) {
        const char *p = s + strlen(s);
        for (int keep = 0; keep < width - 3; p--) keep += ((unsigned char)p[-1] & 0xc0) != 0x80;
        fputs("...", out);
        fputs(p, out);
        return;
    }
    if (right) fprintf(out, "%*s", width - n, "");
    fputs(s, out);
    if (!right) fprintf(out, "%*s", width - n, "");
}

/* Characters in the first n bytes of s. */
static int span_width(const char *s, size_t n)
{
    int w = 0;
    for (size_t k = 0; k < n; k++) w += ((unsigned char)s[k] & 0xc0) != 0x80;
    return w;
}

/* text (one line, cleaned) in lines of at most width characters, the first
 * starting at column `at` and the others indented to it; broken after a
 * "; " where one fits (descriptions are clauses joined by "; "), else at a
 * space. A word longer than a line keeps a line of its own. */
static void put_wrapped(FILE *out, const char *text, int at, int width)
{
    char s[SHOW_CLEAN_MAX], line[SHOW_CLEAN_MAX];
    size_t n = 0, semi = 0; /* line[0..n) is pending; line[0..semi) ends with ';' */
    int indent = 0, room = width - at > 20 ? width - at : 20;
    clean(text, s, sizeof s);
    for (char *word = s + strspn(s, " "), *end; *word; word = end + strspn(end, " ")) {
        end = word + strcspn(word, " ");
        size_t len = (size_t)(end - word);
        while (n && span_width(line, n) + 1 + span_width(word, len) > room) {
            size_t cut = semi ? semi : n, rest = cut < n ? n - cut - 1 : 0;
            fprintf(out, "%*s%.*s\n", indent, "", (int)cut, line);
            memmove(line, line + n - rest, rest);
            n = rest;
            semi = 0;
            indent = at;
        }
        if (n) line[n++] = ' ';
        memcpy(line + n, word, len);
        n += len;
        if (word[len - 1] == ';') semi = n;
    }
    fprintf(out, "%*s%.*s\n", indent, "", (int)n, line);
}

/* ---- table ------------------------------------------------------------------ */

static int clampi(int v, int lo, int hi) { return v < lo ? lo : v > hi ? hi : v; }

/* Standard errors go beside the CKA values when the file has them. */
static const double *shown_errors(const mk_ckafile *f)
{
    return f->shown == MK_MATRIX_CKA ? f->cka_stderr : NULL;
}

/* Cell k of the matrix shown: 3 decimals ("nan" for NaN), p-values 4 (a
 * p-value's floor is 1/(R+1): 0.0001 at R = 9999); with standard errors
 * "0.831±0.012". */
static void format_cell(char *buf, size_t size, const mk_ckafile *f, size_t k)
{
    double x = mk_ckafile_matrix(f, f->shown)[k];
    const double *se = shown_errors(f);
    int n = snprintf(buf, size, isnan(x) ? "nan" : "%.*f", f->shown == MK_MATRIX_PVALUE ? 4 : 3, x);
    if (se && !isnan(x) && n > 0 && (size_t)n < size)
        snprintf(buf + n, size - (size_t)n, isnan(se[k]) ? "±nan" : "±%.3f", se[k]);
}

static void table_block(FILE *out, const mk_ckafile *f, int rw, const int *cw, int j0, int j1)
{
    put_cell(out, "", rw, 0);
    for (int j = j0; j < j1; j++) {
        fputc(' ', out);
        put_cell(out, f->y_layers[j], cw[j], 1);
    }
    fputc('\n', out);
    for (int i = 0; i < f->nx; i++) {
        put_cell(out, f->x_layers[i], rw, 0);
        for (int j = j0; j < j1; j++) {
            char v[64];
            format_cell(v, sizeof v, f, (size_t)i * f->ny + j);
            fputc(' ', out);
            put_cell(out, v, cw[j], 1);
        }
        fputc('\n', out);
    }
}

/* A column is as wide as its name (within bounds) and its widest value. */
static int column_width(const mk_ckafile *f, int j)
{
    char v[64];
    int w = clampi(shown_width(f->y_layers[j]), SHOW_COL_MIN, SHOW_COL_MAX);
    for (int i = 0; i < f->nx; i++) {
        format_cell(v, sizeof v, f, (size_t)i * f->ny + j);
        w = w > text_width(v) ? w : text_width(v);
    }
    return w;
}

static mk_err write_matrix_table(FILE *out, const mk_ckafile *f, int width)
{
    mk_err err = MK_OK;
    int *cw = mk_malloc((size_t)f->ny * sizeof *cw, "column widths", &err), rw = 1;
    if (!cw) return err;
    for (int i = 0; i < f->nx; i++) rw = clampi(shown_width(f->x_layers[i]), rw, SHOW_ROW_LABEL_MAX);
    for (int j = 0; j < f->ny; j++) cw[j] = column_width(f, j);
    for (int j0 = 0, j1; j0 < f->ny; j0 = j1) {
        int used = rw + 1 + cw[j0];
        for (j1 = j0 + 1; j1 < f->ny && used + 1 + cw[j1] <= width; j1++) used += 1 + cw[j1];
        if (j0 > 0) fputc('\n', out);
        if (j0 > 0 || j1 < f->ny) fprintf(out, "columns %d-%d of %d:\n", j0 + 1, j1, f->ny);
        table_block(out, f, rw, cw, j0, j1);
    }
    free(cw);
    return MK_OK;
}

/* ---- provenance ------------------------------------------------------------- */

static const struct {
    const char *label, *attr;
} known[] = {
    {"n", "n"},
    {"batch_size", "batch_size"},
    {"batches", "batches"},
    {"batches per epoch", "batches_per_epoch"},
    {"dropped per epoch", "dropped_per_epoch"},
    {"epochs", "epochs"},
    {"shuffle", "shuffle"},
    {"seed", "seed"},
    {"ranks", "ranks"},
    {"threads per rank", "threads"},
    {"BLAS threads", "blas_threads"},
    {"precision", "precision"},
    {"estimator", "estimator"},
    {"version", "version"},
    {"time taken", "seconds"},
};

#define KNOWN_COUNT (sizeof known / sizeof known[0])

static void put_value(FILE *out, const mk_attr *a)
{
    char num[MK_DOUBLE_TEXT];
    if (!a)
        fputs("- (not stored)", out);
    else if (a->kind == MK_ATTR_INT)
        fprintf(out, "%lld", (long long)a->i);
    else if (a->kind == MK_ATTR_UINT)
        fprintf(out, "%llu", (unsigned long long)a->u);
    else if (a->kind == MK_ATTR_REAL)
        fputs(mk_double_text(num, a->r), out);
    else
        fputs(a->text, out);
}

/* One provenance line: a (NULL: not stored) under label; name picks a form. */
static void put_entry(FILE *out, const char *label, const char *name, const mk_attr *a)
{
    fprintf(out, "  %-18s ", label);
    if (a && (strcmp(name, "shuffle") == 0 || strcmp(name, "debiased") == 0) && a->kind == MK_ATTR_INT)
        fputs(a->i ? "yes" : "no", out);
    else if (a && strcmp(name, "seconds") == 0 && a->kind == MK_ATTR_REAL)
        fprintf(out, "%.3f s", a->r);
    else
        put_value(out, a);
    fputc('\n', out);
}

static void put_known(FILE *out, const mk_ckafile *f, const char *label, const char *name)
{
    put_entry(out, label, name, mk_ckafile_attr(f, name));
}

static int is_listed(const char *name)
{
    static const char *const shown[] = {"x_name", "y_name", "x_file", "y_file", "self", "config", "models"};
    for (size_t k = 0; k < KNOWN_COUNT; k++)
        if (strcmp(known[k].attr, name) == 0) return 1;
    for (size_t k = 0; k < sizeof shown / sizeof shown[0]; k++)
        if (strcmp(shown[k], name) == 0) return 1;
    return 0;
}

static void put_model(FILE *out, const mk_ckafile *f, const char *label, const char *name, const char *file)
{
    const char *n = mk_ckafile_text(f, name), *path = mk_ckafile_text(f, file);
    fprintf(out, "  %-18s %s (%s)\n", label, n, path ? path : "file not stored");
}

static void put_models_xy(FILE *out, const mk_ckafile *f)
{
    put_model(out, f, "x model", "x_name", "x_file");
    if (mk_ckafile_self(f))
        fprintf(out, "  %-18s %s\n", "y model", "x against itself");
    else
        put_model(out, f, "y model", "y_name", "y_file");
}

static void put_config(FILE *out, const char *config)
{
    fputs("\nconfig (resolved; save it to a file to run again):\n", out);
    if (!config) {
        fputs("  - (not stored)\n", out);
        return;
    }
    for (const char *line = config; *line;) {
        size_t len = strcspn(line, "\n");
        fprintf(out, "  %.*s\n", (int)len, line);
        line += len + (line[len] == '\n');
    }
}

/* The settings of /meta (newer results); its description is the "method" line. */
static void put_meta(FILE *out, const mk_ckafile *f)
{
    if (!f->meta) return;
    fputs("\nmethod settings (/meta):\n", out);
    for (int k = 0; k < f->nmeta; k++) {
        const mk_attr *a = &f->meta[k];
        if (strcmp(a->name, "description") != 0) put_entry(out, a->name, a->name, a);
    }
}

/* How the matrix was made (/meta's description), or NULL for none. */
static const char *method_of(const mk_ckafile *f)
{
    const char *method = mk_ckafile_meta_text(f, "description");
    return method && method[strspn(method, " ")] ? method : NULL;
}

/* Newer runs store the description as the root `estimator` as well: the
 * "method" line says it once. */
static int said_by_method(const mk_ckafile *f, const char *name)
{
    const char *method = method_of(f), *text = mk_ckafile_text(f, name);
    return method && text && strcmp(name, "estimator") == 0 && strcmp(method, text) == 0;
}

static void write_provenance(FILE *out, const mk_ckafile *f, int width)
{
    const char *method = method_of(f);
    fputs("\nprovenance:\n", out);
    if (f->matched)
        fprintf(out, "  %-18s %s, in every model\n", "layer", mk_ckafile_text(f, "x_name"));
    else if (f->nmodels == 0) /* a models result lists its models above */
        put_models_xy(out, f);
    if (method) {
        fprintf(out, "  %-18s ", "method");
        put_wrapped(out, method, 21, width);
    }
    for (size_t k = 0; k < KNOWN_COUNT; k++)
        if (!said_by_method(f, known[k].attr)) put_known(out, f, known[k].label, known[k].attr);
    for (int k = 0; k < f->nattrs; k++)
        if (!is_listed(f->attrs[k].name)) put_known(out, f, f->attrs[k].name, f->attrs[k].name);
    put_meta(out, f);
    put_config(out, mk_ckafile_text(f, "config"));
}

/* "CKA of X ... vs Y ...", then how it was made and what a cell holds. */
static void write_heading(FILE *out, const mk_ckafile *f, int width)
{
    const char *what = mk_matrix_what(f->shown), *method = method_of(f), *x = mk_ckafile_text(f, "x_name");
    int up = toupper((unsigned char)what[0]);
    if (f->measure) {
        if (f->matched)
            fprintf(out, "Measure %s of layer %s across %d models (rows and columns)\n", f->measure, x, f->nx);
        else
            fprintf(out, "Measure %s of %s (rows, %d layers) vs %s (columns, %d layers)\n", f->measure, x, f->nx,
                    mk_ckafile_text(f, "y_name"), f->ny);
        if (shown_errors(f)) fprintf(out, "each cell: %s±standard error (jackknife)\n", f->measure);
        fputc('\n', out);
        return;
    }
    if (f->matched)
        fprintf(out, "%c%s of layer %s across %d models (rows and columns)\n", up, what + 1, x, f->nx);
    else if (mk_ckafile_self(f))
        fprintf(out, "%c%s of %s (rows, %d layers) against itself\n", up, what + 1, x, f->nx);
    else
        fprintf(out, "%c%s of %s (rows, %d layers) vs %s (columns, %d layers)\n", up, what + 1, x, f->nx,
                mk_ckafile_text(f, "y_name"), f->ny);
    if (method) put_wrapped(out, method, 0, width);
    if (shown_errors(f)) fputs("each cell: CKA±standard error (jackknife)\n", out);
    fputc('\n', out);
}

/* A view (--pair, --matched) is a few lines the provenance of the whole
 * result, sixty or more, would push off the screen: unless asked for, one
 * line says where it is (path: the file shown). */
static mk_err write_table(FILE *out, const mk_ckafile *f, int width, const char *path)
{
    write_heading(out, f, width);
    MK_TRY(write_matrix_table(out, f, width));
    if (path)
        fprintf(out, "\nprovenance and config: mpicka show %s (or add --provenance)\n", path);
    else
        write_provenance(out, f, width);
    return MK_OK;
}

/* ---- CSV, as cka.csv ---------------------------------------------------------- */

static void write_csv(FILE *out, const mk_ckafile *f)
{
    mk_csv_matrix(out, f->nx, f->ny, (const char *const *)f->x_layers, (const char *const *)f->y_layers,
                         mk_ckafile_matrix(f, f->shown));
}

/* ---- a models result ---------------------------------------------------------- */

/* "model:layer" labels for the whole grid (malloc'd; NULL entries on failure). */
static char **grid_labels(const mk_ckafile *f, mk_err *err)
{
    char **labels = mk_calloc((size_t)f->nx, sizeof *labels, "the grid's labels", err);
    for (int m = 0; labels && m < f->nmodels && !*err; m++)
        for (int i = f->model_offsets[m]; i < f->model_offsets[m + 1] && !*err; i++) {
            size_t len = strlen(f->model_names[m]) + strlen(f->x_layers[i]) + 2;
            if ((labels[i] = mk_malloc(len, "a grid label", err)) != NULL)
                snprintf(labels[i], len, "%s:%s", f->model_names[m], f->x_layers[i]);
        }
    return labels;
}

static mk_err write_grid_matrix(FILE *out, const mk_ckafile *f, int width)
{
    mk_err err = MK_OK;
    char **labels = grid_labels(f, &err);
    if (!err) {
        mk_ckafile g = *f; /* the same matrices, labelled by model */
        g.x_layers = g.y_layers = labels;
        fputc('\n', out);
        err = write_matrix_table(out, &g, width);
    }
    for (int i = 0; labels && i < f->nx; i++) free(labels[i]);
    free(labels);
    return err;
}

static void write_models_list(FILE *out, const mk_ckafile *f)
{
    int w = 5;
    for (int m = 0; m < f->nmodels; m++) w = clampi(shown_width(f->model_names[m]), w, SHOW_ROW_LABEL_MAX);
    fprintf(out, "models:\n  ");
    put_cell(out, "model", w, 0);
    fputs("  layers  offset  file\n", out);
    for (int m = 0; m < f->nmodels; m++) {
        fputs("  ", out);
        put_cell(out, f->model_names[m], w, 0);
        fprintf(out, "  %6d  %6d  ", f->model_offsets[m + 1] - f->model_offsets[m], f->model_offsets[m]);
        put_cell(out, f->model_files[m], shown_width(f->model_files[m]), 0);
        fputc('\n', out);
    }
    if (f->nmatched == 0)
        fputs("\nmatched layers: none (no layer path is in every model)", out);
    else
        fprintf(out, "\nmatched layers (%d, in every model)", f->nmatched);
    for (int k = 0; k < f->nmatched; k++) {
        fputs(k ? ", " : ": ", out);
        put_cell(out, f->matched_layers[k], shown_width(f->matched_layers[k]), 0);
    }
    fputc('\n', out);
}

static mk_err write_models_table(FILE *out, const mk_ckafile *f, int width)
{
    const char *what = mk_matrix_what(f->shown), *method = method_of(f);
    if (f->measure)
        fprintf(out, "Measure %s of %d models, %d layers in all, every layer against every other\n", f->measure,
                f->nmodels, f->nx);
    else
        fprintf(out, "%c%s of %d models, %d layers in all, every layer against every other\n",
                toupper((unsigned char)what[0]), what + 1, f->nmodels, f->nx);
    if (method) put_wrapped(out, method, 0, width);
    fputc('\n', out);
    write_models_list(out, f);
    if (f->nx <= SHOW_GRID_MAX) {
        if (shown_errors(f)) fprintf(out, "\neach cell: %s±standard error (jackknife)\n", f->measure ? f->measure : "CKA");
        MK_TRY(write_grid_matrix(out, f, width));
    } else {
        fprintf(out, "\nthe whole matrix is %d by %d: --pair A,B prints the block of model A against model B, "
                     "--matched LAYER one layer across the models, --format csv all of it\n", f->nx, f->nx);
    }
    write_provenance(out, f, width);
    return MK_OK;
}

/* One line per cell of the grid, as a models run's cka.csv. */
static void write_models_csv(FILE *out, const mk_ckafile *f)
{
    mk_csv_models_of(out, f->measure ? f->measure : "cka", f->nmodels, (const char *const *)f->model_names,
                     f->model_offsets,
                         (const char *const *)f->x_layers, f->cka, f->cka_stderr, f->cka_pvalue);
}

/* ---- JSON ------------------------------------------------------------------------ */

static void json_string(FILE *out, const char *s)
{
    fputc('"', out);
    for (const unsigned char *p = (const unsigned char *)s; *p;) {
        int n = mk_utf8_seq(p);
        if (*p == '"' || *p == '\\')
            fprintf(out, "\\%c", *p);
        else if (*p == '\n')
            fputs("\\n", out);
        else if (*p == '\t')
            fputs("\\t", out);
        else if (*p == '\r')
            fputs("\\r", out);
        else if (*p < 0x20)
            fprintf(out, "\\u%04x", *p);
        else if (n == 0)
            fputs("\\ufffd", out); /* not UTF-8: replaced, so the JSON stays valid */
        else
            fwrite(p, 1, (size_t)n, out);
        p += n ? n : 1;
    }
    fputc('"', out);
}

static void json_number(FILE *out, double v)
{
    char num[MK_DOUBLE_TEXT];
    if (isfinite(v))
        fputs(mk_double_text(num, v), out);
    else
        fputs("null", out);
}

static void json_names(FILE *out, const char *key, char *const *names, int n)
{
    fprintf(out, "  \"%s\": [", key);
    for (int k = 0; k < n; k++) {
        fputs(k ? ", " : "", out);
        json_string(out, names[k]);
    }
    fputs("],\n", out);
}

static void json_attr(FILE *out, const mk_attr *a)
{
    if (a->kind == MK_ATTR_INT)
        fprintf(out, "%lld", (long long)a->i);
    else if (a->kind == MK_ATTR_UINT)
        fprintf(out, "%llu", (unsigned long long)a->u);
    else if (a->kind == MK_ATTR_REAL)
        json_number(out, a->r);
    else
        json_string(out, a->text);
}

static void json_matrix(FILE *out, const char *key, const double *v, int nx, int ny)
{
    fprintf(out, "  \"%s\": [\n", key);
    for (int i = 0; i < nx; i++) {
        fputs("    [", out);
        for (int j = 0; j < ny; j++) {
            fputs(j ? ", " : "", out);
            json_number(out, v[(size_t)i * ny + j]);
        }
        fputs(i + 1 < nx ? "],\n" : "]\n", out);
    }
    fputs("  ],\n", out);
}

static void json_attrs(FILE *out, const char *key, const mk_attr *attrs, int n)
{
    fprintf(out, "  \"%s\": {", key);
    for (int k = 0; k < n; k++) {
        fputs(k ? ",\n    " : "\n    ", out);
        json_string(out, attrs[k].name);
        fputs(": ", out);
        json_attr(out, &attrs[k]);
    }
    fputs(n ? "\n  }" : "}", out);
}

/* The models, matched layers and their matrices of a models result. */
static void json_models(FILE *out, const mk_ckafile *f)
{
    static const char *const keys[MK_MATRIX_COUNT] = {"cka_matched", "cka_matched_stderr", "cka_matched_pvalue"};
    const double *cubes[MK_MATRIX_COUNT] = {f->cka_matched, f->cka_matched_stderr, f->cka_matched_pvalue};
    int n = f->nmodels;
    fputs("  \"models\": [", out);
    for (int m = 0; m < n; m++) {
        fputs(m ? ",\n    {\"name\": " : "\n    {\"name\": ", out);
        json_string(out, f->model_names[m]);
        fputs(", \"file\": ", out);
        json_string(out, f->model_files[m]);
        fprintf(out, ", \"offset\": %d, \"layers\": %d}", f->model_offsets[m],
                f->model_offsets[m + 1] - f->model_offsets[m]);
    }
    fputs("\n  ],\n", out);
    json_names(out, "matched_layers", f->matched_layers, f->nmatched);
    for (int c = 0; c < MK_MATRIX_COUNT; c++) {
        if (!cubes[c]) continue;
        char key[160]; /* a measure's matched views (mk_ckafile_measure) are NAME_matched... */
        snprintf(key, sizeof key, "%.100s%s", f->measure ? f->measure : "", f->measure ? keys[c] + 3 : keys[c]);
        fputs("  ", out);
        json_string(out, key);
        fputs(": [\n", out);
        for (int k = 0; k < f->nmatched; k++) {
            fputs("    [", out);
            for (int a = 0; a < n; a++) {
                fputs(a ? ", [" : "[", out);
                for (int b = 0; b < n; b++) {
                    fputs(b ? ", " : "", out);
                    json_number(out, cubes[c][((size_t)k * n + a) * n + b]);
                }
                fputc(']', out);
            }
            fputs(k + 1 < f->nmatched ? "],\n" : "]\n", out);
        }
        fputs("  ],\n", out);
    }
}

/* Every matrix the file has, whatever is shown; /meta when there. */
static void write_json(FILE *out, const mk_ckafile *f)
{
    fputs("{\n", out);
    json_names(out, "x_layers", f->x_layers, f->nx);
    json_names(out, "y_layers", f->y_layers, f->ny);
    if (f->measure) json_matrix(out, f->measure, f->cka, f->nx, f->ny);
    if (f->measure && f->cka_stderr) {
        char key[160];
        snprintf(key, sizeof key, "%.100s_stderr", f->measure);
        json_matrix(out, key, f->cka_stderr, f->nx, f->ny);
    }
    for (int m = 0; m < MK_MATRIX_COUNT && !f->measure; m++)
        if (mk_ckafile_matrix(f, (mk_matrix)m))
            json_matrix(out, mk_matrix_dataset((mk_matrix)m), mk_ckafile_matrix(f, (mk_matrix)m), f->nx, f->ny);
    if (f->nmodels > 0) json_models(out, f);
    json_attrs(out, "attributes", f->attrs, f->nattrs);
    if (f->meta) {
        fputs(",\n", out);
        json_attrs(out, "meta", f->meta, f->nmeta);
    }
    fputs("\n}\n", out);
}

/* ---- entry points -------------------------------------------------------------- */

/* view_of: the file a view was made of, whose provenance the table then
 * leaves out; NULL: the whole provenance. */
static mk_err show_write(FILE *out, const mk_ckafile *f, mk_show_format fmt, int width, const char *view_of)
{
    if (fmt == MK_SHOW_TABLE && f->nmodels > 0)
        MK_TRY(write_models_table(out, f, width > 0 ? width : SHOW_DEFAULT_WIDTH));
    else if (fmt == MK_SHOW_TABLE)
        MK_TRY(write_table(out, f, width > 0 ? width : SHOW_DEFAULT_WIDTH, view_of));
    else if (fmt == MK_SHOW_CSV && f->nmodels > 0)
        write_models_csv(out, f);
    else if (fmt == MK_SHOW_CSV)
        write_csv(out, f);
    else
        write_json(out, f);
    if (fflush(out) != 0 || ferror(out))
        return mk_fail(MK_EIO, "show: cannot write the output: %s", strerror(errno));
    return MK_OK;
}

mk_err mk_show_write(FILE *out, const mk_ckafile *f, mk_show_format fmt, int width)
{
    return show_write(out, f, fmt, width, NULL);
}

enum { O_FORMAT, O_MATRIX, O_PAIR, O_MATCHED, O_PROVENANCE, O_MEASURE, O_COUNT };

static const mk_opt show_opts[O_COUNT] = {
    [O_FORMAT] = {"--format", NULL, MK_OPT_STRING, "F",
                  .help = "table (default: aligned, with the provenance), csv (as cka.csv) or json (every matrix)"},
    [O_MATRIX] = {"--matrix", NULL, MK_OPT_STRING, "M",
                  .help = "cka (default), stderr (standard errors) or pvalue (p-values): the table's or CSV's"},
    [O_PAIR] = {"--pair", NULL, MK_OPT_STRING, "A,B",
                .help = "a models result: model A's layers (rows) against model B's (columns)"},
    [O_MATCHED] = {"--matched", NULL, MK_OPT_STRING, "LAYER",
                   .help = "a models result: the model-by-model matrix of one layer"},
    [O_PROVENANCE] = {"--provenance", NULL, MK_OPT_FLAG, NULL,
                      .help = "with --pair or --matched: the table is followed by the provenance and config"},
    [O_MEASURE] = {"--measure", NULL, MK_OPT_STRING, "NAME",
                   .help = "a measure besides CKA (/measures/NAME: cca_mean, cca_r2, svcca, pwcca, procrustes, "
                           "shape, regression_y_from_x, regression_x_from_y) instead of CKA"},
};

#define SHOW_STR(x) #x
#define SHOW_NUMBER(x) SHOW_STR(x) /* the value of macro x as a string */

static const mk_cli_cmd show_cmd = {
    "show",
    "mpicka show RESULT.h5 [--format table|csv|json] [--matrix cka|stderr|pvalue]\n"
    "                   [--pair A,B | --matched LAYER [--provenance]] [--measure NAME]",
    "Print the CKA matrix of a cka.h5 (written by mpicka run) and how it was computed. Not MPI.\n"
    "Of a models result (a run with models:), the table lists the models and the matched layers\n"
    "(the whole matrix when small), the CSV has a line per pair of layers; --pair and --matched\n"
    "print one block or one layer across the models as a two-model result.\n"
    "The table is split into blocks of columns that fit $COLUMNS characters (default "
    SHOW_NUMBER(SHOW_DEFAULT_WIDTH) ");\n"
    "when the file has standard errors, each CKA is shown as value±error. JSON holds every\n"
    "matrix of the file (cka, cka_stderr, cka_pvalue) and the method settings (meta).",
    show_opts, O_COUNT, (const char *const[]){"RESULT.h5"}, 1};

static mk_err parse_format(const char *s, mk_show_format *fmt)
{
    static const char *const names[] = {"table", "csv", "json"};
    for (int k = 0; k < 3; k++)
        if (strcmp(s, names[k]) == 0) {
            *fmt = (mk_show_format)k;
            return MK_OK;
        }
    return mk_fail(MK_EUSAGE, "show: --format '%s': expected table, csv or json", s);
}

static int terminal_width(void)
{
    const char *s = getenv("COLUMNS");
    long w = s ? strtol(s, NULL, 10) : 0;
    return w >= 40 && w <= 10000 ? (int)w : SHOW_DEFAULT_WIDTH;
}

/* The file, or the view of it --pair or --matched asks for, as v says. */
static mk_err show_command(const mk_opt_val *v, const char *const *args)
{
    const char *path = args[0];
    mk_show_format fmt = MK_SHOW_TABLE;
    mk_matrix m = MK_MATRIX_CKA;
    mk_ckafile f;
    if (v[O_FORMAT].given) MK_TRY(parse_format(v[O_FORMAT].text, &fmt));
    if (v[O_MATRIX].given) MK_TRY(mk_matrix_parse("show", v[O_MATRIX].text, &m));
    if (v[O_PAIR].given && v[O_MATCHED].given)
        return mk_fail(MK_EUSAGE, "show: --pair and --matched print different matrices: give one of them");
    if (v[O_MEASURE].given && v[O_MATRIX].given)
        return mk_fail(MK_EUSAGE, "show: --measure and --matrix print different matrices: give one of them");
    mk_err err = mk_ckafile_read(path, &f);
    if (!err && v[O_MEASURE].given) err = mk_ckafile_measure(&f, path, v[O_MEASURE].text); /* then its views */
    if (!err && (v[O_PAIR].given || v[O_MATCHED].given)) {
        mk_ckafile view;
        err = v[O_PAIR].given ? mk_ckafile_pair_spec(&f, path, "show", v[O_PAIR].text, &view)
                              : mk_ckafile_matched(&f, path, v[O_MATCHED].text, &view);
        mk_ckafile_free(&f);
        f = view;
    }
    if (!err) err = mk_ckafile_choose(&f, path, m);
    int view = v[O_PAIR].given || v[O_MATCHED].given;
    if (!err) err = show_write(stdout, &f, fmt, terminal_width(), view && !v[O_PROVENANCE].given ? path : NULL);
    mk_ckafile_free(&f);
    return err;
}

mk_err mk_show_main(int argc, char **argv) { return mk_cli_main(&show_cmd, argc, argv, show_command); }
