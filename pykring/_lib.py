"""Loads the compiled extension, refuses a stale build, maps C codes to exceptions."""
import errno
import os
import sys
from typing import Any, Dict, NoReturn, Optional, Type

from . import errors
from ._version import __version__

try:
    from ._kring import ffi, lib
except ImportError as exc:  # pragma: no cover - depends on the install
    raise ImportError(
        "pykring's C extension (pykring._kring) is not built: install the package "
        "with 'pip install .' (or 'pip install -e .') from the source tree; it needs "
        "a C compiler and the Python headers. (%s)" % exc
    ) from exc

_built = ffi.string(lib.kring_pkg_version()).decode()
if _built != __version__:
    raise errors.VersionMismatchError(
        "pykring._kring was built for pykring %s but this is pykring %s: "
        "rebuild it with 'pip install .' (or 'pip install -e .')" % (_built, __version__)
    )

_CLASSES: Dict[int, Type[errors.KringError]] = {
    lib.KRING_E_INVAL: errors.KringError,
    lib.KRING_E_NOMEM: errors.KringError,
    lib.KRING_E_OS: errors.KringOSError,
    lib.KRING_E_NOTFOUND: errors.RingNotFoundError,
    lib.KRING_E_PERM: errors.KringPermissionError,
    lib.KRING_E_VERSION: errors.VersionMismatchError,
    lib.KRING_E_CORRUPT: errors.RingCorruptError,
    lib.KRING_E_CLOSED: errors.RingClosedError,
    lib.KRING_E_TIMEOUT: errors.RingTimeoutError,
    lib.KRING_E_BUSY: errors.RingBusyError,
    lib.KRING_E_EXISTS: errors.RingExistsError,
    lib.KRING_E_BROKEN: errors.RingBrokenError,
    lib.KRING_E_TOOBIG: errors.RecordTooBigError,
}

#: Codes a failed system call can give (kring_plat_from_errno).
_OS_CODES = (lib.KRING_E_OS, lib.KRING_E_NOTFOUND, lib.KRING_E_PERM, lib.KRING_E_EXISTS, lib.KRING_E_NOMEM,
             lib.KRING_E_BUSY)

_HINTS = {
    lib.KRING_E_NOTFOUND: "create it first (pykring.create) or check the name",
    lib.KRING_E_PERM: "check the file's owner and mode, or run as its owner",
    lib.KRING_E_VERSION: "the file is not a pykring ring or was made by an incompatible version",
    lib.KRING_E_BUSY: "one consumer and one producer at a time: close the other one first",
    lib.KRING_E_EXISTS: "attach to it, or pass replace=True to create a new one",
    lib.KRING_E_BROKEN: "the consumer page holds a nonsense position: recreate the ring",
}


def strerror(code: int) -> str:
    return ffi.string(lib.kring_strerror(code)).decode()


def _os_hint(err: int, code: int, path: Optional[str]) -> Optional[str]:
    """What to do about a failed system call, where there is something to say."""
    if err == errno.ENOENT and path:
        parent = os.path.dirname(path)
        if parent and not os.path.isdir(parent):
            return "the directory %s does not exist" % parent
        if code == lib.KRING_E_NOTFOUND:
            return "no such ring: create it first (pykring.create) or check the name"
    if err == errno.ELOOP:
        return ("it is a symbolic link, and ring files are opened without following links (a "
                "name in a shared directory may point anywhere): name the ring's own file")
    if err == errno.ENOSPC:
        return "the filesystem is full: free space there, or make the ring smaller"
    if err in (errno.EMFILE, errno.ENFILE):
        return "too many open files: close rings you no longer use, or raise RLIMIT_NOFILE"
    if err in (errno.EACCES, errno.EPERM):
        return "check the file's owner and mode, or run as its owner"
    return None


