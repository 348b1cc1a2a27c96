/* Small text helpers shared by the readers of layer names (plot, show) and
 * the did-you-mean hints (config keys, dataset names). */
#ifndef MPICKA_TEXT_H
#define MPICKA_TEXT_H

#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MK_EDIT_MAX 256 /* longer strings are "far" from everything */

/* Levenshtein distance of a and b; (size_t)-1 when either exceeds MK_EDIT_MAX. */
static inline size_t mk_edit_distance(const char *a, const char *b)
{
    size_t na = strlen(a), nb = strlen(b), row[MK_EDIT_MAX + 1];
    if (na > MK_EDIT_MAX || nb > MK_EDIT_MAX) return (size_t)-1;
    for (size_t j = 0; j <= nb; j++) row[j] = j;
    for (size_t i = 1; i <= na; i++) {
        size_t diag = row[0];
        row[0] = i;
        for (size_t j = 1; j <= nb; j++) {
            size_t up = row[j], best = diag + (a[i - 1] != b[j - 1]);
            if (up + 1 < best) best = up + 1;
            if (row[j - 1] + 1 < best) best = row[j - 1] + 1;
            diag = up;
            row[j] = best;
        }
    }
    return row[nb];
}

/* Length of the valid UTF-8 sequence at s, or 0 when s starts an invalid one. */
static inline int mk_utf8_seq(const unsigned char *s)
{
    int n = s[0] < 0x80                    ? 1
            : s[0] >= 0xc2 && s[0] <= 0xdf ? 2
            : s[0] >= 0xe0 && s[0] <= 0xef ? 3
            : s[0] >= 0xf0 && s[0] <= 0xf4 ? 4
                                           : 0;
    for (int k = 1; k < n; k++)
        if ((s[k] & 0xc0) != 0x80) return 0;
    return n;
}

/* The shortest decimal text of v that reads back as the same double (as
 * Python's repr: 0.1, not 0.10000000000000001): %.15g, %.16g or %.17g,
 * the first that strtod returns to v. NaN and the infinities as printf
 * writes them. buf needs at least 32 bytes. Every text output of a float
 * (show, cka.csv, the resolved config) goes through it. */
#define MK_DOUBLE_TEXT 32
static inline const char *mk_double_text(char *buf, double v)
{
    for (int digits = 15; digits <= 17; digits++) {
        snprintf(buf, MK_DOUBLE_TEXT, "%.*g", digits, v);
        if (v != v || strtod(buf, NULL) == v) break;
    }
    return buf;
}

#endif
