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
#include "mpicka/text.h"

static mk_err unknown_measure(const char *source, const node *n, const char *name)
{
    const char *near = NULL;
    for (int k = 0; mk_measure_names[k]; k++)
        if (mk_edit_distance(name, mk_measure_names[k]) <= 2) near = mk_measure_names[k];
    return mk__fail_node(source, n, 0, "'measures': unknown measure '%s' (one of cka, cca, svcca, pwcca, procrustes, "
                         "shape, regression%s%s%s)", name, near ? "; did you mean '" : "", near ? near : "",
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

/* A name, with its parameters p (a mapping, or NULL for the defaults). */
static mk_err one_measure(const char *source, const node *at, const char *name, const node *p, mk_measure *m)
{
    int kind = -1;
    for (int k = 0; mk_measure_names[k]; k++)
        if (!strcasecmp(name, mk_measure_names[k])) kind = k;
    if (kind < 0) return unknown_measure(source, at, name);
    *m = (mk_measure){.kind = (mk_measure_kind)kind, .keep = 0.99, .alpha = 1.0};
    if (!p || p->null) return MK_OK;
    if (p->kind != N_MAP || (kind != MK_MEASURE_SVCCA && kind != MK_MEASURE_SHAPE))
        return mk__fail_node(source, p, 0, "'measures': %s %s", name, kind == MK_MEASURE_SVCCA || kind == MK_MEASURE_SHAPE
                             ? "takes a mapping of its parameters" : "takes no parameters");
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
        else fputs(name, f);
    }
    fputc(']', f);
}

mk_err mk__check_measures(const char *source, const node *n, const mk_config *cfg)
{
    for (int i = 0; i < cfg->nmeasures; i++) {
        mk_measure_kind kind = cfg->measures[i].kind;
        if (kind == MK_MEASURE_CKA || cfg->estimator == MK_EST_EXACT) continue;
#define MSG "'measures' lists %s, which needs 'estimator: exact': it is a function of the covariances of all " \
            "examples, which only the exact estimator accumulates (the minibatch estimators give cka alone)"
        return n ? mk__fail_node(source, n, 1, MSG, mk_measure_names[kind])
                 : mk__fail_at(source, NULL, 0, MSG, mk_measure_names[kind]);
#undef MSG
    }
    return MK_OK;
}
