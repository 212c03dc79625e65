"""pykring's benchmark harness.

Run from the repository root::

    python -m benchmarks drain --quick --json   # drain vs memcpy + end-to-end headline, one JSON object
    python -m benchmarks e2e                     # end to end: C and Python producer processes, RSS
    python -m benchmarks all                     # everything, then RESULTS.md's block, plots, README's figures
    python -m benchmarks readme                  # README's figures again from RESULTS.md's block
    python -m benchmarks --list

One module per benchmark (``drain.py``, ``e2e.py``), each with a
``run(report, quick, **options)`` function that adds its numbers to a
:class:`benchmarks._common.Report`. ``__main__.py`` holds the registry of
benchmarks and of the commands built from them. To add a peer (a
multiprocessing.Queue, faster-fifo or zmq pipe, ...): write
``benchmarks/<name>.py`` with ``run()``, add it to ``BENCHMARKS`` and to the
commands that should include it.

Progress goes to stderr; stdout carries the table, or with ``--json`` one
JSON object and nothing else. Results and the machine they came from:
``benchmarks/RESULTS.md``.
"""
