"""Compiling eBPF programs (CO-RE) with clang against a vmlinux.h of the
running kernel's BTF, and linking compiled units into one object with
libbpf's static linker (bpftool gen object): the kernel event source's
object when pykring is installed (setup.py) and the BPF benchmark's
synthetic producer (benchmarks/bpf.py).

Standard library only, and no imports from pykring: setup.py runs before
the extension exists, so it loads this file by path, as cffi's
cffi_modules loads _build.py. Everything else imports it as
``pykring._build_bpf``.
"""
import os
import platform
import shutil
import subprocess
from typing import List, Optional, Sequence

#: The kernel's BTF, from which bpftool dumps vmlinux.h.
BTF = "/sys/kernel/btf/vmlinux"
#: libbpf-dev's BPF-side header, which every program includes.
BPF_HELPERS_H = "/usr/include/bpf/bpf_helpers.h"
#: Debian packages that build (clang llvm libbpf-dev bpftool) and run (libbpf1) BPF programs.
DEBIAN_PACKAGES = "clang llvm libbpf-dev bpftool libbpf1"
#: clang's __TARGET_ARCH_<arch> (libbpf's bpf_tracing.h) by platform.machine(), lowercased.
ARCH = {"x86_64": "x86", "amd64": "x86", "aarch64": "arm64", "arm64": "arm64",
        "ppc64le": "powerpc", "s390x": "s390", "riscv64": "riscv"}
#: What every object is compiled with; callers add their warnings and includes.
BASE_FLAGS = ["-O2", "-g", "-target", "bpf", "-Wall"]


def tool(name: str) -> Optional[str]:
    """A build tool: $NAME (e.g. CLANG, BPFTOOL), else PATH, else /usr/sbin
    and /sbin (where Debian puts bpftool, outside a normal user's PATH)."""
    return os.environ.get(name.upper()) or shutil.which(name) or shutil.which(name, path="/usr/sbin:/sbin")


def target_arch() -> Optional[str]:
    """This machine's BPF target architecture, None if there is none."""
    return ARCH.get(platform.machine().lower())


def missing(vmlinux_h: Optional[str] = None, link: bool = False) -> List[str]:
    """What this machine lacks to compile a program (empty: nothing);
    with a ready `vmlinux_h`, neither bpftool nor the kernel's BTF, unless
    units are to be linked (`link`: bpftool is the linker)."""
    out = []
    if not tool("clang"):
        out.append("clang")
    if (link or not vmlinux_h) and not tool("bpftool"):
        out.append("bpftool")
    if not os.path.exists(BPF_HELPERS_H):
        out.append("libbpf-dev (bpf/bpf_helpers.h)")
    if not vmlinux_h and not os.path.exists(BTF):
        out.append("kernel BTF (%s)" % BTF)
    if not target_arch():
        out.append("a supported architecture (not %s)" % platform.machine())
    return out


def flags(extra: Sequence[str] = ()) -> List[str]:
    """clang's flags for this machine: BASE_FLAGS, the target architecture, `extra`."""
    return BASE_FLAGS + ["-D__TARGET_ARCH_%s" % target_arch()] + list(extra)


def dump_vmlinux_h(directory: str) -> str:
    """Write `directory`/vmlinux.h (all the kernel's types, from its BTF) and return its path."""
    os.makedirs(directory, exist_ok=True)
    path = os.path.join(directory, "vmlinux.h")
    with open(path + ".tmp", "wb") as f:
        subprocess.run([tool("bpftool") or "bpftool", "btf", "dump", "file", BTF, "format", "c"],
                       stdout=f, check=True)
    os.replace(path + ".tmp", path)
    return path


def compile_object(source: str, out: str, vmlinux_h: str, extra_flags: Sequence[str] = (),
                   include_dirs: Sequence[str] = (), strip: bool = False) -> None:
    """Compile `source` into `out` (written whole or not at all). With
    `strip`, llvm-strip (where there is one) drops the DWARF, most of the
    file; .BTF and .BTF.ext, which libbpf needs, stay."""
    cmd = [tool("clang") or "clang"] + flags(extra_flags) + ["-I", os.path.dirname(vmlinux_h)]
    for d in include_dirs:
        cmd += ["-I", d]
    cmd += ["-c", source, "-o", out + ".tmp"]
    subprocess.run(cmd, check=True)
    _strip_and_replace(out, strip)


def link_objects(objects: Sequence[str], out: str, strip: bool = False) -> None:
    """Link the compiled units `objects` into `out` (written whole or not at
    all) with libbpf's static linker, ``bpftool gen object``: one object
    whose maps and globals are each defined in one unit and declared
    ``extern`` in the others. `strip` as in compile_object()."""
    subprocess.run([tool("bpftool") or "bpftool", "gen", "object", out + ".tmp", *objects], check=True)
    _strip_and_replace(out, strip)


def _strip_and_replace(out: str, strip: bool) -> None:
    # out.tmp becomes out, without its DWARF when `strip` (and llvm-strip is there).
    strip_tool = tool("llvm-strip") if strip else None
    if strip_tool:
        subprocess.run([strip_tool, "-g", out + ".tmp"], check=True)
    os.replace(out + ".tmp", out)
