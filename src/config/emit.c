/* The configuration out: the resolved YAML echoed into every result (and
 * compared on a resume), and the reference of the keys printed by --help;
 * both walk the key table of config.c. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config_impl.h"
#include "mpicka/text.h"

/* ------------------------------------------------------- resolved YAML --- */

/* Writes one character of s, escaped when a double-quoted YAML scalar would
 * refuse it or read it as a line break; returns its length in bytes. */
static size_t emit_char(FILE *f, const unsigned char *p)
{
    if (*p < 0x80) {
        if (*p == '"' || *p == '\\') fprintf(f, "\\%c", *p);
        else if (*p == '\n') fputs("\\n", f);
        else if (*p == '\t') fputs("\\t", f);
        else if (*p < 0x20 || *p == 0x7f) fprintf(f, "\\x%02X", *p);
        else fputc(*p, f);
        return 1;
    }
    size_t n = *p < 0xE0 ? 2 : *p < 0xF0 ? 3 : 4;
    for (size_t i = 1; i < n; i++)
        if ((p[i] & 0xC0) != 0x80) n = 1; /* not UTF-8 (libyaml never hands us this) */
    uint32_t cp = (uint32_t)(*p & (0x7F >> n));
    for (size_t i = 1; i < n; i++) cp = cp << 6 | (p[i] & 0x3F);
    int odd = (cp >= 0x80 && cp <= 0x9F) || cp == 0x2028 || cp == 0x2029 || cp == 0xFEFF ||
              cp == 0xFFFE || cp == 0xFFFF;
    if (odd && n > 1) fprintf(f, "\\u%04" PRIX32, cp);
    else fwrite(p, 1, n, f);
    return n;
}

static void emit_quoted(FILE *f, const char *s)
{
    fputc('"', f);
    for (const unsigned char *p = (const unsigned char *)s; *p;) p += emit_char(f, p);
    fputc('"', f);
}

static void emit_list(FILE *f, char *const *items, int count, int scalar_one)
{
    if (scalar_one && count == 1) {
        fputc(' ', f);
        emit_quoted(f, items[0]);
        return;
    }
    fputs(" [", f);
    for (int i = 0; i < count; i++) {
        fputs(i ? ", " : "", f);
        emit_quoted(f, items[i]);
    }
    fputc(']', f);
}

/* A block sequence of mappings, one model each. */
static void emit_models(FILE *f, const mk_model_cfg *models, int count)
{
    for (int i = 0; i < count; i++) {
        fputs("\n  - file:", f);
        emit_list(f, models[i].files, models[i].nfiles, 1);
        fputs("\n    name: ", f);
        emit_quoted(f, models[i].name);
        fputs("\n    layers:", f);
        emit_list(f, models[i].layers, models[i].nlayers, 0);
    }
}

static void emit_value(FILE *f, const key_spec *k, const mk_config *cfg)
{
    const void *v = mk__field_of(cfg, k->off);
    char num[MK_DOUBLE_TEXT];
    switch (k->kind) {
    case K_MAP:
        if (k->switchable && !*(const int *)v) fputs(" false", f);
        break;
    case K_STRING:
        fputc(' ', f);
        emit_quoted(f, *(char *const *)v);
        break;
    case K_LIST: emit_list(f, *(char **const *)v, *(const int *)mk__field_of(cfg, k->off_count), k->scalar_one); break;
    case K_MODELS: emit_models(f, *(mk_model_cfg *const *)v, *(const int *)mk__field_of(cfg, k->off_count)); break;
    case K_MEASURES: mk__emit_measures(f, cfg); break;
    case K_INT: fprintf(f, " %" PRId64, *(const int64_t *)v); break;
    case K_BOOL: fputs(*(const int *)v ? " true" : " false", f); break;
    case K_U64: fprintf(f, " %" PRIu64, *(const uint64_t *)v); break;
    case K_ENUM: fprintf(f, " %s", k->choices[*(const int *)v]); break;
    case K_DOUBLE: fprintf(f, " %s", mk_double_text(num, *(const double *)v)); break;
    }
}


