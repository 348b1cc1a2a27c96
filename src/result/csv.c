#include "mpicka/csv.h"

#include <string.h>

#include "mpicka/text.h"

void mk_csv_field(FILE *f, const char *s)
{
    if (!strpbrk(s, ",\"\n\r")) {
        fputs(s, f);
        return;
    }
    fputc('"', f);
    for (; *s; s++) {
        if (*s == '"') fputc('"', f);
        fputc(*s, f);
    }
    fputc('"', f);
}

void mk_csv_matrix(FILE *f, int nx, int ny, const char *const *xl, const char *const *yl, const double *v)
{
    char num[MK_DOUBLE_TEXT];
    mk_csv_field(f, "layer");
    for (int j = 0; j < ny; j++) {
        fputc(',', f);
        mk_csv_field(f, yl[j]);
    }
    fputc('\n', f);
    for (int i = 0; i < nx; i++) {
        mk_csv_field(f, xl[i]);
        for (int j = 0; j < ny; j++) {
            fputc(',', f);
            fputs(mk_double_text(num, v[(size_t)i * ny + j]), f);
        }
        fputc('\n', f);
    }
}

void mk_csv_models(FILE *f, int nmodels, const char *const *names, const int *offset,
                   const char *const *layers, const double *cka, const double *se, const double *pv)
{
    mk_csv_models_of(f, "cka", nmodels, names, offset, layers, cka, se, pv);
}

void mk_csv_models_of(FILE *f, const char *what, int nmodels, const char *const *names, const int *offset,
                      const char *const *layers, const double *cka, const double *se, const double *pv)
{
    int L = offset[nmodels];
    char num[MK_DOUBLE_TEXT];
    fputs("model_a,layer_a,model_b,layer_b,", f);
    mk_csv_field(f, what);
    fputs(",stderr,pvalue\n", f);
    for (int a = 0; a < nmodels; a++)
        for (int i = offset[a]; i < offset[a + 1]; i++)
            for (int b = 0; b < nmodels; b++)
                for (int j = offset[b]; j < offset[b + 1]; j++) {
                    size_t k = (size_t)i * L + j;
                    mk_csv_field(f, names[a]);
                    fputc(',', f);
                    mk_csv_field(f, layers[i]);
                    fputc(',', f);
                    mk_csv_field(f, names[b]);
                    fputc(',', f);
                    mk_csv_field(f, layers[j]);
                    fprintf(f, ",%s,", mk_double_text(num, cka[k]));
                    if (se) fputs(mk_double_text(num, se[k]), f);
                    fputc(',', f);
                    if (pv) fputs(mk_double_text(num, pv[k]), f);
                    fputc('\n', f);
                }
}
