/* The `measures:` key: which measures besides CKA a run computes, with their
 * parameters (mpicka/measures.h). Each item of the list is a name, or a
 * mapping of one name to its parameters:
 *     measures: [cca, {svcca: {keep: 0.99}}, pwcca, {shape: {alpha: 0.5}}]
 * (in a flow list YAML also reads `svcca: {keep: 0.99}` without the braces
 * as a one-entry mapping). */
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "config_impl.h"
#include "mpicka/gram_measures.h"
#include "mpicka/text.h"

static mk_err unknown_measure(const char *source, const node *n, const char *name)
{
    const char *near = NULL;
    for (int k = 0; mk_measure_names[k]; k++)
        if (mk_edit_distance(name, mk_measure_names[k]) <= 2) near = mk_measure_names[k];
    return mk__fail_node(source, n, 0, "'measures': unknown measure '%s' (one of cka, cca, svcca, pwcca, procrustes, "
                         "shape, regression, rsa, mutual_knn, cknna, jaccard%s%s%s)", name, near ? "; did you mean '" : "", near ? near : "",
                         near ? "'?" : "");
}

static mk_err param_number(const char *source, const node *v, const char *what, double lo, double hi, double *out)
{
    char *end = NULL;
    errno = 0;
    double d = v->kind == N_SCALAR && !v->null ? strtod(v->text, &end) : NAN;
    if (!end || end == v->text || *end || errno == ERANGE || !(d >= lo && d <= hi))
        return mk__fail_node(source, v, 0, "'measures': %s must be a number from %g to %g", what, lo, hi);
    *out = d;
    return MK_OK;
}

static mk_err svcca_params(const char *source, const node *p, mk_measure *m)
{
    int keep = 0;
    for (const node *e = p->kids; e; e = e->next) {
        if (!strcmp(e->key, "keep")) {
            MK_TRY(param_number(source, e, "svcca's keep (the variance fraction kept)", 1e-300, 1.0, &m->keep));
            if (!(m->keep > 0.0)) return mk__fail_node(source, e, 0, "'measures': svcca's keep must be above 0");
            keep = 1;
        } else if (!strcmp(e->key, "k")) {
            double k;
            MK_TRY(param_number(source, e, "svcca's k (the principal components kept)", 1.0, 1e9, &k));
            if (k != floor(k)) return mk__fail_node(source, e, 0, "'measures': svcca's k must be an integer");
            m->k = (int64_t)k;
        } else {
            return mk__fail_node(source, e, 1, "'measures': svcca has the parameters keep or k, not '%s'", e->key);
        }
    }
    if (keep && m->k) return mk__fail_node(source, p, 0, "'measures': give svcca keep or k, not both");
    if (m->k) m->keep = 0.0;
    return MK_OK;
}

static mk_err shape_params(const char *source, const node *p, mk_measure *m)
{
    for (const node *e = p->kids; e; e = e->next) {
        if (strcmp(e->key, "alpha"))
            return mk__fail_node(source, e, 1, "'measures': shape has the parameter alpha, not '%s'", e->key);
        MK_TRY(param_number(source, e, "shape's alpha (0: whitened, 1: not)", 0.0, 1.0, &m->alpha));
    }
    return MK_OK;
}

/* One word of a fixed set (words[0] gives 0, words[1] 1). */
static mk_err param_word(const char *source, const node *v, const char *what, const char *const words[2], int *out)
{
    for (int k = 0; k < 2; k++)
        if (v->kind == N_SCALAR && !v->null && !strcasecmp(v->text, words[k])) {
            *out = k;
            return MK_OK;
        }
    return mk__fail_node(source, v, 0, "'measures': %s must be %s or %s", what, words[0], words[1]);
}

static mk_err rsa_params(const char *source, const node *p, mk_measure *m)
{
    for (const node *e = p->kids; e; e = e->next) {
        if (!strcmp(e->key, "method"))
            MK_TRY(param_word(source, e, "rsa's method (how the RDMs are compared)",
                              (const char *const[]){"pearson", "spearman"}, &m->spearman));
        else if (!strcmp(e->key, "distance"))
            MK_TRY(param_word(source, e, "rsa's distance (between two examples)",
                              (const char *const[]){"euclidean", "correlation"}, &m->correlation));
        else
            return mk__fail_node(source, e, 1, "'measures': rsa has the parameters method and distance, not '%s'",
                                 e->key);
    }
    return MK_OK;
}

/* k of mutual_knn, cknna and jaccard (its bound by batch_size: mk__check_measures). */
static mk_err knn_params(const char *source, const node *p, const char *name, mk_measure *m)
{
    for (const node *e = p->kids; e; e = e->next) {
        if (strcmp(e->key, "k"))
            return mk__fail_node(source, e, 1, "'measures': %s has the parameter k, not '%s'", name, e->key);
        double k;
        MK_TRY(param_number(source, e, "k (the nearest neighbours of each example)", 1.0, 1e9, &k));
        if (k != floor(k)) return mk__fail_node(source, e, 0, "'measures': %s's k must be an integer", name);
        if (m->kind == MK_MEASURE_CKNNA && k < 2)
            return mk__fail_node(source, e, 0, "'measures': cknna's k must be at least 2 (as platonic-rep's)");
        m->k = (int64_t)k;
    }
    return MK_OK;
}

static int has_params(int kind)
{
    return kind == MK_MEASURE_SVCCA || kind == MK_MEASURE_SHAPE || mk_gram_measure((mk_measure_kind)kind);
}

