/* libFuzzer target for a library session's merged bytes (mpicka/session.h):
 * a valid state and probe are made once; each input is a list of byte
 * patches (3-byte offset, value) applied to their images, re-sealed with a
 * fresh checksum when the input's first byte is odd (so that the checks
 * behind the seal are reached). The bytes must be refused with MK_EINPUT or
 * MK_EUSAGE, or merged into a fresh session that then finishes: never a
 * crash, a hang, a leak or another error. The input itself is also merged
 * raw. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mpicka/session.h"

enum { N = 32, P = 2 };
static float x[N * P];
static double y[N * P];
static unsigned char *state, *probe;
static int64_t state_len, probe_len;

static mk_session *fresh(int rank)
{
    mk_session *s;
    int a, b;
    int64_t dims[1] = {P};
    if (mk_session_open("batch_size: 4\njackknife: 2\npermutations: 1\nprogress_seconds: 100000\n", NULL, &s) ||
        mk_session_add_model(s, "x", &a) || mk_session_add_model(s, "y", &b) ||
        mk_session_add_layer(s, a, "l", 1, dims, MK_DTYPE_F32) || mk_session_add_layer(s, b, "l", 1, dims, MK_DTYPE_F64) ||
        mk_session_start(s, N, rank, 2))
        abort();
    return s;
}

static mk_err feed(mk_session *s, int64_t g)
{
    const void *layers[2] = {x + g * 4 * P, y + g * 4 * P};
    return mk_session_feed(s, g, layers, 4);
}

static void make_good(void)
{
    uint64_t seed = 7;
    for (int i = 0; i < N * P; i++) {
        seed = seed * 6364136223846793005ULL + 1442695040888963407ULL;
        x[i] = (float)(seed >> 40) / 16777216.0f;
        y[i] = x[i] * x[i] + (double)(i % 5);
    }
    mk_session *s = fresh(0);
    void *b, *p;
    for (int64_t g = 0; g < 4; g++)
        if (feed(s, g)) abort();
    if (mk_session_export(s, &b, &state_len) || mk_session_probe(s, &p, &probe_len)) abort();
    state = b, probe = p;
    mk_session_close(s);
}

static void reseal(unsigned char *buf, int64_t len)
{
    uint64_t h = 1469598103934665603ULL;
    for (int64_t i = 0; i < len - 8; i++) h = (h ^ buf[i]) * 1099511628211ULL;
    memcpy(buf + len - 8, &h, 8);
}

static unsigned char *patched(const unsigned char *image, int64_t len, const uint8_t *data, size_t size)
{
    unsigned char *copy = malloc((size_t)len);
    memcpy(copy, image, (size_t)len);
    for (size_t i = 1; i + 4 <= size; i += 4) {
        size_t at = ((size_t)data[i] | (size_t)data[i + 1] << 8 | (size_t)data[i + 2] << 16) % (size_t)len;
        copy[at] = data[i + 3];
    }
    if (size && data[0] & 1) reseal(copy, len);
    return copy;
}

static void expect_refusal_or_ok(mk_err err)
{
    if (err != MK_OK && err != MK_EINPUT && err != MK_EUSAGE && err != MK_EDATA) {
        fprintf(stderr, "unexpected %s: %s\n", mk_errname(err), mk_errmsg());
        abort();
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (!state) make_good();
    mk_session *s = fresh(1);
    unsigned char *st = patched(state, state_len, data, size), *pr = patched(probe, probe_len, data, size);
    mk_err merged = mk_session_merge(s, st, state_len);
    expect_refusal_or_ok(merged);
    if (merged == MK_OK) { /* the rest fed (when the state brought the probe), then finished */
        for (int64_t g = 4; g < 8; g++) expect_refusal_or_ok(feed(s, g));
        expect_refusal_or_ok(mk_session_finish(s));
    }
    mk_session_close(s);
    s = fresh(1);
    expect_refusal_or_ok(mk_session_set_probe(s, pr, probe_len));
    expect_refusal_or_ok(mk_session_merge(s, data, (int64_t)size));
    mk_session_close(s);
    free(st), free(pr);
    return 0;
}
