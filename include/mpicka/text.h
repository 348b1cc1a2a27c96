/* Small text helpers shared by the readers of layer names (plot, show). */
#ifndef MPICKA_TEXT_H
#define MPICKA_TEXT_H

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

#endif
