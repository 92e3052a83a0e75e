"""glibc's allocator, kept from holding on to memory the worker has freed.

A call leaves the heap fragmented (DTLS, SRTP, jitter buffers, a short-lived
decoder thread per receiver), and glibc keeps freed pages and gives threads
arenas of their own: over many calls the resident set creeps up although
nothing is alive any more. Where glibc is absent (musl, macOS) these do nothing.
"""
from __future__ import annotations

import ctypes
import ctypes.util
import os

M_ARENA_MAX = -8

try:
    _libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
    _mallopt, _malloc_trim = _libc.mallopt, _libc.malloc_trim
except (OSError, AttributeError):
    _mallopt = _malloc_trim = None


def limit_arenas(count: int = 2) -> None:
    """Like MALLOC_ARENA_MAX=count, unless the environment already says; call before threads start."""
    if _mallopt is not None and "MALLOC_ARENA_MAX" not in os.environ:
        _mallopt(M_ARENA_MAX, count)


def trim() -> None:
    """Give the free pages of every arena back to the system (a few ms)."""
    if _malloc_trim is not None:
        _malloc_trim(0)
