"""The ctypes binding of libmpicka (``include/mpicka/session.h``): no
compiler at import, only the shared library, found once per process.

Where the library is looked for, first found wins:

1. ``$MPICKA_LIBRARY``: the file itself (nothing else is tried);
2. ``$MPICKA_BUILD``: a build folder;
3. the package's own install prefix: ``<prefix>/lib*/libmpicka.so`` for
   the folders above this package (installed under the prefix where
   ``cmake --install`` put the library);
4. the repository's ``build/`` when the package is imported from a source
   tree (``PYTHONPATH=python``);
5. the prefix of the ``mpicka`` program on ``PATH`` (``cmake --install
   build --prefix ~/.local`` with the package in a venv elsewhere);
6. ``ctypes.util.find_library("mpicka")`` (the linker's cache and paths).

Every call that returns an ``mk_err`` goes through :func:`call`, which turns
a failure into :class:`MpickaError` carrying ``mk_errmsg()``.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import glob
import os
import shutil
import threading
from typing import Optional

__all__ = ["MpickaError", "LibraryNotFound", "library", "call", "find_library", "DTYPES"]

# mpicka/error.h's X-macro order: the enum's values.
_CODES = ("MK_OK", "MK_EUSAGE", "MK_ECONFIG", "MK_EINPUT", "MK_EDATA", "MK_EIO", "MK_ENOMEM", "MK_EMPI",
          "MK_EINTERNAL", "MK_ESTOPPED")

# numpy dtype name -> MK_DTYPE_*.
DTYPES = {"float16": 1, "float32": 2, "float64": 3}


class MpickaError(RuntimeError):
    """A failure reported by libmpicka: ``code`` is the mk_err name
    (``"MK_EDATA"``, ...), the message is the library's ``mk_errmsg()``,
    naming the model, layer and batch where one is at fault."""

    def __init__(self, message: str, code: str = "MK_EINTERNAL"):
        super().__init__(message)
        self.code = code


class LibraryNotFound(MpickaError, ImportError):
    """libmpicka.so was not found where :mod:`mpicka._lib` looks."""


_lock = threading.Lock()
_lib: Optional[ctypes.CDLL] = None


def _prefixes() -> list[str]:
    """Install prefixes this package may belong to: the folders above it
    (site-packages or share/mpicka/python under a prefix)."""
    out, d = [], os.path.dirname(os.path.abspath(__file__))
    for _ in range(6):
        d = os.path.dirname(d)
        out.append(d)
    return out


def _program_prefix() -> Optional[str]:
    """The prefix of the mpicka program on PATH (<prefix>/bin/mpicka)."""
    exe = shutil.which("mpicka")
    return os.path.dirname(os.path.dirname(os.path.realpath(exe))) if exe else None


def _installed(prefix: str) -> list[str]:
    return (sorted(glob.glob(os.path.join(prefix, "lib*", "libmpicka.so")))
            + sorted(glob.glob(os.path.join(prefix, "lib", "*-linux-gnu", "libmpicka.so"))))


def _source_build() -> Optional[str]:
    """The repository's build/ when imported from a source tree (python/mpicka)."""
    repo = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    if os.path.isfile(os.path.join(repo, "include", "mpicka", "session.h")):
        return os.path.join(repo, "build")
    return None


def _in_build(folder: str) -> Optional[str]:
    for pattern in ("libmpicka.so", "*/libmpicka.so", "*/*/libmpicka.so"):
        found = sorted(glob.glob(os.path.join(folder, pattern)))
        if found:
            return found[0]
    return None


def candidates() -> list[str]:
    """Every place looked at, in order (for the not-found message)."""
    env = os.environ.get("MPICKA_LIBRARY")
    if env:
        return [env]
    places = []
    build = os.environ.get("MPICKA_BUILD")
    if build:
        places.append(_in_build(build) or os.path.join(build, "libmpicka.so"))
    for prefix in _prefixes():
        places += _installed(prefix)
    source = _source_build()
    if source:
        places.append(_in_build(source) or os.path.join(source, "libmpicka.so"))
    program = _program_prefix()
    if program:
        places += _installed(program)
    found = ctypes.util.find_library("mpicka")
    if found:
        places.append(found)
    return places


