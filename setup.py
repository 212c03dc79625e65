import importlib.util
import os
import platform
import subprocess
import sys
import sysconfig
import warnings

from setuptools import setup
from setuptools.command.build_py import build_py

# Metadata lives in pyproject.toml; this file only hooks the cffi extension
# (pykring._kring, API mode) and, on Linux, the eBPF object of the kernel
# event source (pykring/bpf/kring_events.bpf.o) into the build.

ROOT = os.path.dirname(os.path.abspath(__file__))
# The units of the eBPF object, each compiled alone, then linked into one
# (csrc/bpf/kring_events.bpf.c says what each holds).
BPF_SOURCES = [os.path.join("csrc", "bpf", name) for name in
               ("kring_events.bpf.c", "kring_process.bpf.c", "kring_exec_fail.bpf.c", "kring_image.bpf.c")]
BPF_OBJECT = os.path.join("pykring", "bpf", "kring_events.bpf.o")


def _load(name, path):
    # By path: importing pykring needs the extension this build makes.
    spec = importlib.util.spec_from_file_location(name, os.path.join(ROOT, path))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


bpf_build = _load("pykring_build_bpf", os.path.join("pykring", "_build_bpf.py"))


def _note(msg):
    sys.stderr.write("pykring: %s\n" % msg)


def _warn(msg):
    """Say `msg` where the user of a plain ``pip install .`` sees it.

    pip captures a build's stdout and stderr and shows them only when the
    build fails or with -v, so the banner on stderr reaches build logs,
    ``pip -v`` and ``python -m build`` only. Two channels reach further:
    - a Python warning: frontends whose hook runner forwards the backend's
      warnings (pip 26 does) show it; pip, for a local directory, at
      WARNING level, so on the console;
    - the controlling terminal (/dev/tty), when stderr is not one: the
      build stays in the frontend's session, so this reaches the terminal
      of a pip that hides the output, whatever its version. Only from the
      foreground process group: a background job writing to a terminal
      with ``stty tostop`` would be stopped.
    Without a terminal (CI, a Dockerfile) and with an older pip the banner is
    in the build log only; pykring.kernel() then raises with the same advice."""
    bar = "*" * 78
    text = "\n%s\nWARNING (pykring): %s\n%s\n\n" % (bar, msg, bar)
    sys.stderr.write(text)
    sys.stderr.flush()
    warnings.warn("pykring: " + msg, UserWarning, stacklevel=2)
    if sys.stderr.isatty() or not hasattr(os, "tcgetpgrp"):
        return
    try:
        fd = os.open("/dev/tty", os.O_WRONLY | os.O_NOCTTY)
    except OSError:
        return                      # no controlling terminal
    try:
        if os.tcgetpgrp(fd) == os.getpgrp():
            os.write(fd, text.encode())
    except OSError:
        pass
    finally:
        os.close(fd)


def _remove(path):
    # No stale object from an earlier build: the loader then says what is missing.
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass


def build_bpf_object(out, tmp):
    """Compile the units in BPF_SOURCES (CO-RE) and link them into `out`. Returns False,
    with a note, when a tool is missing (an error with KRING_BPF_REQUIRED=1).
    With KRING_WERROR=1 warnings are errors, and so is a failed compile."""
    required = os.environ.get("KRING_BPF_REQUIRED") == "1"
    werror = os.environ.get("KRING_WERROR") == "1"
    vmlinux_h = os.environ.get("KRING_VMLINUX_H")   # a pre-generated vmlinux.h ("or an equivalent")
    missing = bpf_build.missing(vmlinux_h, link=True)
    if missing:
        msg = ("not building the eBPF object (missing: %s), so pykring.kernel() will raise. "
               "For kernel events: apt-get install %s, then repeat this install with "
               "--force-reinstall --no-deps --no-cache-dir (without --no-cache-dir pip may reuse the wheel built now)"
               % (", ".join(missing), bpf_build.DEBIAN_PACKAGES))
        if required:
            raise RuntimeError(msg)
        _warn("kernel events will be unavailable: " + msg)
        _remove(out)
        return False
    os.makedirs(os.path.dirname(out), exist_ok=True)
    extra = ["-mcpu=v3", "-Wextra", "-Wno-unused-parameter", "-Wno-missing-field-initializers"]
    if werror:
        extra.append("-Werror")
    try:
        if not vmlinux_h:
            vmlinux_h = bpf_build.dump_vmlinux_h(tmp)
        units = []
        os.makedirs(os.path.join(tmp, "units"), exist_ok=True)
        for source in BPF_SOURCES:
            # Not named like the object: tests/mutants.py looks for the one kring_events.bpf.o.
            unit = os.path.join(tmp, "units", os.path.basename(source).replace(".bpf.c", ".o"))
            bpf_build.compile_object(os.path.join(ROOT, source), unit, vmlinux_h, extra,
                                     include_dirs=[os.path.join(ROOT, "include")])
            units.append(unit)
        bpf_build.link_objects(units, out, strip=True)
    except (OSError, subprocess.CalledProcessError) as exc:
        if required or werror:
            raise
        _warn("kernel events will be unavailable: building the eBPF object failed (%s); "
              "pykring.kernel() will not work" % exc)
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


def _limited_api():
    """The wheel's abi3 tag: cffi builds the extension against the stable
    ABI (Py_LIMITED_API) on CPython, so one wheel serves every CPython from
    the lowest supported one (3.9). Not on other interpreters, nor on
    free-threaded builds, which have no stable ABI."""
    if platform.python_implementation() != "CPython" or sysconfig.get_config_var("Py_GIL_DISABLED"):
        return {}
    return {"bdist_wheel": {"py_limited_api": "cp39"}}


setup(
    cffi_modules=["pykring/_build.py:ffibuilder"],
    cmdclass={"build_py": build_py_bpf},
    options=_limited_api(),
)
