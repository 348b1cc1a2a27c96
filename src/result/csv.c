#include "mpicka/csv.h"

#include <string.h>

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
    mk_csv_field(f, "layer");
    for (int j = 0; j < ny; j++) {
        fputc(',', f);
        mk_csv_field(f, yl[j]);
    }
    fputc('\n', f);
    for (int i = 0; i < nx; i++) {
        mk_csv_field(f, xl[i]);
        for (int j = 0; j < ny; j++) fprintf(f, ",%.17g", v[(size_t)i * ny + j]);
        fputc('\n', f);
    }
}

void mk_csv_models(FILE *f, int nmodels, const char *const *names, const int *offset,
                   const char *const *layers, const double *cka, const double *se, const double *pv)
{
    int L = offset[nmodels];
    fputs("model_a,layer_a,model_b,layer_b,cka,stderr,pvalue\n", f);
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
                    fprintf(f, ",%.17g,", cka[k]);
                    if (se) fprintf(f, "%.17g", se[k]);
                    fputc(',', f);
                    if (pv) fprintf(f, "%.17g", pv[k]);
                    fputc('\n', f);
                }
}
