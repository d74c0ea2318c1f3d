"""CPU threads for small work: one thread where threads only wait on each other.

`one_thread` is a context manager and a decorator (torch's thread count is restored after)."""
from __future__ import annotations

from contextlib import contextmanager

import torch


@contextmanager
def one_thread():
    """Run torch's CPU kernels on one thread inside the block (restored after). Small work (a 100 × 100 eigh,
    a forward pass on two codes) gains nothing from threads, and on a machine whose cores are busy with other
    work their threads wait on each other at every operation, many times slower than one thread
    (benchmarks/README.md)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)