def find_library() -> str:
    """The path of libmpicka.so, or :class:`LibraryNotFound` saying where it
    looked and how to get one."""
    env = os.environ.get("MPICKA_LIBRARY")
    if env:
        if not os.path.isfile(env):
            raise LibraryNotFound(f"MPICKA_LIBRARY={env}: no such file; point it at libmpicka.so "
                                  f"(built as build/libmpicka.so, installed as <prefix>/lib/libmpicka.so)")
        return env
    tried = candidates()
    for path in tried:
        # find_library answers a bare soname the loader resolves itself.
        if os.path.isfile(path) or (path and os.sep not in path):
            return path
    raise LibraryNotFound(
        "libmpicka.so not found (looked in MPICKA_BUILD, under the install prefixes of this package ("
        + os.path.dirname(os.path.dirname(os.path.abspath(__file__))) + " and above) and of the mpicka program "
        "on PATH, in the linker's paths" + (": " + ", ".join(tried) if tried else "") + "); build it with "
        "'cmake -S . -B build && cmake --build build' and set MPICKA_BUILD=build, or install it with "
        "'cmake --install build --prefix PREFIX', or set MPICKA_LIBRARY to the file")


def _declare(lib: ctypes.CDLL) -> None:
    c_i64, c_int, vp, cp = ctypes.c_int64, ctypes.c_int, ctypes.c_void_p, ctypes.c_char_p
    sess = ctypes.c_void_p
    table = {
        "mk_errmsg": (cp, []),
        "mk_session_open": (c_int, [cp, ctypes.POINTER(cp), ctypes.POINTER(sess)]),
        "mk_session_add_model": (c_int, [sess, cp, ctypes.POINTER(c_int)]),
        "mk_session_add_layer": (c_int, [sess, c_int, cp, c_int, ctypes.POINTER(c_i64), c_int]),
        "mk_session_set_force": (c_int, [sess, c_int]),
        "mk_session_start": (c_int, [sess, c_i64, c_int, c_int]),
        "mk_session_batches": (c_i64, [sess]),
        "mk_session_batch_rows": (c_i64, [sess, c_i64]),
        "mk_session_feed": (c_int, [sess, c_i64, ctypes.POINTER(vp), c_i64]),
        "mk_session_probe": (c_int, [sess, ctypes.POINTER(vp), ctypes.POINTER(c_i64)]),
        "mk_session_set_probe": (c_int, [sess, cp, c_i64]),
        "mk_session_export": (c_int, [sess, ctypes.POINTER(vp), ctypes.POINTER(c_i64)]),
        "mk_session_merge": (c_int, [sess, cp, c_i64]),
        "mk_session_finish": (c_int, [sess]),
        "mk_session_matrix": (c_int, [sess, cp, ctypes.POINTER(ctypes.POINTER(ctypes.c_double)),
                                      ctypes.POINTER(c_i64), ctypes.POINTER(c_i64)]),
        "mk_session_free_bytes": (None, [vp]),
        "mk_session_close": (None, [sess]),
    }
    for name, (res, args) in table.items():
        try:
            fn = getattr(lib, name)
        except AttributeError:
            raise MpickaError(f"{lib._name}: has no {name}: a libmpicka.so older than this package; rebuild "
                              f"or reinstall it") from None
        fn.restype, fn.argtypes = res, args


def library() -> ctypes.CDLL:
    """The loaded library (loaded and declared on first use)."""
    global _lib
    with _lock:
        if _lib is None:
            path = find_library()
            try:
                lib = ctypes.CDLL(path)
            except OSError as e:
                raise LibraryNotFound(f"{path}: cannot be loaded ({e})") from e
            _declare(lib)
            _lib = lib
        return _lib


def call(fn_name: str, *args) -> int:
    """Calls ``fn_name`` (an mk_err function); raises :class:`MpickaError`
    with ``mk_errmsg()`` when it fails."""
    lib = library()
    rc = getattr(lib, fn_name)(*args)
    if rc != 0:
        msg = lib.mk_errmsg()
        code = _CODES[rc] if 0 <= rc < len(_CODES) else f"mk_err {rc}"
        text = msg.decode("utf-8", "replace") if msg else f"{fn_name} failed"
        raise MpickaError(text or f"{fn_name} failed ({code})", code)
    return rc


def take_bytes(buf: ctypes.c_void_p, n: int) -> bytes:
    """Copies a malloc'd buffer of the library into Python bytes and frees it."""
    try:
        return ctypes.string_at(buf, n) if n else b""
    finally:
        library().mk_session_free_bytes(buf)
