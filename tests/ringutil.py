"""Small helpers shared by the test files: ring names (pykring's own helper,
which the benchmarks use too) and the file behind a ring."""
from pykring._common import remove_ring, ring_path, unique_ring_name

__all__ = ["remove_ring", "shm", "unique_ring_name"]


def shm(name):
    """The file of the ring `name` (/dev/shm/<name>), which tests read and poke."""
    return ring_path(name)
