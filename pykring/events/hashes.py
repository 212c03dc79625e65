"""sha256 of the files processes execute, computed off the drain path.

    hasher = ExecHasher()
    jobs = hasher.submit_batch(ring.read_batch())   # opens the files now, hashes in a worker thread
    jobs[seq].result()          # {"sha256": hex, "hash_source": "exe"} or {"hash_error": why}

:meth:`ExecHasher.submit` is cheap: it opens ``/proc/PID/exe`` at once,
while the process may still run (so a memfd, a deleted or a replaced file
is hashed as it was executed), checks that the pid is still the process of
the event, and looks the file up by (device, inode, size, mtime, ctime): a
busy host hashes each binary once. Only a file not seen before is read, in
the worker thread. When the process is gone already the file is opened by
its path (``hash_source``: "path"), unless it was a memfd or deleted.

A hostile host cannot make it use unbounded memory, files or time: files
over ``max_size`` bytes are not read, at most ``max_pending`` files wait
open for the worker (more get ``hash_error``), and the cache is bounded.
"""
import collections
import hashlib
import os
import stat
import threading
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Dict, Optional, Tuple

from .context import exec_id_of

#: Files larger than this are not hashed (``hash_error`` says so).
MAX_SIZE = 256 << 20
#: The keys a hash result may have.
HASH_KEYS = ("sha256", "hash_source", "hash_error")
_CHUNK = 1 << 20


def _done(result: dict) -> "Future[dict]":
    f: "Future[dict]" = Future()
    f.set_result(result)
    return f


def _sha256(fd: int, size: int, key: Tuple[int, ...]) -> dict:
    """The file's sha256, read through `fd` (closed here)."""
    h = hashlib.sha256()
    with os.fdopen(fd, "rb", buffering=0, closefd=True) as f:
        left = size + 1                     # one byte more: a file that grew is caught
        while left > 0:
            chunk = f.read(min(_CHUNK, left))
            if not chunk:
                break
            h.update(chunk)
            left -= len(chunk)
        st = os.fstat(f.fileno())
    if left != 1 or _key(st) != key:
        return {"hash_error": "the file changed while it was read"}
    return {"sha256": h.hexdigest()}


def _key(st: os.stat_result) -> Tuple[int, ...]:
    return (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)


