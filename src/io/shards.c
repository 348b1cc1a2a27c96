/* The files of a model's activations: the config's entries and globs
 * resolved to shards, each file once, and shard sets named -K-of-W whole.
 * Part of model inspection (model.c). */
#include "h5file.h"
#include "mpicka/file.h"

#include <glob.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

/* ---- shards ---- */

static mk_err add_file(mk_model *model, const char *path, int *cap)
{
    mk_err err = MK_OK;
    for (int i = 0; i < model->nfiles; i++)
        if (!strcmp(model->files[i], path))
            return mk_fail(MK_EINPUT, "input '%s' is listed twice; each shard must be given once", path);
    if (model->nfiles == *cap) {
        int grow = *cap ? 2 * *cap : 8;
        char **files = realloc(model->files, (size_t)grow * sizeof *files);
        if (!files) return mk_fail(MK_ENOMEM, "cannot list the input files");
        model->files = files;
        *cap = grow;
    }
    model->files[model->nfiles] = mk__dupstr(path, &err);
    if (!err) model->nfiles++;
    return err;
}

/* ---- shard sets and spellings ---- */

/* A file named "<prefix>-K-of-W<.ext>": the K-th shard of a set of W. */
typedef struct {
    const char *file, *ext;
    size_t prefix; /* bytes of file before "-K-of-W" */
    unsigned long long k, w;
} shard_name;

/* Digits ending at file[end) (at most 18: no overflow), going back no further
 * than `from`; returns their count and the value in *v. */
static size_t digits_before(const char *file, size_t from, size_t end, unsigned long long *v)
{
    size_t i = end;
    while (i > from && file[i - 1] >= '0' && file[i - 1] <= '9' && end - i < 19) i--;
    if (end - i > 18 || (i > from && file[i - 1] >= '0' && file[i - 1] <= '9')) return 0;
    *v = strtoull(file + i, NULL, 10);
    return end - i;
}

/* Whether the file's name (before its extension) ends in "-K-of-W", the
 * suffix the default model name strips (config.c). */
static int parse_shard_name(const char *file, shard_name *s)
{
    const char *slash = strrchr(file, '/'), *dot = strrchr(slash ? slash + 1 : file, '.');
    size_t from = slash ? (size_t)(slash + 1 - file) : 0;
    size_t end = dot && dot != file + from ? (size_t)(dot - file) : strlen(file);
    size_t wd = digits_before(file, from, end, &s->w), i = end - wd;
    if (!wd || i < from + 4 || strncmp(file + i - 4, "-of-", 4)) return 0;
    size_t kd = digits_before(file, from, i - 4, &s->k);
    i -= 4 + kd;
    if (!kd || i <= from || file[i - 1] != '-') return 0;
    s->file = file;
    s->ext = file + end;
    s->prefix = i - 1;
    return 1;
}

/* Same set: the same prefix and extension, whatever K and W say. */
static int same_set(const shard_name *a, const shard_name *b)
{
    return a->prefix == b->prefix && !strncmp(a->file, b->file, a->prefix) && !strcmp(a->ext, b->ext);
}

static int cmp_shard_name(const void *pa, const void *pb)
{
    const shard_name *a = pa, *b = pb;
    int c = strncmp(a->file, b->file, a->prefix < b->prefix ? a->prefix : b->prefix);
    if (!c && a->prefix != b->prefix) c = a->prefix < b->prefix ? -1 : 1;
    if (!c) c = strcmp(a->ext, b->ext);
    if (!c && a->k != b->k) c = a->k < b->k ? -1 : 1;
    return c ? c : strcmp(a->file, b->file);
}

/* The numbers base..base + w - 1 that no shard of s[0..count) has (sorted,
 * each once, none past the set): the first 8 written into out; returns how
 * many are missing. */
static unsigned long long missing_numbers(const shard_name *s, size_t count, unsigned long long base, char *out,
                                          size_t len)
{
    unsigned long long missing = 0, want = base;
    size_t off = 0;
    out[0] = '\0';
    for (size_t i = 0; i <= count; i++) {
        unsigned long long upto = i < count ? s[i].k : base + s[0].w; /* want..upto-1 are missing */
        for (unsigned long long k = want; k < upto && missing + (k - want) < 8 && off < len; k++)
            off += (size_t)snprintf(out + off, len - off, "%s%llu", missing + (k - want) ? ", " : "", k);
        if (upto > want) missing += upto - want;
        if (i < count) want = s[i].k + 1;
    }
    if (missing > 8 && off < len) snprintf(out + off, len - off, ", ... (%llu in all)", missing);
    return missing;
}

/* One set, sorted by K: every W alike, every K once, none missing. Numbered
 * from 0 (K = 0..W-1) or from 1 (K = 1..W), as the files show. */
