"""Programs the tests run in child processes: roles.py (pykring producers and
consumers) and the kern_*.c helpers of the kernel source tests."""
