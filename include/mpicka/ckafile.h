/* Reading a result back: the cka.h5 that `mpicka run` writes (README,
 * "Output"), for `mpicka plot` and `mpicka show`. Not MPI; one process.
 *
 * Required: the datasets /cka (2-D float, Lx by Ly), /x_layers (Lx strings)
 * and /y_layers (Ly strings), and the string attributes x_name and y_name;
 * their absence is MK_EINPUT naming the file and what is missing. `self`, if
 * there (results of early versions lack it), must be an integer.
 * Every other scalar root attribute (integer, float or string) is read as it
 * is, in name order, whatever its name. */
#ifndef MPICKA_CKAFILE_H
#define MPICKA_CKAFILE_H

#include <stdint.h>

#include "mpicka/error.h"

typedef enum { MK_ATTR_INT, MK_ATTR_UINT, MK_ATTR_REAL, MK_ATTR_TEXT } mk_attr_kind;

typedef struct {
    char *name;
    mk_attr_kind kind;
    int64_t i;  /* MK_ATTR_INT */
    uint64_t u; /* MK_ATTR_UINT */
    double r;   /* MK_ATTR_REAL */
    char *text; /* MK_ATTR_TEXT, UTF-8 */
} mk_attr;

typedef struct {
    int nx, ny;
    double *cka; /* nx by ny, row-major */
    char **x_layers, **y_layers;
    mk_attr *attrs; /* sorted by name */
    int nattrs;
} mk_ckafile;

/* Fills f (owned by the caller, freed with mk_ckafile_free, also after a
 * failure). */
mk_err mk_ckafile_read(const char *path, mk_ckafile *f);
void mk_ckafile_free(mk_ckafile *f);

/* The attribute called name, or NULL. */
const mk_attr *mk_ckafile_attr(const mk_ckafile *f, const char *name);
/* A string attribute's text, or NULL when missing or not a string. */
const char *mk_ckafile_text(const mk_ckafile *f, const char *name);
/* Whether x is compared with itself: the `self` attribute, or without it,
 * whether both sides have the same name, file and layers. */
int mk_ckafile_self(const mk_ckafile *f);

#endif