static mk_err check_set(const char *label, const shard_name *s, size_t count)
{
    for (size_t i = 1; i < count; i++)
        if (s[i].w != s[0].w)
            return mk_fail(MK_EINPUT, "input '%s' mixes shard sets of different sizes: '%s' is one of %llu, '%s' one "
                           "of %llu; name the files of one set only", label, s[0].file, s[0].w, s[i].file, s[i].w);
    unsigned long long w = s[0].w, base = s[0].k != 0 && s[count - 1].k == w ? 1 : 0;
    if (w == 0)
        return mk_fail(MK_EINPUT, "input '%s': '%s' says it is one of a set of 0 shards", label, s[0].file);
    if (s[count - 1].k >= base + w)
        return mk_fail(MK_EINPUT, "input '%s': '%s' says shard %llu of %llu, past the set's numbers %llu..%llu", label,
                       s[count - 1].file, s[count - 1].k, w, base, base + w - 1);
    for (size_t i = 1; i < count; i++)
        if (s[i].k == s[i - 1].k)
            return mk_fail(MK_EINPUT, "input '%s': '%s' and '%s' are both shard %llu of %llu; each shard must be "
                           "given once", label, s[i - 1].file, s[i].file, s[i].k, w);
    char list[256];
    unsigned long long missing = missing_numbers(s, count, base, list, sizeof list);
    if (missing)
        return mk_fail(MK_EINPUT, "input '%s' is an incomplete shard set: missing shard%s %s of %llu..%llu (the "
                       "files say '-K-of-%llu')", label, missing > 1 ? "s" : "", list, base, base + w - 1, w);
    return MK_OK;
}

/* Files named "-K-of-W" must make whole sets: a shard missing, given twice
 * or from another sharding would quietly change n and the CKA. */
static mk_err check_shard_sets(const mk_model *model)
{
    mk_err err = MK_OK;
    shard_name *s = mk_calloc((size_t)model->nfiles + 1, sizeof *s, "the shard list", &err);
    size_t count = 0;
    for (int f = 0; f < model->nfiles && !err; f++) count += (size_t)parse_shard_name(model->files[f], &s[count]);
    if (!err) qsort(s, count, sizeof *s, cmp_shard_name);
    for (size_t i = 0, j; i < count && !err; i = j) {
        for (j = i + 1; j < count && same_set(&s[i], &s[j]);) j++;
        err = check_set(model->file, s + i, j - i);
    }
    free(s);
    return err;
}

typedef struct {
    dev_t dev;
    ino_t ino;
    int f;
} file_id;

static int cmp_file_id(const void *pa, const void *pb)
{
    const file_id *a = pa, *b = pb;
    if (a->dev != b->dev) return a->dev < b->dev ? -1 : 1;
    if (a->ino != b->ino) return a->ino < b->ino ? -1 : 1;
    return (a->f > b->f) - (a->f < b->f);
}

/* Two spellings of one file ("./a.h5" and "a.h5", a symbolic or hard link)
 * would read its examples twice. Files that cannot be opened are left to
 * the inspection's message. */
static mk_err check_same_files(const mk_model *model)
{
    mk_err err = MK_OK;
    file_id *ids = mk_calloc((size_t)model->nfiles + 1, sizeof *ids, "the shard list", &err);
    int count = 0;
    for (int f = 0; f < model->nfiles && !err; f++) {
        struct stat st;
        if (stat(model->files[f], &st) == 0) ids[count++] = (file_id){st.st_dev, st.st_ino, f};
    }
    if (!err) qsort(ids, (size_t)count, sizeof *ids, cmp_file_id);
    for (int i = 1; i < count && !err; i++)
        if (ids[i].dev == ids[i - 1].dev && ids[i].ino == ids[i - 1].ino)
            err = mk_fail(MK_EINPUT, "inputs '%s' and '%s' are the same file (a link or another spelling of its path): "
                          "its examples would be read twice; each shard must be given once",
                          model->files[ids[i - 1].f], model->files[ids[i].f]);
    free(ids);
    return err;
}

/* The shards: each entry a file, or a glob expanded in natural order. */
mk_err mk__resolve_files(const mk_model_cfg *cfg, mk_model *model)
{
    int cap = 0;
    for (int i = 0; i < cfg->nfiles; i++) {
        const char *entry = cfg->files[i];
        if (!strpbrk(entry, "*?[")) {
            MK_TRY(add_file(model, entry, &cap));
            continue;
        }
        glob_t g;
        int rc = glob(entry, 0, NULL, &g);
        char where[4200];
        if (rc == GLOB_NOMATCH)
            return mk_fail(MK_EINPUT, "input pattern '%s' matches no file%s", entry,
                           mk_path_where(entry, where, sizeof where));
        if (rc != 0) return mk_fail(rc == GLOB_NOSPACE ? MK_ENOMEM : MK_EINPUT, "cannot expand input pattern '%s'", entry);
        qsort(g.gl_pathv, g.gl_pathc, sizeof *g.gl_pathv, mk__cmp_natural);
        mk_err err = MK_OK;
        for (size_t k = 0; k < g.gl_pathc && !err; k++) err = add_file(model, g.gl_pathv[k], &cap);
        globfree(&g);
        MK_TRY(err);
    }
    MK_TRY(check_same_files(model));
    return check_shard_sets(model);
}
