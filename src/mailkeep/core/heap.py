"""A heap that gives memory back after a long import. glibc's malloc raises its mmap threshold
each time a large block it had mapped on its own is freed, so that later blocks of that size
(a batch's bytes, the samples a compression dictionary is trained on) come from the heap,
which cannot shrink past the highest block still in use. Over the linux-mips corpus the
importer's RSS grew from 89 to 143 MB so; with the threshold held where glibc starts it, the
whole process tree's peak fell by about 25 MB (bench/README.md, vs_mu.py)."""

from __future__ import annotations

import os

MMAP_THRESHOLD = 128 << 10  # glibc's own starting value, held
M_MMAP_THRESHOLD = -3  # mallopt's parameter (malloc.h)


def hold_mmap_threshold() -> None:
    """Hold the threshold in this process (glibc only: elsewhere nothing changes) and in the
    processes started from it after this (the workers: glibc reads MALLOC_MMAP_THRESHOLD_ as
    a process starts)."""
    os.environ.setdefault("MALLOC_MMAP_THRESHOLD_", str(MMAP_THRESHOLD))
    import ctypes
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):
        return  # not glibc (musl, macOS): their allocators do not do this
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    mallopt.restype = ctypes.c_int
    mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD)
