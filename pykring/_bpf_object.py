"""The compiled eBPF programs of the Linux kernel event source: where the
object is (:func:`object_path`, ``KRING_BPF_OBJECT`` overrides), and the
command that rebuilds this installation with it (:func:`reinstall_command`)
when it was built without clang and bpftool."""
import json
import os
import shlex
import sys
import urllib.parse

from . import errors
from ._libbpf import DEBIAN_PACKAGES

#: The compiled programs, next to this module (KRING_BPF_OBJECT overrides).
OBJECT_PATH = os.path.join(os.path.dirname(os.path.abspath(__file__)), "bpf", "kring_events.bpf.o")


def object_path() -> str:
    """The compiled eBPF object, or a KringError that says how to get it."""
    path = os.environ.get("KRING_BPF_OBJECT") or OBJECT_PATH
    if not os.path.isfile(path):
        raise errors.KringError(
            "the eBPF object of the Linux kernel event source is missing (%s): it is compiled "
            "when pykring is installed on Linux with clang and bpftool available, and this "
            "installation was built without them. Install the Debian packages (apt-get install %s), "
            "then rebuild pykring: %s" % (path, DEBIAN_PACKAGES, reinstall_command()))
    return path


def reinstall_command() -> str:
    """The command that builds this installation of pykring again, from what
    pip recorded of where it came from (direct_url.json, PEP 610): the same
    directory, archive or repository, or the index. Never a cached wheel
    (that would be the one built without the eBPF object)."""
    pip = "%s -m pip install" % shlex.quote(sys.executable)
    direct = None
    try:
        from importlib.metadata import distributions

        # The first installed one on sys.path (an installer recorded itself
        # in it): a checkout's pykring.egg-info is build metadata, no install.
        for dist in distributions(name="pykring"):
            if dist.read_text("INSTALLER"):
                text = dist.read_text("direct_url.json")
                direct = json.loads(text) if text else None
                break
    except (ImportError, ValueError, OSError):
        direct = None
    if not isinstance(direct, dict) or not isinstance(direct.get("url"), str):
        return "%s --force-reinstall --no-deps --no-cache-dir --no-binary pykring pykring" % pip
    url = direct["url"]
    where = urllib.parse.unquote(urllib.parse.urlsplit(url).path) if url.startswith("file://") else url
    dir_info = direct.get("dir_info")
    if isinstance(dir_info, dict):
        if dir_info.get("editable"):
            return "%s -e %s" % (pip, shlex.quote(where))
        return "%s --force-reinstall --no-deps --no-cache-dir %s" % (pip, shlex.quote(where))
    vcs = direct.get("vcs_info")
    if isinstance(vcs, dict) and vcs.get("vcs") and vcs.get("commit_id"):
        where = "%s+%s@%s" % (vcs["vcs"], url, vcs["commit_id"])
    return "%s --force-reinstall --no-deps --no-cache-dir %s" % (pip, shlex.quote(where))