/* A name, with its parameters p (a mapping, or NULL for the defaults). */
static mk_err one_measure(const char *source, const node *at, const char *name, const node *p, mk_measure *m)
{
    int kind = -1;
    for (int k = 0; mk_measure_names[k]; k++)
        if (!strcasecmp(name, mk_measure_names[k])) kind = k;
    if (kind < 0) return unknown_measure(source, at, name);
    *m = (mk_measure){.kind = (mk_measure_kind)kind, .keep = 0.99, .alpha = 1.0};
    if (mk_gram_measure(m->kind) && kind != MK_MEASURE_RSA) m->k = 10;
    if (!p || p->null) return MK_OK;
    if (p->kind != N_MAP || !has_params(kind))
        return mk__fail_node(source, p, 0, "'measures': %s %s", name, has_params(kind)
                             ? "takes a mapping of its parameters" : "takes no parameters");
    if (kind == MK_MEASURE_RSA) return rsa_params(source, p, m);
    if (mk_gram_measure(m->kind)) return knn_params(source, p, name, m);
    return kind == MK_MEASURE_SVCCA ? svcca_params(source, p, m) : shape_params(source, p, m);
}

static mk_err item(const char *source, const node *n, mk_measure *m)
{
    if (n->kind == N_SCALAR && !n->null) return one_measure(source, n, n->text, NULL, m);
    if (n->kind == N_MAP && n->kids && !n->kids->next) return one_measure(source, n->kids, n->kids->key, n->kids, m);
    return mk__fail_node(source, n, 0, "'measures' items are a name or one `name: {parameters}` entry, got %s",
                         n->null ? "nothing" : mk__kind_word(n));
}

mk_err mk__conv_measures(const char *source, const node *n, mk_config *cfg)
{
    int len = 0;
    if (n->kind == N_MAP) return mk__fail_node(source, n, 0, "'measures' must be a list, got a mapping");
    for (const node *i = n->kind == N_SEQ ? n->kids : n; i; i = n->kind == N_SEQ ? i->next : NULL) len++;
    if (!len) return mk__fail_node(source, n, 0, "'measures' must list at least one measure");
    mk_err err = MK_OK;
    cfg->measures = mk_calloc((size_t)len, sizeof *cfg->measures, "the measures", &err);
    if (err) return err;
    for (const node *i = n->kind == N_SEQ ? n->kids : n; i; i = n->kind == N_SEQ ? i->next : NULL) {
        mk_measure *m = &cfg->measures[cfg->nmeasures];
        MK_TRY(item(source, i, m));
        for (int j = 0; j < cfg->nmeasures; j++)
            if (cfg->measures[j].kind == m->kind)
                return mk__fail_node(source, i, 0, "'measures' names %s twice", mk_measure_names[m->kind]);
        cfg->nmeasures++;
    }
    return MK_OK;
}

void mk__emit_measures(FILE *f, const mk_config *cfg)
{
    fputs(" [", f);
    for (int i = 0; i < cfg->nmeasures; i++) {
        const mk_measure *m = &cfg->measures[i];
        const char *name = mk_measure_names[m->kind];
        fputs(i ? ", " : "", f);
        if (m->kind == MK_MEASURE_SVCCA && m->k) fprintf(f, "{%s: {k: %lld}}", name, (long long)m->k);
        else if (m->kind == MK_MEASURE_SVCCA) fprintf(f, "{%s: {keep: %.17g}}", name, m->keep);
        else if (m->kind == MK_MEASURE_SHAPE) fprintf(f, "{%s: {alpha: %.17g}}", name, m->alpha);
        else if (m->kind == MK_MEASURE_RSA)
            fprintf(f, "{%s: {method: %s, distance: %s}}", name, m->spearman ? "spearman" : "pearson",
                    m->correlation ? "correlation" : "euclidean");
        else if (mk_gram_measure(m->kind)) fprintf(f, "{%s: {k: %lld}}", name, (long long)m->k);
        else fputs(name, f);
    }
    fputc(']', f);
}

/* The first measure of each family (second moments, Grams), or -1. */
static void families(const mk_config *cfg, int *moments, int *grams)
{
    *moments = *grams = -1;
    for (int i = cfg->nmeasures - 1; i >= 0; i--) {
        mk_measure_kind kind = cfg->measures[i].kind;
        if (kind == MK_MEASURE_CKA) continue;
        if (mk_gram_measure(kind)) *grams = i;
        else *moments = i;
    }
}

#define FAIL(...) (n ? mk__fail_node(source, n, 1, __VA_ARGS__) : mk__fail_at(source, NULL, 0, __VA_ARGS__))

/* The k-NN measures need k + 1 examples in a batch. */
static mk_err check_k(const char *source, const node *n, const mk_config *cfg)
{
    for (int i = 0; i < cfg->nmeasures; i++) {
        const mk_measure *m = &cfg->measures[i];
        if (!mk_gram_measure(m->kind) || m->kind == MK_MEASURE_RSA || m->k <= cfg->batch_size - 1) continue;
        return FAIL("'measures': %s's k is %lld but a batch of batch_size %lld examples has %lld neighbours for "
                    "each example; lower k or raise batch_size", mk_measure_names[m->kind], (long long)m->k,
                    (long long)cfg->batch_size, (long long)(cfg->batch_size - 1));
    }
    return MK_OK;
}

mk_err mk__check_measures(const char *source, const node *n, const mk_config *cfg)
{
    int moments, grams;
    families(cfg, &moments, &grams);
    if (moments >= 0 && cfg->estimator != MK_EST_EXACT)
        return FAIL("'measures' lists %s, which needs 'estimator: exact': it is a function of the covariances of all "
                    "examples, which only the exact estimator accumulates (the minibatch estimators give cka, rsa, "
                    "mutual_knn, cknna and jaccard)", mk_measure_names[cfg->measures[moments].kind]);
    return grams >= 0 ? check_k(source, n, cfg) : MK_OK;
}
#undef FAIL
