"""The container, Kubernetes pod and systemd unit a process runs in, read
from its cgroup (v2) path as each runtime names the cgroups it makes.

    >>> container_context("/system.slice/docker-" + "ab" * 32 + ".scope")["container_runtime"]
    'docker'

The runtimes' names, with the systemd cgroup driver and with cgroupfs:

- Docker: ``docker-<64 hex>.scope``; ``/docker/<64 hex>``
- containerd through CRI (Kubernetes): ``cri-containerd-<64 hex>.scope``;
  ``/kubepods/<class>/pod<uid>/<64 hex>``
- CRI-O: ``crio-<64 hex>.scope`` (``crio-conmon-...``: its monitor, not the container)
- Podman: ``libpod-<64 hex>.scope`` (``libpod-conmon-...``: its monitor);
  ``/libpod_parent/libpod-<64 hex>``
- LXC: ``/lxc.payload.<name>`` (LXC 4 and later), ``/lxc/<name>``
- a Kubernetes pod: ``kubepods-<class>-pod<uid with _ for ->.slice``; ``pod<uid>``

The innermost match wins (a container in a pod names both). Nothing is
looked up: the path alone decides, so a replay elsewhere gives the same.
"""
import functools
import re
from typing import Dict, Optional

_HEX64 = r"([0-9a-f]{64})"
#: (pattern of one path component, runtime): the container id is group 1.
_CONTAINERS = (
    (re.compile(r"docker-%s\.scope" % _HEX64), "docker"),
    (re.compile(r"cri-containerd-%s\.scope" % _HEX64), "containerd"),
    (re.compile(r"crio-%s\.scope" % _HEX64), "cri-o"),
    (re.compile(r"libpod-%s\.scope" % _HEX64), "podman"),
    (re.compile(r"libpod-%s" % _HEX64), "podman"),
    (re.compile(r"lxc\.payload\.(.+)"), "lxc"),
)
_UUID = r"([0-9a-f]{8}[-_][0-9a-f]{4}[-_][0-9a-f]{4}[-_][0-9a-f]{4}[-_][0-9a-f]{12})"
_POD = re.compile(r"(?:kubepods(?:-[a-z]+)?-)?pod%s(?:\.slice)?" % _UUID)
_BARE_ID = re.compile(_HEX64)
_UNIT = re.compile(r".+\.(?:service|scope|socket|mount|swap)")

#: The keys container_context gives, each None when the path has none.
CONTAINER_KEYS = ("container_id", "container_runtime", "pod_uid", "unit")


@functools.lru_cache(maxsize=4096)
def _context(path: str) -> tuple:
    cid = runtime = pod = unit = None
    parts = [p for p in path.split("/") if p]
    for i, part in enumerate(parts):
        up = parts[i - 1] if i else ""
        for pattern, name in _CONTAINERS:
            m = pattern.fullmatch(part)
            if m:
                cid, runtime = m.group(1), name
                break
        else:
            m = _POD.fullmatch(part)
            if m and any(p.startswith("kubepods") for p in parts[:i + 1]):
                pod = m.group(1).replace("_", "-")
            elif _BARE_ID.fullmatch(part) and up == "docker" and i == 1:
                cid, runtime = part, "docker"                     # cgroupfs driver
            elif _BARE_ID.fullmatch(part) and _POD.fullmatch(up):
                cid, runtime = part, "kubernetes"                 # cgroupfs driver: the CRI is not named
            elif up == "lxc" and i == 1:
                cid, runtime = part, "lxc"
        if _UNIT.fullmatch(part):
            unit = part
    return cid, runtime, pod, unit


def container_context(path: Optional[str]) -> Dict[str, Optional[str]]:
    """container_id, container_runtime (docker, containerd, cri-o, podman,
    lxc; kubernetes for a pod's container named by id alone), pod_uid and
    unit (the innermost systemd unit: x.service, session-3.scope, ...) of a
    cgroup v2 path; each None when the path names none."""
    if not path:
        return dict.fromkeys(CONTAINER_KEYS)
    return dict(zip(CONTAINER_KEYS, _context(path)))
