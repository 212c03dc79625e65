import os
import platform
import shutil
import subprocess
import sys

from setuptools import setup
from setuptools.command.build_py import build_py

# Metadata lives in pyproject.toml; this file only hooks the cffi extension
# (pykring._kring, API mode) and, on Linux, the eBPF object of the kernel
# event source (pykring/bpf/kring_events.bpf.o) into the build.

ROOT = os.path.dirname(os.path.abspath(__file__))
BPF_SOURCE = os.path.join("csrc", "bpf", "kring_events.bpf.c")
BPF_OBJECT = os.path.join("pykring", "bpf", "kring_events.bpf.o")
BPF_PACKAGES = "clang llvm libbpf-dev bpftool libbpf1"
BPF_ARCH = {"x86_64": "x86", "amd64": "x86", "aarch64": "arm64", "arm64": "arm64",
            "ppc64le": "powerpc", "s390x": "s390", "riscv64": "riscv"}


def _note(msg):
    sys.stderr.write("pykring: %s\n" % msg)


def _tool(name):
    # bpftool lives in /usr/sbin on Debian, outside a normal user's PATH.
    return os.environ.get(name.upper()) or shutil.which(name) or shutil.which(name, path="/usr/sbin:/sbin")


def _remove(path):
    # No stale object from an earlier build: the loader then says what is missing.
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass


def build_bpf_object(out, tmp):
    """Compile csrc/bpf/kring_events.bpf.c (CO-RE) into `out`. Returns False,
    with a note, when a tool is missing (an error with KRING_BPF_REQUIRED=1).
    With KRING_WERROR=1 warnings are errors, and so is a failed compile."""
    required = os.environ.get("KRING_BPF_REQUIRED") == "1"
    werror = os.environ.get("KRING_WERROR") == "1"
    clang, bpftool = _tool("clang"), _tool("bpftool")
    vmlinux_h = os.environ.get("KRING_VMLINUX_H")   # a pre-generated vmlinux.h ("or an equivalent")
    btf = "/sys/kernel/btf/vmlinux"
    missing = []
    if not clang:
        missing.append("clang")
    if not vmlinux_h and not bpftool:
        missing.append("bpftool")
    if not os.path.exists("/usr/include/bpf/bpf_helpers.h"):
        missing.append("libbpf-dev (bpf/bpf_helpers.h)")
    if not vmlinux_h and not os.path.exists(btf):
        missing.append("kernel BTF (%s)" % btf)
    arch = BPF_ARCH.get(platform.machine().lower())
    if not arch:
        missing.append("a supported architecture (not %s)" % platform.machine())
    if missing:
        msg = ("not building the eBPF object (missing: %s); pykring.kernel() will not work on "
               "Linux until pykring is reinstalled with the Debian packages %s"
               % (", ".join(missing), BPF_PACKAGES))
        if required:
            raise RuntimeError(msg)
        _note(msg)
        _remove(out)
        return False
    os.makedirs(tmp, exist_ok=True)
    os.makedirs(os.path.dirname(out), exist_ok=True)
    try:
        if not vmlinux_h:
            vmlinux_h = os.path.join(tmp, "vmlinux.h")
            with open(vmlinux_h + ".tmp", "wb") as f:
                subprocess.run([bpftool, "btf", "dump", "file", btf, "format", "c"], stdout=f, check=True)
            os.replace(vmlinux_h + ".tmp", vmlinux_h)
        cmd = [clang, "-O2", "-g", "-target", "bpf", "-mcpu=v3", "-D__TARGET_ARCH_%s" % arch,
               "-Wall", "-Wextra", "-Wno-unused-parameter", "-Wno-missing-field-initializers",
               "-I", os.path.dirname(vmlinux_h), "-I", os.path.join(ROOT, "include")]
        if werror:
            cmd.append("-Werror")
        cmd += ["-c", os.path.join(ROOT, BPF_SOURCE), "-o", out + ".tmp"]
        subprocess.run(cmd, check=True)
        # Drop the DWARF (most of the file); .BTF and .BTF.ext, which libbpf needs, stay.
        strip = _tool("llvm-strip")
        if strip:
            subprocess.run([strip, "-g", out + ".tmp"], check=True)
        os.replace(out + ".tmp", out)
    except (OSError, subprocess.CalledProcessError) as exc:
        if required or werror:
            raise
        _note("building the eBPF object failed (%s); pykring.kernel() will not work" % exc)
        _remove(out)
        return False
    return True


class build_py_bpf(build_py):
    """build_py that also compiles the eBPF object on Linux: into the source
    tree for editable installs (where the package is imported from), into
    the build directory otherwise."""

    def run(self):
        super().run()
        if not sys.platform.startswith("linux"):
            return
        if getattr(self, "editable_mode", False):
            out = os.path.join(ROOT, BPF_OBJECT)
        else:
            out = os.path.join(self.build_lib, BPF_OBJECT)
        tmp = os.path.join(self.get_finalized_command("build").build_temp, "bpf")
        build_bpf_object(out, tmp)

    def get_outputs(self, include_bytecode=True):
        outputs = super().get_outputs(include_bytecode)
        obj = os.path.join(self.build_lib, BPF_OBJECT)
        if not getattr(self, "editable_mode", False) and os.path.exists(obj):
            outputs.append(obj)
        return outputs


setup(
    cffi_modules=["pykring/_build.py:ffibuilder"],
    cmdclass={"build_py": build_py_bpf},
)
