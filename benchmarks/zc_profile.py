"""zc_profile: where the time of the zero-copy path goes, per block, between
two processes (what benchmarks/RESULTS.md's zero-copy section quotes).

    python -m benchmarks.zc_profile SIZE [RING_BYTES] [RECORDS]

The producer (a forked child) times each block's ``reserve`` enter, the
numpy fill of the bodies and the exit (stamp and publish); the consumer
times each ``view`` enter (its wait included) and exit, and checks every
``seq``. Batches and ring as benchmarks/peers.py's zero-copy peer.
Measures; asserts nothing.
"""
import os
import sys
import time

import numpy as np

import pykring
from pykring._common import remove_ring, unique_ring_name

from .drain import body_dtype_for
from .e2e import batch_for


def main(argv) -> int:
    size = int(argv[0])
    cap = int(argv[1]) if len(argv) > 1 else pykring.DEFAULT_CAPACITY
    count = int(argv[2]) if len(argv) > 2 else (20_000_000 if size <= 64 else 2_000_000)
    span = size + 8
    batch = min(batch_for(size), cap // 4 // span)
    name = unique_ring_name("zc-profile")
    ring = pykring.create(name, cap, body_dtype_for(size))
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:
        prod = pykring.Producer(ring.path, block=True)
        body = np.zeros(batch, dtype=pykring.body_dtype(prod.dtype))["payload"]
        clock, enter, fill, leave = time.perf_counter, 0.0, 0.0, 0.0
        t00 = clock()
        for base in range(0, count, batch):
            k = min(batch, count - base)
            t0 = clock()
            block = prod.reserve(k)
            rows = block.__enter__()
            t1 = clock()
            rows["payload"] = body[:k]
            t2 = clock()
            block.__exit__(None, None, None)
            t3 = clock()
            enter, fill, leave = enter + t1 - t0, fill + t2 - t1, leave + t3 - t2
        total = clock() - t00
        prod.close()
        n = -(-count // batch)
        os.write(w, ("producer, per block of %d: reserve enter %.1f us, fill %.1f us, exit %.1f us; "
                     "%.2f ns per record in all\n" % (batch, enter / n * 1e6, fill / n * 1e6, leave / n * 1e6,
                                                     total / count * 1e9)).encode())
        os._exit(0)
    want = np.arange(cap // 4 // span + 1, dtype=np.uint64)
    equal = np.empty(len(want), dtype=bool)
    clock, got, views, enter, leave, bad = time.perf_counter, 0, 0, 0.0, 0.0, 0
    t00 = clock()
    while got < count:
        t0 = clock()
        with ring.view(timeout=1.0) as rows:
            t1 = clock()
            k = len(rows)
            if k:
                bad += not np.equal(rows["seq"], want[:k], out=equal[:k]).all()
                want += np.uint64(k)
                got, views = got + k, views + 1
            t2 = clock()
        enter, leave = enter + t1 - t0, leave + clock() - t2
    elapsed = clock() - t00
    os.waitpid(pid, 0)
    print(os.read(r, 4096).decode().strip())
    print("consumer: %.1f M records/s, %d views: view enter (its wait included) %.1f us, exit %.1f us per view; "
          "%d views out of order" % (count / elapsed / 1e6, views, enter / views * 1e6, leave / views * 1e6, bad))
    ring.close()
    remove_ring(name)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]) if sys.argv[1:] else (print(__doc__, file=sys.stderr), 2)[1])
