/* `mpicka show` (contract in mpicka/show.h). */
#include "mpicka/show.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "mpicka/cli.h"
#include "mpicka/text.h"

#define SHOW_ROW_LABEL_MAX 32 /* characters of an x layer name in the table */
#define SHOW_COL_MIN 6        /* "-0.123" */
#define SHOW_COL_MAX 12
#define SHOW_DEFAULT_WIDTH 120
#define SHOW_CLEAN_MAX 1024 /* bytes of a name kept for the table (its end) */

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

/* ---- table ------------------------------------------------------------------ */

static int clampi(int v, int lo, int hi) { return v < lo ? lo : v > hi ? hi : v; }

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
            char v[32];
            double x = f->cka[(size_t)i * f->ny + j];
            snprintf(v, sizeof v, isnan(x) ? "nan" : "%.3f", x);
            fputc(' ', out);
            put_cell(out, v, cw[j], 1);
        }
        fputc('\n', out);
    }
}

static mk_err write_matrix_table(FILE *out, const mk_ckafile *f, int width)
{
    mk_err err = MK_OK;
    int *cw = mk_malloc((size_t)f->ny * sizeof *cw, "column widths", &err), rw = 1;
    if (!cw) return err;
    for (int i = 0; i < f->nx; i++) rw = clampi(shown_width(f->x_layers[i]), rw, SHOW_ROW_LABEL_MAX);
    for (int j = 0; j < f->ny; j++) cw[j] = clampi(shown_width(f->y_layers[j]), SHOW_COL_MIN, SHOW_COL_MAX);
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
    {"BLAS threads", "blas_threads"},
    {"precision", "precision"},
    {"estimator", "estimator"},
    {"version", "version"},
    {"time taken", "seconds"},
};

#define KNOWN_COUNT (sizeof known / sizeof known[0])

static void put_value(FILE *out, const mk_attr *a)
{
    if (!a)
        fputs("- (not stored)", out);
    else if (a->kind == MK_ATTR_INT)
        fprintf(out, "%lld", (long long)a->i);
    else if (a->kind == MK_ATTR_UINT)
        fprintf(out, "%llu", (unsigned long long)a->u);
    else if (a->kind == MK_ATTR_REAL)
        fprintf(out, "%.17g", a->r);
    else
        fputs(a->text, out);
}

static void put_known(FILE *out, const mk_ckafile *f, const char *label, const char *name)
{
    const mk_attr *a = mk_ckafile_attr(f, name);
    fprintf(out, "  %-18s ", label);
    if (a && strcmp(name, "shuffle") == 0 && a->kind == MK_ATTR_INT)
        fputs(a->i ? "yes" : "no", out);
    else if (a && strcmp(name, "seconds") == 0 && a->kind == MK_ATTR_REAL)
        fprintf(out, "%.3f s", a->r);
    else
        put_value(out, a);
    fputc('\n', out);
}

