/* The install suite's client of the installed library (tests/install): two
 * models with y = 2x, whose CKA is 1; and a call out of order refused. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <mpicka/session.h>

#define CHECK(call) do { if ((call) != MK_OK) { fprintf(stderr, "%s: %s\n", #call, mk_errmsg()); return 1; } } while (0)

int main(void)
{
    enum { N = 64, P = 3 };
    static float x[N * P];
    static double y[N * P];
    unsigned s = 1;
    for (int i = 0; i < N * P; i++) {
        s = s * 1103515245u + 12345u;
        x[i] = (float)((s >> 8) % 1000) / 1000.0f;
        y[i] = 2.0 * x[i];
    }
    mk_session *ses;
    int a, b;
    int64_t dims[1] = {P};
    CHECK(mk_session_open("batch_size: 16\njackknife: 0\n", NULL, &ses));
    CHECK(mk_session_add_model(ses, "x", &a));
    CHECK(mk_session_add_model(ses, "y", &b));
    CHECK(mk_session_add_layer(ses, a, "l", 1, dims, MK_DTYPE_F32));
    CHECK(mk_session_add_layer(ses, b, "l", 1, dims, MK_DTYPE_F64));
    CHECK(mk_session_start(ses, N, 0, 1));
    for (int64_t g = 0; g < mk_session_batches(ses); g++) {
        const void *layers[2] = {x + g * 16 * P, y + g * 16 * P};
        CHECK(mk_session_feed(ses, g, layers, mk_session_batch_rows(ses, g)));
    }
    CHECK(mk_session_finish(ses));
    const double *cka;
    int64_t r, c;
    CHECK(mk_session_matrix(ses, "cka", &cka, &r, &c));
    printf("cka %lld x %lld: %.15f\n", (long long)r, (long long)c, cka[0]);
    int bad = mk_session_feed(ses, 0, NULL, 16) != MK_EUSAGE;
    printf("after finish: %s: %s\n", mk_errname(MK_EUSAGE), mk_errmsg());
    bad |= r != 1 || c != 1 || fabs(cka[0] - 1.0) > 1e-12;
    mk_session_close(ses);
    return bad;
}