mk_err mk__write_resolved(mk_config *cfg)
{
    char *buf = NULL;
    size_t size = 0;
    FILE *f = open_memstream(&buf, &size);
    if (!f) return mk_fail(MK_ENOMEM, "out of memory writing the resolved configuration");
    fputs("# mpicka resolved configuration\n", f);
    for (size_t i = 0; i < mk__nkeys; i++) {
        const key_spec *k = &mk__keys[i], *s = mk__section_of(k);
        if (!mk__section_given(cfg, k->kind == K_MAP && !k->switchable ? k : s)) continue;
        if (k->kind == K_MODELS && !cfg->models) continue;
        if (k->kind == K_MEASURES && !cfg->nmeasures) continue; /* absent: results of before stay comparable */
        if (k->kind == K_STRING && !*(char *const *)mk__field_of(cfg, k->off)) continue; /* a session's absent output */
        if (cfg->session && mk__file_only_key(k->path)) continue;
        const char *leaf = strrchr(k->path, '.');
        fprintf(f, "%s%s:", s ? "  " : "", leaf ? leaf + 1 : k->path);
        emit_value(f, k, cfg);
        fputc('\n', f);
    }
    int bad = ferror(f);
    if (fclose(f) || bad) {
        free(buf);
        return mk_fail(MK_ENOMEM, "out of memory writing the resolved configuration");
    }
    cfg->resolved = buf;
    return MK_OK;
}

/* The next line of a resolved text that matters for a comparison, or NULL. */
static const char *next_line(const char *s, size_t *len)
{
    while (s && *s) {
        size_t n = strcspn(s, "\n");
        if (s[0] != '#' && strncmp(s, "output:", 7)) {
            *len = n;
            return s;
        }
        s += n + (s[n] == '\n');
    }
    *len = 0;
    return NULL;
}

int mk_config_first_difference(const char *ra, const char *rb, char *a, char *b, size_t len)
{
    size_t na, nb;
    for (;;) {
        ra = next_line(ra, &na);
        rb = next_line(rb, &nb);
        if (!ra && !rb) return 0;
        if (!ra || !rb || na != nb || strncmp(ra, rb, na)) break;
        ra += na + (ra[na] == '\n');
        rb += nb + (rb[nb] == '\n');
    }
    snprintf(a, len, "%.*s", (int)na, ra ? ra : "(end)");
    snprintf(b, len, "%.*s", (int)nb, rb ? rb : "(end)");
    if (!ra) snprintf(a, len, "(no more keys)");
    if (!rb) snprintf(b, len, "(no more keys)");
    return 1;
}

/* ---------------------------------------------------------- reference --- */

static void describe_kind(const key_spec *k, char *buf, size_t size)
{
    char list[128];
    switch (k->kind) {
    case K_MAP: snprintf(buf, size, k->switchable ? "section, or false" : "section"); break;
    case K_STRING: snprintf(buf, size, "string"); break;
    case K_LIST: snprintf(buf, size, k->scalar_one ? "string or list of strings" : "list of strings"); break;
    case K_INT: snprintf(buf, size, "integer >= %" PRId64, k->min); break;
    case K_BOOL: snprintf(buf, size, "true or false"); break;
    case K_U64: snprintf(buf, size, "unsigned integer"); break;
    case K_DOUBLE: snprintf(buf, size, "number"); break;
    case K_MODELS: snprintf(buf, size, "list of models"); break;
    case K_MEASURES: snprintf(buf, size, "list of measures"); break;
    case K_ENUM:
        mk__join_choices(k, list, sizeof list);
        snprintf(buf, size, "one of %s", list);
        break;
    }
}

static void describe_default(const key_spec *k, char *buf, size_t size)
{
    const key_spec *s = mk__section_of(k);
    if (k->required && s && !s->required) snprintf(buf, size, "required in %s", s->path);
    else if (k->required) snprintf(buf, size, "required");
    else if (k->def_from) snprintf(buf, size, "default: base name of %s", k->def_from);
    else if (k->def) snprintf(buf, size, "default: %s", k->def);
    else snprintf(buf, size, "optional");
}

void mk_config_print_reference(FILE *out)
{
    fputs("Configuration keys (YAML; keys of a section are indented under it, and any key\n"
          "can be overridden with --set KEY=VALUE, e.g. --set batch_size=512 or\n"
          "--set \"x.layers=[conv1, 'layer1/*']\"):\n\n",
          out);
    for (size_t i = 0; i < mk__nkeys; i++) {
        char kind[160], need[160];
        describe_kind(&mk__keys[i], kind, sizeof kind);
        describe_default(&mk__keys[i], need, sizeof need);
        fprintf(out, "  %-12s %-26s %s\n      %s\n", mk__keys[i].path, kind, need, mk__keys[i].help);
    }
}
