#include "mpicka/file.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* What a path that is not a regular file is, for the message. */
static const char *kind(mode_t mode)
{
    if (S_ISDIR(mode)) return "a folder (Is a directory)";
    if (S_ISFIFO(mode)) return "a FIFO (named pipe)";
    if (S_ISSOCK(mode)) return "a socket";
    if (S_ISCHR(mode)) return "a character device";
    if (S_ISBLK(mode)) return "a block device";
    return "not a regular file";
}

mk_err mk_open_regular(const char *path, const char *what, mk_err code, int *fd)
{
    struct stat st;
    /* O_NONBLOCK: opening a FIFO for reading would wait for a writer */
    *fd = open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC | O_NOCTTY);
    if (*fd < 0) return mk_fail(code, "cannot read %s '%s': %s", what, path, strerror(errno));
    mk_err err = MK_OK;
    if (fstat(*fd, &st) != 0)
        err = mk_fail(code, "cannot read %s '%s': %s", what, path, strerror(errno));
    else if (!S_ISREG(st.st_mode))
        err = mk_fail(code, "cannot read %s '%s': it is %s, not a regular file", what, path, kind(st.st_mode));
    else if (fcntl(*fd, F_SETFL, 0) != 0) /* reads of a regular file then block as usual */
        err = mk_fail(code, "cannot read %s '%s': %s", what, path, strerror(errno));
    if (err) {
        close(*fd);
        *fd = -1;
    }
    return err;
}

mk_err mk_check_regular(const char *path, const char *what, mk_err code)
{
    int fd;
    MK_TRY(mk_open_regular(path, what, code, &fd));
    close(fd);
    return MK_OK;
}

int mk_pread_full(int fd, void *buf, size_t len, int64_t off)
{
    for (size_t got = 0; got < len;) {
        ssize_t r = pread(fd, (char *)buf + got, len - got, (off_t)(off + (int64_t)got));
        if (r < 0 && errno == EINTR) continue;
        if (r <= 0) return r < 0 ? -1 : 1;
        got += (size_t)r;
    }
    return 0;
}

const char *mk_path_where(const char *path, char *buf, size_t size)
{
    char cwd[4096];
    if (size == 0) return "";
    buf[0] = '\0';
    if (path[0] == '/') return buf;
    if (!getcwd(cwd, sizeof cwd)) snprintf(cwd, sizeof cwd, "? (%s)", strerror(errno));
    snprintf(buf, size, " (relative to the working folder '%s')", cwd);
    return buf;
}
