"""A long-running server's native memory, kept bounded (glibc; elsewhere these calls do nothing).

glibc's malloc gives each thread that allocates an arena of its own (up to 8 per core) and keeps the
pages a thread freed in its arena for later. The server runs each batch in a pool thread, each batch
of a new shape, so its resident memory creeps up by tens of MiB that it never uses again, whatever
the embedding cache's cap. No Python library wraps the two calls that bound it: `mallopt`'s arena
limit, set before the pool's threads start, and `malloc_trim`, which hands freed pages back to the
system (it walks the heap, so at most once a second).
"""

from __future__ import annotations

import ctypes
import sys
import time

M_ARENA_MAX = -8  # glibc's malloc.h
TRIM_EVERY_S = 1.0

_libc = None
if sys.platform.startswith("linux"):
    try:
        # The running program's own symbols, libc's among them: ctypes.util.find_library would start
        # ldconfig in a subprocess at import time.
        _libc = ctypes.CDLL(None)
        _libc.malloc_trim, _libc.mallopt  # noqa: B018 - musl has neither: then do nothing
    except (OSError, AttributeError):
        _libc = None
_last_trim = 0.0


def limit_arenas(arenas: int = 2) -> bool:
    """At most `arenas` malloc arenas for the threads started from now on; True when glibc took it."""
    return bool(_libc and _libc.mallopt(M_ARENA_MAX, arenas) == 1)


def trim() -> None:
    """Give freed heap pages back to the system, at most once every `TRIM_EVERY_S` seconds."""
    global _last_trim
    now = time.monotonic()
    if _libc and now - _last_trim >= TRIM_EVERY_S:
        _last_trim = now
        _libc.malloc_trim(0)