static int is_listed(const char *name)
{
    static const char *const shown[] = {"x_name", "y_name", "x_file", "y_file", "self", "config"};
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

static void write_provenance(FILE *out, const mk_ckafile *f)
{
    fputs("\nprovenance:\n", out);
    put_model(out, f, "x model", "x_name", "x_file");
    if (mk_ckafile_self(f))
        fprintf(out, "  %-18s %s\n", "y model", "x against itself");
    else
        put_model(out, f, "y model", "y_name", "y_file");
    for (size_t k = 0; k < KNOWN_COUNT; k++) put_known(out, f, known[k].label, known[k].attr);
    for (int k = 0; k < f->nattrs; k++)
        if (!is_listed(f->attrs[k].name)) put_known(out, f, f->attrs[k].name, f->attrs[k].name);
    put_config(out, mk_ckafile_text(f, "config"));
}

static mk_err write_table(FILE *out, const mk_ckafile *f, int width)
{
    fprintf(out, "CKA of %s (rows, %d layers) ", mk_ckafile_text(f, "x_name"), f->nx);
    if (mk_ckafile_self(f))
        fputs("against itself\n\n", out);
    else
        fprintf(out, "vs %s (columns, %d layers)\n\n", mk_ckafile_text(f, "y_name"), f->ny);
    MK_TRY(write_matrix_table(out, f, width));
    write_provenance(out, f);
    return MK_OK;
}

/* ---- CSV, as cka.csv ---------------------------------------------------------- */

static void csv_field(FILE *out, const char *s)
{
    if (!strpbrk(s, ",\"\n\r")) {
        fputs(s, out);
        return;
    }
    fputc('"', out);
    for (; *s; s++) {
        if (*s == '"') fputc('"', out);
        fputc(*s, out);
    }
    fputc('"', out);
}

static void write_csv(FILE *out, const mk_ckafile *f)
{
    csv_field(out, "layer");
    for (int j = 0; j < f->ny; j++) {
        fputc(',', out);
        csv_field(out, f->y_layers[j]);
    }
    fputc('\n', out);
    for (int i = 0; i < f->nx; i++) {
        csv_field(out, f->x_layers[i]);
        for (int j = 0; j < f->ny; j++) fprintf(out, ",%.17g", f->cka[(size_t)i * f->ny + j]);
        fputc('\n', out);
    }
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
    if (isfinite(v))
        fprintf(out, "%.17g", v);
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

static void write_json(FILE *out, const mk_ckafile *f)
{
    fputs("{\n", out);
    json_names(out, "x_layers", f->x_layers, f->nx);
    json_names(out, "y_layers", f->y_layers, f->ny);
    fputs("  \"cka\": [\n", out);
    for (int i = 0; i < f->nx; i++) {
        fputs("    [", out);
        for (int j = 0; j < f->ny; j++) {
            fputs(j ? ", " : "", out);
            json_number(out, f->cka[(size_t)i * f->ny + j]);
        }
        fputs(i + 1 < f->nx ? "],\n" : "]\n", out);
    }
    fputs("  ],\n  \"attributes\": {", out);
    for (int k = 0; k < f->nattrs; k++) {
        fputs(k ? ",\n    " : "\n    ", out);
        json_string(out, f->attrs[k].name);
        fputs(": ", out);
        json_attr(out, &f->attrs[k]);
    }
    fputs(f->nattrs ? "\n  }\n}\n" : "}\n}\n", out);
}

/* ---- entry points -------------------------------------------------------------- */

mk_err mk_show_write(FILE *out, const mk_ckafile *f, mk_show_format fmt, int width)
{
    if (fmt == MK_SHOW_TABLE)
        MK_TRY(write_table(out, f, width > 0 ? width : SHOW_DEFAULT_WIDTH));
    else if (fmt == MK_SHOW_CSV)
        write_csv(out, f);
    else
        write_json(out, f);
    if (fflush(out) != 0 || ferror(out))
        return mk_fail(MK_EIO, "show: cannot write the output: %s", strerror(errno));
    return MK_OK;
}

enum { O_FORMAT, O_COUNT };

static const mk_cli_opt show_table[O_COUNT] = {
    [O_FORMAT] = {"--format", NULL, "F",
                  "table (default: aligned, with the provenance), csv (as cka.csv) or json"},
};

static void print_usage(FILE *out)
{
    fprintf(out,
            "usage: mpicka show RESULT.h5 [--format table|csv|json]\n"
            "Print the CKA matrix of a cka.h5 (written by mpicka run) and how it was computed. Not MPI.\n"
            "The table is split into blocks of columns that fit $COLUMNS characters (default %d).\n\n",
            SHOW_DEFAULT_WIDTH);
    mk_cli_help(out, show_table, O_COUNT);
    fprintf(out, "  %-22s %s\n", "-h, --help", "print this text");
}

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

mk_err mk_show_main(int argc, char **argv)
{
    const char *v[O_COUNT], *pos[1];
    int npos, help;
    mk_show_format fmt = MK_SHOW_TABLE;
    mk_ckafile f;
    MK_TRY(mk_cli_parse("show", show_table, O_COUNT, argc, argv, v, pos, 1, &npos, &help));
    if (help) {
        print_usage(stdout);
        return MK_OK;
    }
    if (npos == 0) return mk_fail(MK_EUSAGE, "show: missing RESULT.h5 (usage: mpicka show RESULT.h5)");
    if (v[O_FORMAT]) MK_TRY(parse_format(v[O_FORMAT], &fmt));
    mk_err err = mk_ckafile_read(pos[0], &f);
    if (!err) err = mk_show_write(stdout, &f, fmt, terminal_width());
    mk_ckafile_free(&f);
    return err;
}
