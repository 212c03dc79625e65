"""The cross-built kring.sys is a loadable Windows 10 driver image: a native
x64 PE with FORCE_INTEGRITY (without it PsSetCreateProcessNotifyRoutineEx
returns STATUS_ACCESS_DENIED), ASLR and NX, a valid checksum (Windows checks
it for drivers), no writable code, and only imports that ntoskrnl.exe/hal.dll
of Windows 10 1703 export (drv/imports-win10-1703.txt). Routines newer than
that are resolved at run time, never imported."""
import importlib.util
import struct
from pathlib import Path

import pytest

from .winharness import DRV

IMAGE_FILE_MACHINE_AMD64 = 0x8664
IMAGE_SUBSYSTEM_NATIVE = 1
DLLCHAR_HIGH_ENTROPY_VA = 0x0020
DLLCHAR_DYNAMIC_BASE = 0x0040
DLLCHAR_FORCE_INTEGRITY = 0x0080
DLLCHAR_NX_COMPAT = 0x0100
SCN_MEM_EXECUTE = 0x20000000
SCN_MEM_WRITE = 0x80000000


class PE:
    """Just enough of a PE32+ parser for these checks."""

    def __init__(self, path: Path):
        self.data = data = path.read_bytes()
        assert data[:2] == b"MZ"
        pe = struct.unpack_from("<I", data, 0x3C)[0]
        assert data[pe:pe + 4] == b"PE\0\0"
        (self.machine, nsections, _, self.symtab, self.nsyms, opt_size,
         self.characteristics) = struct.unpack_from("<HHIIIHH", data, pe + 4)
        opt = pe + 24
        self.checksum_offset = opt + 64
        self.magic = struct.unpack_from("<H", data, opt)[0]
        self.entry = struct.unpack_from("<I", data, opt + 16)[0]
        self.checksum = struct.unpack_from("<I", data, opt + 64)[0]
        self.subsystem, self.dll_characteristics = struct.unpack_from("<HH", data, opt + 68)
        self.subsystem_version = struct.unpack_from("<HH", data, opt + 48)
        ndirs = struct.unpack_from("<I", data, opt + 108)[0]
        self.dirs = [struct.unpack_from("<II", data, opt + 112 + 8 * i) for i in range(ndirs)]
        self.sections = []
        for i in range(nsections):
            off = opt + opt_size + 40 * i
            name = data[off:off + 8].rstrip(b"\0").decode()
            vsize, va, rawsize, rawptr = struct.unpack_from("<IIII", data, off + 8)
            flags = struct.unpack_from("<I", data, off + 36)[0]
            self.sections.append((name, va, max(vsize, rawsize), rawptr, flags))

    def functions(self):
        """{name: rva} of the COFF symbols typed "function" (what the
        linker's symbol map lists as functions: the driver's own code, not
        the import thunks)."""
        out = {}
        strtab = self.symtab + 18 * self.nsyms
        i = 0
        while i < self.nsyms:
            off = self.symtab + 18 * i
            raw = self.data[off:off + 8]
            if raw[:4] == b"\0\0\0\0":
                start = strtab + struct.unpack_from("<I", raw, 4)[0]
                raw = self.data[start:self.data.index(b"\0", start)]
            value, section, typ, _, naux = struct.unpack_from("<IhHBB", self.data, off + 8)
            if typ == 0x20 and section > 0:        # DT_FCN, defined in a section
                out[raw.rstrip(b"\0").decode()] = self.sections[section - 1][1] + value
            i += 1 + naux
        return out

    def runtime_functions(self):
        """[(begin, end, unwind)] RVAs of the .pdata (exception directory) entries."""
        rva, size = self.dirs[3]
        if not size:
            return []
        off = self.offset(rva)
        return [struct.unpack_from("<III", self.data, off + 12 * i) for i in range(size // 12)]

    def offset(self, rva: int) -> int:
        for _, va, size, rawptr, _ in self.sections:
            if va <= rva < va + size:
                return rawptr + rva - va
        raise ValueError("rva 0x%x is in no section" % rva)

    def cstr(self, rva: int) -> str:
        off = self.offset(rva)
        return self.data[off:self.data.index(b"\0", off)].decode("ascii")

    def imports(self):
        """[(dll, name or None for an ordinal import)]"""
        rva, size = self.dirs[1]
        out = []
        desc = self.offset(rva)
        while True:
            lookup, _, _, name_rva, iat = struct.unpack_from("<IIIII", self.data, desc)
            if not (lookup or name_rva or iat):
                break
            dll = self.cstr(name_rva).lower()
            thunk = self.offset(lookup or iat)
            while True:
                entry = struct.unpack_from("<Q", self.data, thunk)[0]
                if entry == 0:
                    break
                out.append((dll, None if entry >> 63 else self.cstr((entry & 0x7FFFFFFF) + 2)))
                thunk += 8
            desc += 20
        return out


def _allowlist():
    allowed = set()
    for line in (DRV / "imports-win10-1703.txt").read_text().splitlines():
        line = line.split("#", 1)[0].split()
        if line:
            allowed.add((line[0].lower(), line[1]))
    return allowed


def _checksum_by_dwords(data: bytes, checksum_offset: int) -> int:
    """CheckSumMappedFile, computed another way than drv/pe_checksum.py: by
    32-bit words with end-around carry (as pefile does), folded to 16 bits."""
    data = data + b"\0" * (-len(data) % 4)
    total = 0
    for i in range(0, len(data), 4):
        if i == checksum_offset:
            continue
        total += struct.unpack_from("<I", data, i)[0]
        total = (total & 0xFFFFFFFF) + (total >> 32)
    total = (total & 0xFFFF) + (total >> 16)
    total = (total + (total >> 16)) & 0xFFFF
    return total


def _pe_checksum_module():
    spec = importlib.util.spec_from_file_location("pe_checksum", DRV / "pe_checksum.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


@pytest.fixture(scope="module", params=["release", "test"])
def image(request, built_drivers):
    return request.param, PE(built_drivers[request.param])


def test_native_x64_driver(image):
    _, pe = image
    assert pe.machine == IMAGE_FILE_MACHINE_AMD64 and pe.magic == 0x20B
    assert pe.subsystem == IMAGE_SUBSYSTEM_NATIVE
    assert pe.subsystem_version >= (6, 2)       # NonPagedPoolNx: Windows 8 and later
    # Linked as an image, as MSVC's /DRIVER does: EXECUTABLE_IMAGE and
    # LARGE_ADDRESS_AWARE, not a DLL (a DLL link is what gave it exports).
    assert pe.characteristics & 0x0022 == 0x0022
    assert pe.characteristics & 0x2000 == 0, "IMAGE_FILE_DLL"


def test_every_function_has_unwind_data(image):
    """Crash dumps, stack walks and exception dispatch through the driver's
    frames need a .pdata entry per function (the image once had one, for the
    only function with __try). Every function symbol starts an entry, and
    every entry's unwind info is version 1 and lies inside the image."""
    _, pe = image
    functions = pe.functions()
    assert len(functions) >= 25, sorted(functions)
    assert {"DriverEntry", "KRingRingWrite", "KRingRingRead", "KRingProcessNotify"} <= set(functions)
    entries = pe.runtime_functions()
    begins = {begin for begin, _, _ in entries}
    missing = sorted(name for name, rva in functions.items() if rva not in begins)
    assert not missing, "functions without a .pdata entry: %s" % missing
    for begin, end, unwind in entries:
        assert begin < end
        assert pe.data[pe.offset(unwind & ~1)] & 7 == 1, "UNWIND_INFO version"
    assert [e[0] for e in entries] == sorted(begins), ".pdata is sorted"


def test_no_export_table(image):
    """A driver exports nothing: no export directory (a DLL link exported
    every global symbol, 29 of them), no .edata section."""
    _, pe = image
    assert pe.dirs[0] == (0, 0), "export directory present: %r" % (pe.dirs[0],)
    assert ".edata" not in [s[0] for s in pe.sections]


def test_dll_characteristics(image):
    _, pe = image
    for flag, name in ((DLLCHAR_FORCE_INTEGRITY, "FORCE_INTEGRITY"), (DLLCHAR_DYNAMIC_BASE, "DYNAMIC_BASE"),
                       (DLLCHAR_NX_COMPAT, "NX_COMPAT"), (DLLCHAR_HIGH_ENTROPY_VA, "HIGH_ENTROPY_VA")):
        assert pe.dll_characteristics & flag, "%s not set in 0x%x" % (name, pe.dll_characteristics)
    assert pe.dirs[5][1] > 0, "no base relocations: the image could not move"


def test_checksum(image, built_drivers):
    name, pe = image
    size = len(built_drivers[name].read_bytes())
    assert pe.checksum != 0
    assert pe.checksum == _checksum_by_dwords(pe.data, pe.checksum_offset) + size
    assert pe.checksum == _pe_checksum_module().pe_checksum(pe.data, pe.checksum_offset)


def test_sections_are_not_writable_and_executable(image):
    _, pe = image
    for name, va, size, _, flags in pe.sections:
        assert not (flags & SCN_MEM_EXECUTE and flags & SCN_MEM_WRITE), name
    entry_sections = [s for s in pe.sections if s[1] <= pe.entry < s[1] + s[2]]
    assert entry_sections and entry_sections[0][4] & SCN_MEM_EXECUTE


def test_imports_are_allowed_exports_of_windows_10_1703(image):
    _, pe = image
    imports = pe.imports()
    allowed = _allowlist()
    assert imports
    assert {dll for dll, _ in imports} <= {"ntoskrnl.exe", "hal.dll"}
    assert all(name is not None for _, name in imports), "import by ordinal"
    unknown = sorted("%s!%s" % i for i in imports if i not in allowed)
    assert not unknown, "imports not in drv/imports-win10-1703.txt: %s" % unknown


def test_newer_routines_are_resolved_at_run_time(image):
    _, pe = image
    names = {name for _, name in pe.imports()}
    for routine in ("PsSetCreateProcessNotifyRoutineEx2", "KeQuerySystemTimePrecise", "ExAllocatePool2"):
        assert routine not in names
    # ... and looked up by name with MmGetSystemRoutineAddress.
    assert "MmGetSystemRoutineAddress" in names
    assert "PsSetCreateProcessNotifyRoutineEx2".encode("utf-16-le") in pe.data
    assert "PsSetCreateProcessNotifyRoutineEx" in names


def test_release_build_lacks_the_test_ioctls(built_drivers):
    """The inject and poke IOCTLs are compiled out of the release image (the
    Wine test also sends them to the release driver: STATUS_INVALID_DEVICE_REQUEST)."""
    release = PE(built_drivers["release"]).data
    test = PE(built_drivers["test"]).data
    marker = b"TEST BUILD, IOCTL_KRING_TEST_INJECT enabled"
    assert marker in test and marker not in release
    assert b"IOCTL_KRING_TEST" not in release


def _sid(authority: int, *rids: int) -> bytes:
    return struct.pack("<BB", 1, len(rids)) + authority.to_bytes(6, "big") + struct.pack("<%dI" % len(rids), *rids)


def _ace(ace_type: int, mask: int, sid: bytes) -> bytes:
    return struct.pack("<BBHI", ace_type, 0, 8 + len(sid), mask) + sid


def _acl(*aces: bytes) -> bytes:
    body = b"".join(aces)
    return struct.pack("<BBHHH", 2, 0, 8 + len(body), len(aces), 0) + body


SYSTEM = _sid(5, 18)
ADMINISTRATORS = _sid(5, 32, 544)
HIGH_INTEGRITY = _sid(16, 0x3000)
SE_SELF_RELATIVE, SE_DACL_PROTECTED, SE_SACL_PRESENT, SE_DACL_PRESENT = 0x8000, 0x1000, 0x10, 0x4
GENERIC_ALL, EVENT_ALL_ACCESS, SYNCHRONIZE = 0x10000000, 0x1F0003, 0x100000


def device_descriptor() -> bytes:
    """D:P(A;;GA;;;SY)(A;;GA;;;BA)S:(ML;;NWNRNX;;;HI), self-relative, built
    here independently of the driver's C initializer."""
    sacl = _acl(_ace(0x11, 0x7, HIGH_INTEGRITY))
    dacl = _acl(_ace(0, GENERIC_ALL, SYSTEM), _ace(0, GENERIC_ALL, ADMINISTRATORS))
    control = SE_SELF_RELATIVE | SE_DACL_PROTECTED | SE_SACL_PRESENT | SE_DACL_PRESENT
    return struct.pack("<BBHIIII", 1, 0, control, 0, 0, 20, 20 + len(sacl)) + sacl + dacl


def event_descriptor() -> bytes:
    """O:SYD:P(A;;EVENT_ALL_ACCESS;;;SY)(A;;SYNCHRONIZE;;;BA), self-relative."""
    dacl = _acl(_ace(0, EVENT_ALL_ACCESS, SYSTEM), _ace(0, SYNCHRONIZE, ADMINISTRATORS))
    control = SE_SELF_RELATIVE | SE_DACL_PROTECTED | SE_DACL_PRESENT
    return struct.pack("<BBHIIII", 1, 0, control, 20, 0, 0, 20 + len(SYSTEM)) + SYSTEM + dacl


def _in_readonly_data(pe: PE, blob: bytes) -> bool:
    at = pe.data.find(blob)
    while at >= 0:
        for name, va, size, rawptr, flags in pe.sections:
            if rawptr <= at < rawptr + size and not flags & (SCN_MEM_WRITE | SCN_MEM_EXECUTE) and at % 8 == rawptr % 8:
                return True
        at = pe.data.find(blob, at + 1)
    return False


def test_device_descriptor_present(image):
    """Every build carries the device's descriptor (DACL SYSTEM and
    Administrators all access, protected; high mandatory label), 8-aligned in
    read-only data, and the calls that apply it to the device object and
    check opens against it: ZwSetSecurityObject, SeAccessCheck."""
    _, pe = image
    assert len(device_descriptor()) == 100
    assert _in_readonly_data(pe, device_descriptor()), "device security descriptor not in the image"
    names = {name for _, name in pe.imports()}
    assert {"ObOpenObjectByPointer", "ZwSetSecurityObject", "SeAccessCheck", "SeLockSubjectContext"} <= names


def test_event_descriptor_has_system_owner(image):
    """The ring event's descriptor names SYSTEM as owner (the creator is not
    implicitly granted WRITE_DAC) and gives Administrators SYNCHRONIZE only."""
    _, pe = image
    assert _in_readonly_data(pe, event_descriptor()), "event security descriptor not in the image"
    names = {name for _, name in pe.imports()}
    assert "RtlAddAccessAllowedAce" not in names, "the event descriptor is built at run time again"
