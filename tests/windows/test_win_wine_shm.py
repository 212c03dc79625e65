"""A user-mode ring under Wine: producer and consumer are two Wine processes
(tests/windows/shm_ring.c) over a named file mapping and named events
(csrc/kring_win.c), 10^6 records with the blocking producer: zero loss,
every record checked, the ring closed cleanly at the end; then the same with
the zero-copy paths (kring_reserve and kring_publish, kring_view), records
written and checked in place."""
import re
import threading
import uuid

import pytest

from .winharness import CSRC_WIN, HERE, mingw_build

COUNT = 1_000_000


@pytest.mark.parametrize("how", ["", "-in-place"], ids=["copy", "in-place"])
def test_two_processes_one_million_records(wine, win_build_dir, how):
    exe = mingw_build(win_build_dir / "shm_ring.exe", [HERE / "shm_ring.c", *CSRC_WIN])
    name = "kring-test-%s" % uuid.uuid4().hex[:12]
    consumer = wine.popen([exe, "consumer" + how, name, COUNT])
    try:
        # The consumer creates the ring (it exists while a handle is open)
        # and says READY; read that line without blocking forever.
        ready = []
        reader = threading.Thread(target=lambda: ready.append(consumer.stdout.readline()), daemon=True)
        reader.start()
        reader.join(60)
        assert ready and ready[0].strip() == "READY", "consumer did not start: %r" % ready

        producer = wine.run([exe, "producer" + how, name, COUNT], timeout=120)
        out, err = consumer.communicate(timeout=120)
    finally:
        if consumer.poll() is None:
            consumer.kill()
            consumer.communicate()

    assert producer.returncode == 0, producer.stdout + producer.stderr
    assert re.search(r"^written=%d dropped=0 wakeups=\d+$" % COUNT, producer.stdout, re.M), producer.stdout
    assert consumer.returncode == 0, out + err
    m = re.search(r"records=(\d+) gaps=(-?\d+) bad=(\d+) written=(\d+) dropped=(\d+) waits=(\d+) "
                  r"producer_alive_seen=(\d) closed=(\d)", out)
    assert m, out
    records, gaps, bad, written, dropped, waits, alive, closed = map(int, m.groups())
    assert (records, gaps, bad, written, dropped, closed) == (COUNT, 0, 0, COUNT, 0, 1), out
    # kring_producer_gone() (kring_plat_role_held on Windows) saw the live producer.
    assert alive == 1, out
    assert waits >= 1