class ExecHasher:
    """sha256 of executed files in a worker thread, cached by file identity."""

    def __init__(self, max_size: int = MAX_SIZE, max_pending: int = 256, cache_size: int = 65536,
                 proc: str = "/proc"):
        self.max_size = max_size
        self.max_pending = max_pending
        self._cache_size = cache_size
        self._proc = proc
        self._cache: "collections.OrderedDict[Tuple[int, ...], dict]" = collections.OrderedDict()
        self._running: Dict[Tuple[int, ...], "Future[dict]"] = {}
        self._lock = threading.Lock()
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="pykring-hash")
        #: Files read and hashed; results given without reading (the cache,
        #: or a hash of the same file already under way).
        self.hashed = 0
        self.reused = 0

    def _open(self, pid: int, path: Optional[str], exec_id: Optional[str],
              by_path: bool) -> Tuple[Optional[int], str, Optional[str]]:
        """(fd, source, error) of the file process `pid` executes."""
        try:
            fd = os.open("%s/%d/exe" % (self._proc, pid), os.O_RDONLY | os.O_CLOEXEC)
        except OSError:
            fd = None
        if fd is not None:
            # The pid may have been reused, or the process may have executed
            # another program since: then the path is the event's file.
            same = exec_id is None or exec_id_of(pid, self._proc) == exec_id
            if same and path and by_path:
                try:
                    same = os.readlink("%s/%d/exe" % (self._proc, pid)) == path
                except OSError:
                    same = False
            if same:
                return fd, "exe", None
            os.close(fd)
        if not path or not by_path:
            return None, "", "the process exited before its file could be read, and it has no path to open"
        try:
            return os.open(path, os.O_RDONLY | os.O_CLOEXEC | os.O_NONBLOCK), "path", None
        except OSError as exc:
            return None, "", "cannot open %s: %s" % (path, exc.strerror)

    def submit(self, pid: int, path: Optional[str] = None, exec_id: Optional[str] = None,
               by_path: bool = True) -> "Future[dict]":
        """The sha256 of what process `pid` executes, as a Future of
        ``{"sha256": hex, "hash_source": "exe" or "path"}`` or
        ``{"hash_error": why}``. `path`: the event's path; `exec_id`: the
        event's process key (to tell a reused pid); `by_path`: False when
        the path cannot be opened for the same file (a memfd, a deleted or
        cut path)."""
        fd, source, error = self._open(pid, path, exec_id, by_path)
        if fd is None:
            return _done({"hash_error": error})
        try:
            st = os.fstat(fd)
            if not stat.S_ISREG(st.st_mode):
                raise ValueError("not a regular file")
            if st.st_size > self.max_size:
                raise ValueError("%d bytes, over the limit of %d" % (st.st_size, self.max_size))
        except (OSError, ValueError) as exc:
            os.close(fd)
            return _done({"hash_error": str(exc)})
        key = _key(st)
        with self._lock:
            hit = self._cache.get(key)
            if hit is not None:
                self._cache.move_to_end(key)
            running = self._running.get(key) if hit is None else None
            if hit is not None or running is not None:
                self.reused += 1
            full = hit is None and running is None and len(self._running) >= self.max_pending
            if hit is None and running is None and not full:
                job: "Future[dict]" = Future()
                self._running[key] = job
        if hit is not None or running is not None or full:
            os.close(fd)
            if full:
                return _done({"hash_error": "%d files already wait to be hashed" % self.max_pending})
            if hit is not None:
                return _done(dict(hit, hash_source=source))
            assert running is not None
            return _with_source(running, source)
        self._pool.submit(self._hash, job, fd, st.st_size, key)
        return _with_source(job, source)

    def submit_event(self, e: dict) -> "Future[dict]":
        """submit() for an exec event (a dict of events.event_dicts)."""
        return self.submit(e["pid"], e["path"], e.get("exec_id"),
                           by_path=not (e["memfd"] or e["deleted"] or e["path_truncated"]))

    def submit_batch(self, batch, boot: Optional[str] = None) -> Dict[int, "Future[dict]"]:
        """submit() for each exec of a kernel ring's Batch: {seq: Future}.
        Call it as soon as the batch is read: the processes may still run."""
        from .dicts import event_dicts

        return {e["seq"]: self.submit_event(e) for e in event_dicts(batch, boot)
                if e["type"] == "process_start" and e["exec"]}

    def _hash(self, job: "Future[dict]", fd: int, size: int, key: Tuple[int, ...]) -> None:
        try:
            result = _sha256(fd, size, key)
        except Exception as exc:        # noqa: BLE001 - the job must end, whatever failed
            result = {"hash_error": "cannot read the file: %s" % (getattr(exc, "strerror", None) or exc)}
        with self._lock:
            self._running.pop(key, None)
            if "sha256" in result:
                self.hashed += 1
                self._cache[key] = result
                while len(self._cache) > self._cache_size:
                    self._cache.popitem(last=False)
        job.set_result(result)

    def summary(self) -> str:
        return "sha256 of %d files read, %d more from the cache" % (self.hashed, self.reused)

    def close(self) -> None:
        """Finish what was submitted, then stop the worker."""
        self._pool.shutdown(wait=True)


def _with_source(job: "Future[dict]", source: str) -> "Future[dict]":
    out: "Future[dict]" = Future()

    def copy(f: "Future[dict]") -> None:
        r = f.result()
        out.set_result(dict(r, hash_source=source) if "sha256" in r else r)

    job.add_done_callback(copy)
    return out
