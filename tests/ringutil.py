"""Small helpers shared by the test files: ring names and their files."""
import os
import uuid


def shm(name):
    return os.path.join("/dev/shm", name)


def unique_ring_name(tag):
    """A ring name no other test or process uses (as conftest's ring_name fixture)."""
    return "pykring-%s-%d-%s" % (tag, os.getpid(), uuid.uuid4().hex)


def remove_ring(name):
    try:
        os.unlink(shm(name))
    except FileNotFoundError:
        pass
