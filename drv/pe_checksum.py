"""Set the CheckSum field of a PE image in place (the algorithm of
imagehlp's CheckSumMappedFile): Windows verifies it for kernel drivers, and
the mingw-w64 linker leaves it 0. Usage: python3 pe_checksum.py IMAGE"""
import struct
import sys


def pe_checksum(data: bytes, checksum_offset: int) -> int:
    """16-bit one's-complement-style sum of the image with the CheckSum
    field taken as zero, folded to 16 bits, plus the file length."""
    image = bytearray(data)
    image[checksum_offset:checksum_offset + 4] = b"\0\0\0\0"
    if len(image) % 2:
        image += b"\0"
    total = 0
    for (word,) in struct.iter_unpack("<H", bytes(image)):
        total += word
        total = (total & 0xFFFF) + (total >> 16)
    total = (total & 0xFFFF) + (total >> 16)
    return (total + len(data)) & 0xFFFFFFFF


def checksum_offset(data: bytes) -> int:
    e_lfanew = struct.unpack_from("<I", data, 0x3C)[0]
    if data[e_lfanew:e_lfanew + 4] != b"PE\0\0":
        raise ValueError("not a PE image")
    return e_lfanew + 4 + 20 + 64   # signature, file header, OptionalHeader.CheckSum


def main(path: str) -> None:
    with open(path, "rb") as f:
        data = bytearray(f.read())
    off = checksum_offset(data)
    struct.pack_into("<I", data, off, pe_checksum(bytes(data), off))
    with open(path, "wb") as f:
        f.write(data)


if __name__ == "__main__":
    main(sys.argv[1])
