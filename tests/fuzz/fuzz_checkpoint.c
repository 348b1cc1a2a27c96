/* libFuzzer target for the checkpoint reader: a valid checkpoint is written
 * once, then each input is a list of byte patches (3-byte offset, value)
 * applied to its image; the damaged file must be refused cleanly or, when
 * read, pass or fail mk_checkpoint_validate, never crash, leak or hang. The
 * same bytes, read as spans and tree nodes, go to mk_checkpoint_validate
 * directly: the checks a forged file that passes the seal still meets. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "mpicka/checkpoint.h"

static char good[64], bad[64];
static unsigned char *image;
static size_t image_len;
static mk_plan plan;

static void make_good(void)
{
    snprintf(good, sizeof good, "/tmp/mpicka-fuzz-good-%ld.h5", (long)getpid());
    snprintf(bad, sizeof bad, "/tmp/mpicka-fuzz-bad-%ld.h5", (long)getpid());
    if (mk_plan_init(&plan, 1000, 10, 1, 1, 3) != MK_OK) abort();
    int64_t spans[2][2] = {{16, 40}, {48, 100}}, level[3] = {4, 2, 3}, start[3] = {0, 40, 40 + 0};
    start[2] = 48 - 8; /* (3, 40) covers 40..47: replaces (2, 40) below */
    mk_todo todo = {spans, 2, 76};
    int64_t lv[2] = {level[0], level[2]}, st[2] = {start[0], start[2]};
    double sums[2 * 7];
    for (int k = 0; k < 14; k++) sums[k] = 0.25 * k;
    mk_nodes nodes = {2, 7, lv, st, sums};
    if (mk_checkpoint_write(good, "fingerprint of the fuzz run\n", &todo, &nodes, 1.5, 1) != MK_OK) abort();
    FILE *f = fopen(good, "rb");
    fseek(f, 0, SEEK_END);
    image_len = (size_t)ftell(f);
    rewind(f);
    image = malloc(image_len);
    if (fread(image, 1, image_len, f) != image_len) abort();
    fclose(f);
    unlink(good);
    mk_checkpoint ck;
    if (mk_checkpoint_read(good, &ck) == MK_OK) abort(); /* gone */
}

static void validate_raw(const uint8_t *data, size_t size)
{
    int64_t v[64] = {0};
    size_t n = size / 8 < 64 ? size / 8 : 64;
    memcpy(v, data, n * 8);
    int spans = (int)(n ? (uint64_t)v[0] % 8 : 0), nodes = (int)(n > 1 ? (uint64_t)v[1] % 8 : 0);
    int64_t span[8][2] = {{0}}, level[8] = {0}, start[8] = {0};
    double sums[8 * 7] = {0};
    for (int i = 0; i < spans; i++) span[i][0] = v[(2 + 2 * i) % 64], span[i][1] = v[(3 + 2 * i) % 64];
    for (int i = 0; i < nodes; i++) level[i] = v[(20 + 2 * i) % 64] % 70, start[i] = v[(21 + 2 * i) % 64];
    mk_checkpoint ck = {NULL, {span, spans, 0}, {nodes, 7, level, start, sums}};
    (void)mk_checkpoint_validate(&ck, "raw", &plan, 7);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (!image) make_good();
    validate_raw(data, size);
    unsigned char *copy = malloc(image_len);
    memcpy(copy, image, image_len);
    for (size_t i = 0; i + 4 <= size; i += 4) {
        size_t at = ((size_t)data[i] | (size_t)data[i + 1] << 8 | (size_t)data[i + 2] << 16) % image_len;
        copy[at] = data[i + 3];
    }
    FILE *f = fopen(bad, "wb");
    fwrite(copy, 1, image_len, f);
    fclose(f);
    free(copy);
    mk_checkpoint ck;
    if (mk_checkpoint_read(bad, &ck) == MK_OK) {
        (void)mk_checkpoint_validate(&ck, bad, &plan, 7);
        mk_checkpoint_free(&ck);
    }
    return 0;
}
