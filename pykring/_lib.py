"""Loads the compiled extension, refuses a stale build, maps C codes to exceptions."""
import os
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
    lib.KRING_E_OS: errors.KringError,
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


def raise_for(code: int, what: str, os_error: int = 0, corrupt: Optional[Any] = None, *,
              detail: Optional[str] = None, problem: Optional[str] = None, offset: Optional[int] = None,
              written: int = 0) -> NoReturn:
    """Raise the exception for C status `code`; `what` names the operation.

    The message is "what: <the code's text>", with the OS error, the place
    of a corruption (from `corrupt`, a consumer's err_* fields) or a hint
    added. ``detail`` says what happened instead of the code's text (no
    hint then); ``problem`` and ``offset`` fill in a RingCorruptError found
    without `corrupt`; ``written``: records written before a timeout
    (RingTimeoutError.written).
    """
    cls = _CLASSES.get(code, errors.KringError)
    msg = "%s: %s" % (what, strerror(code) if detail is None else detail)
    if code == lib.KRING_E_OS and os_error:
        msg += " (%s)" % os.strerror(os_error)
    if code == lib.KRING_E_CORRUPT:
        if corrupt is not None and problem is None:
            reason = int(corrupt.err_reason)
            problem = ffi.string(lib.kring_corrupt_reason(reason)).decode()
            msg += " at ring offset %d: %s (value %d)" % (corrupt.err_pos, problem, corrupt.err_value)
            raise errors.RingCorruptError(msg, offset=int(corrupt.err_pos), problem=problem,
                                          value=int(corrupt.err_value))
        raise errors.RingCorruptError(msg, offset=offset, problem=problem)
    if code == lib.KRING_E_TIMEOUT:
        raise errors.RingTimeoutError(msg, written=written)
    hint = _HINTS.get(code)
    if hint and detail is None:
        msg += "; " + hint
    raise cls(msg)


def check(code: int, what: str, os_error: int = 0, corrupt: Optional[Any] = None) -> None:
    if code < 0:
        raise_for(code, what, os_error, corrupt)