def raise_for(code: int, what: str, os_error: int = 0, corrupt: Optional[Any] = None, *,
              m: Optional[Any] = None, path: Optional[str] = None, detail: Optional[str] = None,
              problem: Optional[str] = None, offset: Optional[int] = None,
              written: int = 0) -> NoReturn:
    """Raise the exception for C status `code`; `what` names the operation.

    The message is "what: <the code's text>", with the place of a corruption
    (from `corrupt`, a consumer's err_* fields) or a hint added. A failed
    system call (an errno in `os_error`, or in ``m.os_error`` of the mapping
    `m`, with the call's name from ``m.os_call``) raises the OSError class of
    its errno, ``errno``, ``strerror`` and ``filename`` (`path`) set.
    ``detail`` says what happened instead of the code's text (no hint then);
    ``problem`` and ``offset`` fill in a RingCorruptError found without
    `corrupt`; ``written``: records a write had written (the exception's
    ``written``).
    """
    call = None
    if m is not None:
        os_error = os_error or int(m.os_error)
        if m.os_call != ffi.NULL:
            call = ffi.string(m.os_call).decode()
    if os_error and detail is None and code in _OS_CODES:
        reason = os.strerror(os_error)
        msg = "%s: %s failed: %s" % (what, call or "a system call", reason)
        hint = _os_hint(os_error, code, path)
        if hint:
            msg += "; " + hint
        raise errors.os_error(os_error, msg, path)
    cls = _CLASSES.get(code, errors.KringError)
    msg = "%s: %s" % (what, strerror(code) if detail is None else detail)
    if code == lib.KRING_E_CORRUPT:
        if corrupt is not None and problem is None:
            problem = ffi.string(lib.kring_corrupt_reason(int(corrupt.err_reason))).decode()
            msg += " at ring offset %d: %s (value %d)" % (corrupt.err_pos, problem, corrupt.err_value)
            raise errors.RingCorruptError(msg, offset=int(corrupt.err_pos), problem=problem,
                                          value=int(corrupt.err_value))
        raise errors.RingCorruptError(msg, offset=offset, problem=problem)
    if code == lib.KRING_E_TIMEOUT:
        raise errors.RingTimeoutError(msg, written=written)
    hint = _HINTS.get(code)
    if hint and detail is None:
        msg += "; " + hint
    exc = cls(msg)
    if written:
        setattr(exc, "written", written)
    raise exc


def check(code: int, what: str, os_error: int = 0, corrupt: Optional[Any] = None, *,
          m: Optional[Any] = None, path: Optional[str] = None) -> None:
    if code < 0:
        raise_for(code, what, os_error, corrupt, m=m, path=path)


def private_meta(m, what: str):
    """A private copy of a mapped ring's producer page (schemas are read
    from the copy: the shared page may change or vanish meanwhile)."""
    meta = ffi.new("struct kring_producer_page *")
    rc = lib.kring_copy_meta(ffi.addressof(m), meta)
    if rc == lib.KRING_E_CORRUPT:
        problem = ffi.string(lib.kring_corrupt_reason(lib.KRING_BAD_TRUNCATED)).decode()
        raise_for(rc, what, detail=problem, problem=problem)
    check(rc, what)
    return meta


def meta_problem(path: str) -> str:
    """Why the producer page of the ring file at `path` is invalid."""
    try:
        with open(path, "rb") as f:
            size = os.fstat(f.fileno()).st_size
            f.seek(lib.KRING_PAGE_SIZE)
            raw = f.read(lib.KRING_PAGE_SIZE)
    except OSError as exc:
        return "unreadable (%s)" % exc
    if len(raw) < lib.KRING_PAGE_SIZE:
        return "the file is shorter than two pages"
    meta = ffi.new("struct kring_producer_page *")
    ffi.memmove(meta, raw, len(raw))
    why = lib.kring_meta_problem(meta, size)
    return ffi.string(why).decode() if why != ffi.NULL else "it changed while being checked"


def check_open(rc: int, c, what: str, path: Optional[str] = None) -> None:
    """Raise for the status of opening or creating a ring (consumer or producer)."""
    if rc == lib.KRING_E_CORRUPT and getattr(c, "err_reason", None) == lib.KRING_BAD_META:
        problem = meta_problem(path) if path and sys.platform != "win32" else "schema or sizes out of bounds"
        raise_for(rc, what, detail="the producer page does not describe a valid ring: %s" % problem,
                  problem=problem, offset=lib.KRING_PAGE_SIZE)
    if rc < 0:
        raise_for(rc, what, 0, c if hasattr(c, "err_reason") else None, m=c.m, path=path)
