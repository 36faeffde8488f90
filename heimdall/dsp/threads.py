"""Native thread pools (OpenBLAS/OpenMP) of numpy and scipy.

Worker processes already fill the cores one each; a BLAS pool per process on top of that makes
its threads spin against each other's (measured here: 2 processes ran 3× slower each).
"""

from __future__ import annotations

from threadpoolctl import threadpool_limits


def limit_native_threads(threads: int = 1) -> None:
    """Cap every native BLAS/OpenMP pool of this process at ``threads``."""
    threadpool_limits(limits=threads)
