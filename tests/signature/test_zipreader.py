"""Tests of signature.zipreader: every refusal by its exact reason code, every valid name exactly.

Hostile ZIPs that zipfile cannot write (CP932 names, lying sizes, encryption flags, links, multi-disk)
are assembled byte by byte with :func:`build_zip`.
"""

from __future__ import annotations

import hashlib
import io
import stat
import struct
import tracemalloc
import zipfile
import zlib
from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace
from typing import Any

import pytest

from signature.errors import UnreadablePackage
from signature.policy import ZipLimits
from signature.report import ReasonCode
from signature.zipreader import PackageFiles, read_package

MiB = 1024 * 1024
DEFAULT = ZipLimits()
UTF8_FLAG = 0x800
REGULAR = (stat.S_IFREG | 0o644) << 16
DIRECTORY = (stat.S_IFDIR | 0o755) << 16 | 0x10  # 0x10: the MS-DOS directory attribute


# --------------------------------------------------------------------------- raw ZIP writer


@dataclass(frozen=True)
class RawEntry:
    """One entry exactly as written: nothing is derived or checked."""

    name: bytes
    payload: bytes  # the bytes stored in the archive (compressed for deflate)
    method: int
    crc: int
    size: int  # uncompressed size declared in both headers
    flags: int = 0
    create_system: int = 3
    external_attr: int = REGULAR
    compress_size: int | None = None  # declared; default len(payload)
    local_flags: int | None = None  # default: flags
    local_method: int | None = None  # default: method
    offset: int | None = None  # central-directory offset; default: where the local header was written
    disk_start: int = 0
    extract_version: int = 20  # "version needed to extract" in the central directory


def entry(
    name: str | bytes, content: bytes = b"content", *, deflate: bool = False, **overrides: Any
) -> RawEntry:
    """A correct entry; a ``str`` name is written as UTF-8 with flag bit 11, ``bytes`` as given."""
    if isinstance(name, str):
        raw_name, flags = name.encode("utf-8"), UTF8_FLAG
    else:
        raw_name, flags = name, 0
    payload = deflate_raw(content) if deflate else content
    method = zipfile.ZIP_DEFLATED if deflate else zipfile.ZIP_STORED
    attr = DIRECTORY if raw_name.endswith(b"/") else REGULAR
    base = RawEntry(raw_name, payload, method, zlib.crc32(content), len(content), flags, external_attr=attr)
    return replace(base, **overrides)


def build_zip(
    entries: Iterable[RawEntry],
    *,
    count: int | None = None,
    disk: int = 0,
    prefix: bytes = b"",
    zip64: bool = False,
    zip64_disks: int = 1,
) -> bytes:
    """A ZIP of ``entries``; ``prefix`` is placed before the first entry with offsets that count it."""
    out = bytearray(prefix)
    central = bytearray()
    written = 0
    for e in entries:
        written += 1
        here = len(out)
        csize = len(e.payload) if e.compress_size is None else e.compress_size
        local_flags = e.flags if e.local_flags is None else e.local_flags
        local_method = e.method if e.local_method is None else e.local_method
        out += struct.pack(
            "<4s2B4HL2L2H", b"PK\x03\x04", 20, 0, local_flags, local_method, 0, 0x21,
            e.crc, csize, e.size, len(e.name), 0,
        )
        out += e.name + e.payload
        central += struct.pack(
            "<4s4B4HL2L5H2L", b"PK\x01\x02", 20, e.create_system, e.extract_version, 0,
            e.flags, e.method, 0, 0x21,
            e.crc, csize, e.size, len(e.name), 0, 0, e.disk_start, 0, e.external_attr,
            here if e.offset is None else e.offset,
        )
        central += e.name
    n = written if count is None else count
    cd_offset = len(out)
    out += central
    if zip64:
        eocd64_offset = len(out)
        out += struct.pack(
            "<4sQ2H2L4Q", b"PK\x06\x06", 44, 45, 45, disk, disk, n, n, len(central), cd_offset
        )
        out += struct.pack("<4sLQL", b"PK\x06\x07", 0, eocd64_offset, zip64_disks)
        out += struct.pack("<4s4H2LH", b"PK\x05\x06", 0xFFFF, 0xFFFF, 0xFFFF, 0xFFFF,
                           0xFFFFFFFF, 0xFFFFFFFF, 0)
    else:
        out += struct.pack("<4s4H2LH", b"PK\x05\x06", disk, disk, n, n, len(central), cd_offset, 0)
    return bytes(out)


def deflate_raw(content: bytes) -> bytes:
    compressor = zlib.compressobj(9, zlib.DEFLATED, -15)
    return compressor.compress(content) + compressor.flush()


def deflated_zeros(mib: int) -> bytes:
    """Raw deflate of ``mib`` MiB of zeros, streamed so that no big buffer is ever built."""
    compressor = zlib.compressobj(9, zlib.DEFLATED, -15, 9, zlib.Z_RLE)  # Z_RLE: fast on zeros
    chunk = bytes(MiB)
    return b"".join([compressor.compress(chunk) for _ in range(mib)] + [compressor.flush()])


def zeros_crc(size: int) -> int:
    crc, chunk = 0, bytes(MiB)
    while size > 0:
        crc = zlib.crc32(chunk[: min(size, MiB)], crc)
        size -= MiB
    return crc


def make_zip(
    files: Iterable[tuple[str, bytes]],
    *,
    compression: int = zipfile.ZIP_DEFLATED,
    dirs: Iterable[str] = (),
) -> bytes:
    """A ZIP written by zipfile itself (non-ASCII names get the UTF-8 flag)."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression) as zf:
        for d in dirs:
            zf.writestr(zipfile.ZipInfo(d), b"")
        for name, content in files:
            zf.writestr(name, content)
    return buf.getvalue()


def refusal(data: bytes, limits: ZipLimits = DEFAULT) -> UnreadablePackage:
    with pytest.raises(UnreadablePackage) as caught:
        read_package(data, limits)
    return caught.value


VALID = make_zip([("kousei.xml", b"<DataRoot/>"), ("form.xml", b"<form/>" * 50)])


@pytest.fixture(scope="module")
def zeros_150() -> bytes:
    return deflated_zeros(150)


# --------------------------------------------------------------------------- refusals


def _junk_around(data: bytes) -> bytes:
    return b"MZ\x90\x00" * 8 + data


def _cd_lies(data: bytes) -> bytes:
    raw = bytearray(data)
    cd = raw.find(b"PK\x01\x02")
    struct.pack_into("<L", raw, cd + 16, zlib.crc32(b"stored") ^ 1)
    return bytes(raw)


def _flip_stored_byte() -> bytes:
    raw = bytearray(make_zip([("a.txt", b"stored data")], compression=zipfile.ZIP_STORED))
    raw[raw.find(b"stored data")] ^= 0x01
    return bytes(raw)


def _local_name_differs() -> bytes:
    raw = bytearray(VALID)
    raw[30] = ord("K")  # first byte of the first local header's name: "kousei.xml" -> "Kousei.xml"
    return bytes(raw)


def _quoted_overlap() -> bytes:
    # Entry b's local header and data lie inside entry a's stored data: both read "fine" with
    # zipfile, and a bomb built this way reuses one deflate stream for every entry.
    inner = build_zip([entry("b.txt", b"hello")])
    inner = inner[: inner.find(b"PK\x01\x02")]
    return build_zip([entry("a.bin", inner), entry("b.txt", b"hello", offset=30 + len("a.bin"))])


def _two(name_a: str | bytes, name_b: str | bytes) -> bytes:
    return build_zip([entry(name_a), entry(name_b)])


Case = Callable[[], bytes]

REFUSALS: list[object] = [
    pytest.param(lambda: b"", DEFAULT, ReasonCode.EMPTY_INPUT, id="empty-bytes"),
    pytest.param(lambda: VALID, replace(DEFAULT, max_package_bytes=len(VALID) - 1),
                 ReasonCode.ZIP_TOO_LARGE, id="package-over-max-bytes"),
    pytest.param(lambda: b"", replace(DEFAULT, max_package_bytes=-1),
                 ReasonCode.ZIP_TOO_LARGE, id="size-checked-before-anything-else"),
    pytest.param(lambda: b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n1 0 obj\n", DEFAULT, ReasonCode.NOT_A_ZIP,
                 id="not-a-zip-pdf"),
    pytest.param(lambda: b"hello" * 100, DEFAULT, ReasonCode.NOT_A_ZIP, id="not-a-zip-text"),
    pytest.param(lambda: b"PK\x05\x06", DEFAULT, ReasonCode.NOT_A_ZIP, id="end-record-cut-short"),
    # -- corrupt
    pytest.param(lambda: VALID[: len(VALID) // 2], DEFAULT, ReasonCode.ZIP_CORRUPT,
                 id="truncated-zip-no-end-record"),
    pytest.param(lambda: build_zip([entry("a.txt", b"0123456789", compress_size=5000)]), DEFAULT,
                 ReasonCode.ZIP_CORRUPT, id="entry-data-runs-past-end"),
    pytest.param(_flip_stored_byte, DEFAULT, ReasonCode.ZIP_CORRUPT, id="crc-mismatch-stored"),
    pytest.param(_local_name_differs, DEFAULT, ReasonCode.ZIP_CORRUPT, id="local-header-name-differs"),
    pytest.param(lambda: _cd_lies(build_zip([entry("a.txt", b"stored")])), DEFAULT,
                 ReasonCode.ZIP_CORRUPT, id="crc-field-wrong"),
    pytest.param(lambda: build_zip([entry("a.txt", b"x" * 40, deflate=True, payload=b"\xff" * 40)]),
                 DEFAULT, ReasonCode.ZIP_CORRUPT, id="deflate-stream-invalid"),
    pytest.param(lambda: build_zip([entry("a.txt", b"abc", compress_size=2, payload=b"ab")]),
                 DEFAULT, ReasonCode.ZIP_CORRUPT, id="stored-sizes-disagree"),
    pytest.param(lambda: build_zip([entry("a.txt", b"0123456789" * 10, deflate=True, size=10,
                                          crc=zlib.crc32(b"0123456789"))]),
                 DEFAULT, ReasonCode.ZIP_CORRUPT, id="deflate-longer-than-declared-crc-forged"),
    pytest.param(lambda: build_zip([entry("a.txt", b"0123456789", deflate=True, size=11)]),
                 DEFAULT, ReasonCode.ZIP_CORRUPT, id="deflate-shorter-than-declared"),
    pytest.param(lambda: _junk_around(VALID), DEFAULT, ReasonCode.ZIP_CORRUPT,
                 id="junk-prepended-offsets-shifted"),
    pytest.param(lambda: build_zip([entry("a.txt")], prefix=b"%PDF-1.7\n" * 4), DEFAULT,
                 ReasonCode.ZIP_CORRUPT, id="polyglot-data-before-first-entry"),
    pytest.param(lambda: VALID + b"trailing", DEFAULT, ReasonCode.ZIP_CORRUPT, id="data-after-end-record"),
    pytest.param(lambda: build_zip([entry("a.txt"), entry("b.txt")], count=3), DEFAULT,
                 ReasonCode.ZIP_CORRUPT, id="end-record-count-wrong"),
    pytest.param(lambda: build_zip([entry("a.txt", local_method=zipfile.ZIP_DEFLATED)]), DEFAULT,
                 ReasonCode.ZIP_CORRUPT, id="local-header-method-differs"),
    pytest.param(lambda: build_zip([entry("a.txt", b"shared"), entry("b.txt", b"shared", offset=0)]),
                 DEFAULT, ReasonCode.ZIP_CORRUPT, id="overlapping-entries"),
    pytest.param(_quoted_overlap, DEFAULT, ReasonCode.ZIP_CORRUPT, id="quoted-overlap"),
    pytest.param(lambda: VALID + VALID, DEFAULT, ReasonCode.ZIP_CORRUPT, id="two-zips-concatenated"),
    pytest.param(lambda: build_zip([entry("a.txt"), entry("b.txt", offset=1)]), DEFAULT,
                 ReasonCode.ZIP_CORRUPT, id="offset-not-a-local-header"),
    # -- too many entries
    pytest.param(lambda: build_zip(entry(f"f{i}.txt", b"") for i in range(1001)), DEFAULT,
                 ReasonCode.ZIP_TOO_MANY_ENTRIES, id="1001-entries"),
    pytest.param(lambda: build_zip((entry(f"f{i}.txt") for i in range(3)), count=1),
                 replace(DEFAULT, max_entries=2), ReasonCode.ZIP_TOO_MANY_ENTRIES,
                 id="end-record-understates-count"),
    # -- unsupported
    pytest.param(lambda: build_zip([entry("a.txt")], disk=1), DEFAULT, ReasonCode.ZIP_UNSUPPORTED,
                 id="multi-disk"),
    pytest.param(lambda: build_zip([entry("a.txt")], zip64=True, zip64_disks=2), DEFAULT,
                 ReasonCode.ZIP_UNSUPPORTED, id="multi-disk-zip64"),
    pytest.param(lambda: build_zip([entry("a.txt", disk_start=1)]), DEFAULT, ReasonCode.ZIP_UNSUPPORTED,
                 id="entry-on-another-disk"),
    pytest.param(lambda: make_zip([("a.txt", b"data")], compression=zipfile.ZIP_LZMA), DEFAULT,
                 ReasonCode.ZIP_UNSUPPORTED, id="lzma"),
    pytest.param(lambda: make_zip([("a.txt", b"data")], compression=zipfile.ZIP_BZIP2), DEFAULT,
                 ReasonCode.ZIP_UNSUPPORTED, id="bzip2"),
    pytest.param(lambda: build_zip([entry("a.txt", extract_version=64)]), DEFAULT,
                 ReasonCode.ZIP_UNSUPPORTED, id="version-needed-too-new"),
    pytest.param(lambda: build_zip([entry("a.txt", method=99)]), DEFAULT, ReasonCode.ZIP_UNSUPPORTED,
                 id="unknown-method"),
    pytest.param(lambda: build_zip([entry("a.txt", flags=UTF8_FLAG | 0x20)]), DEFAULT,
                 ReasonCode.ZIP_UNSUPPORTED, id="patched-data-flag"),
    # -- encrypted
    pytest.param(lambda: build_zip([entry("a.txt", flags=UTF8_FLAG | 0x1)]), DEFAULT,
                 ReasonCode.ZIP_ENCRYPTED, id="encrypted-flag"),
    pytest.param(lambda: build_zip([entry("a.txt", flags=UTF8_FLAG | 0x41)]), DEFAULT,
                 ReasonCode.ZIP_ENCRYPTED, id="strong-encryption-flag"),
    pytest.param(lambda: build_zip([entry("a.txt", flags=UTF8_FLAG | 0x1, local_flags=UTF8_FLAG)]),
                 DEFAULT, ReasonCode.ZIP_ENCRYPTED, id="encrypted-in-central-directory-only"),
    pytest.param(lambda: build_zip([entry("a.txt", local_flags=UTF8_FLAG | 0x1)]), DEFAULT,
                 ReasonCode.ZIP_ENCRYPTED, id="encrypted-in-local-header-only"),
    # -- links and other non-regular files
    pytest.param(lambda: build_zip([entry("link.pdf", b"/etc/passwd",
                                          external_attr=(stat.S_IFLNK | 0o777) << 16)]),
                 DEFAULT, ReasonCode.ZIP_LINK, id="unix-symlink"),
    pytest.param(lambda: build_zip([entry("fifo", b"", external_attr=(stat.S_IFIFO | 0o644) << 16)]),
                 DEFAULT, ReasonCode.ZIP_LINK, id="unix-fifo"),
    pytest.param(lambda: build_zip([entry("dev", b"", external_attr=(stat.S_IFCHR | 0o644) << 16)]),
                 DEFAULT, ReasonCode.ZIP_LINK, id="unix-char-device"),
    pytest.param(lambda: build_zip([entry("a.txt", external_attr=(stat.S_IFDIR | 0o755) << 16)]),
                 DEFAULT, ReasonCode.ZIP_LINK, id="file-name-with-directory-mode"),
    pytest.param(lambda: build_zip([entry("a.txt", create_system=0, external_attr=0x400 | 0x20)]),
                 DEFAULT, ReasonCode.ZIP_LINK, id="windows-reparse-point"),
    # -- unsafe paths
    pytest.param(lambda: build_zip([entry("../x")]), DEFAULT, ReasonCode.ZIP_UNSAFE_PATH, id="dotdot"),
    pytest.param(lambda: build_zip([entry("f/../../x")]), DEFAULT, ReasonCode.ZIP_UNSAFE_PATH,
                 id="dotdot-inside"),
    pytest.param(lambda: build_zip([entry("./x")]), DEFAULT, ReasonCode.ZIP_UNSAFE_PATH, id="dot"),
    pytest.param(lambda: build_zip([entry(".../x")]), DEFAULT, ReasonCode.ZIP_UNSAFE_PATH,
                 id="three-dots"),
    pytest.param(lambda: build_zip([entry("/abs")]), DEFAULT, ReasonCode.ZIP_UNSAFE_PATH, id="absolute"),
    pytest.param(lambda: build_zip([entry("C:\\x")]), DEFAULT, ReasonCode.ZIP_UNSAFE_PATH,
                 id="drive-letter-backslash"),
    pytest.param(lambda: build_zip([entry("C:/x")]), DEFAULT, ReasonCode.ZIP_UNSAFE_PATH,
                 id="drive-letter-slash"),
    pytest.param(lambda: build_zip([entry("a.pdf:hidden")]), DEFAULT, ReasonCode.ZIP_UNSAFE_PATH,
                 id="ntfs-stream"),
    pytest.param(lambda: build_zip([entry("a\\b")]), DEFAULT, ReasonCode.ZIP_UNSAFE_PATH,
                 id="backslash-utf8-flag"),
    pytest.param(lambda: build_zip([entry(b"a\\b")]), DEFAULT, ReasonCode.ZIP_UNSAFE_PATH,
                 id="backslash-single-byte-cp932"),
    pytest.param(lambda: build_zip([entry("a//b")]), DEFAULT, ReasonCode.ZIP_UNSAFE_PATH,
                 id="empty-component"),
    pytest.param(lambda: build_zip([entry("")]), DEFAULT, ReasonCode.ZIP_UNSAFE_PATH, id="empty-name"),
    pytest.param(lambda: build_zip([entry("a.txt\x00.pdf")]), DEFAULT, ReasonCode.ZIP_UNSAFE_PATH,
                 id="nul-in-name"),
    pytest.param(lambda: build_zip([entry("a\x01.txt")]), DEFAULT, ReasonCode.ZIP_UNSAFE_PATH,
                 id="control-char"),
    pytest.param(lambda: build_zip([entry("a\x85.txt")]), DEFAULT, ReasonCode.ZIP_UNSAFE_PATH,
                 id="c1-control-char"),
    pytest.param(lambda: build_zip([entry("invoice\u202efdp.exe")]), DEFAULT, ReasonCode.ZIP_UNSAFE_PATH,
                 id="bidi-override"),
    pytest.param(lambda: build_zip([entry("f/g/h.txt")]), DEFAULT, ReasonCode.ZIP_UNSAFE_PATH,
                 id="nested-folder"),
    pytest.param(lambda: build_zip([entry("f/", b""), entry("f/g/", b"")]), DEFAULT,
                 ReasonCode.ZIP_UNSAFE_PATH, id="nested-directory-entry"),
    pytest.param(lambda: _two("f1/a.xml", "f2/b.xml"), DEFAULT, ReasonCode.ZIP_UNSAFE_PATH,
                 id="two-folders"),
    pytest.param(lambda: _two("f1/", "f2/a.xml"), DEFAULT, ReasonCode.ZIP_UNSAFE_PATH,
                 id="two-folders-one-empty"),
    pytest.param(lambda: _two("a.xml", "f/b.xml"), DEFAULT, ReasonCode.ZIP_UNSAFE_PATH,
                 id="root-and-folder-mixed"),
    pytest.param(lambda: build_zip([entry("f/", b""), entry("a.xml")]), DEFAULT,
                 ReasonCode.ZIP_UNSAFE_PATH, id="root-file-and-directory-entry"),
    pytest.param(lambda: build_zip([entry("f/", b"data")]), DEFAULT, ReasonCode.ZIP_UNSAFE_PATH,
                 id="directory-entry-with-data"),
    pytest.param(lambda: build_zip([entry(b"bad\x81\x20.txt")]), DEFAULT, ReasonCode.ZIP_UNSAFE_PATH,
                 id="invalid-cp932"),
    pytest.param(lambda: build_zip([entry(b"bad\x81")]), DEFAULT, ReasonCode.ZIP_UNSAFE_PATH,
                 id="cp932-lead-byte-at-end"),
    pytest.param(lambda: build_zip([entry(b"bad\xff\xfe.txt", flags=UTF8_FLAG)]), DEFAULT,
                 ReasonCode.ZIP_UNSAFE_PATH, id="invalid-utf8-with-flag"),
    # -- duplicates
    pytest.param(lambda: _two("a.xml", "a.xml"), DEFAULT, ReasonCode.ZIP_DUPLICATE_ENTRY,
                 id="same-name-twice"),
    pytest.param(lambda: _two("f/保険証.pdf", "f/保険証.pdf"), DEFAULT, ReasonCode.ZIP_DUPLICATE_ENTRY,
                 id="same-japanese-name-twice"),
    pytest.param(lambda: _two("\u304c.pdf", "\u304b\u3099.pdf"), DEFAULT, ReasonCode.ZIP_DUPLICATE_ENTRY,
                 id="nfc-and-nfd"),
    pytest.param(lambda: _two("ソフト表.pdf".encode("cp932"), "ソフト表.pdf"), DEFAULT,
                 ReasonCode.ZIP_DUPLICATE_ENTRY, id="cp932-and-utf8-same-name"),
    pytest.param(lambda: build_zip([entry("f/", b""), entry("f/", b"")]), DEFAULT,
                 ReasonCode.ZIP_DUPLICATE_ENTRY, id="folder-twice"),
    # -- small bombs (declared)
    pytest.param(lambda: build_zip([entry("z.bin", bytes(2 * MiB), deflate=True)]), DEFAULT,
                 ReasonCode.ZIP_BOMB, id="ratio-over-200-above-1MiB"),
    pytest.param(lambda: _two("a.bin", "b.bin"), replace(DEFAULT, max_total_uncompressed=13),
                 ReasonCode.ZIP_BOMB, id="declared-total-over-limit"),
    pytest.param(lambda: build_zip([entry("z.bin", bytes(2 * MiB), deflate=True, size=1000,
                                          crc=zeros_crc(1000))]),
                 DEFAULT, ReasonCode.ZIP_BOMB, id="ratio-caught-while-inflating"),
    pytest.param(lambda: build_zip([entry("z.bin", bytes(4000), deflate=True, size=100,
                                          crc=zeros_crc(100))]),
                 replace(DEFAULT, max_total_uncompressed=1000), ReasonCode.ZIP_BOMB,
                 id="total-caught-while-inflating"),
]


@pytest.mark.parametrize(("make", "limits", "code"), REFUSALS)
def test_refuses(make: Case, limits: ZipLimits, code: ReasonCode) -> None:
    assert refusal(make(), limits).code is code


@pytest.mark.parametrize(
    ("make", "cause"),
    [
        pytest.param(_local_name_differs, zipfile.BadZipFile, id="local-name-differs-is-BadZipFile"),
        pytest.param(lambda: build_zip([entry("a.txt", b"x" * 40, deflate=True, payload=b"\xff" * 40)]),
                     zlib.error, id="bad-deflate-is-zlib-error"),
        pytest.param(lambda: build_zip([entry(b"bad\x81\x20.txt")]), UnicodeDecodeError,
                     id="bad-name-is-UnicodeDecodeError"),
    ],
)
def test_library_errors_are_translated_and_chained(make: Case, cause: type[BaseException]) -> None:
    assert isinstance(refusal(make()).__cause__, cause)


def test_encrypted_entry_is_refused_before_zipfile_raises_runtime_error() -> None:
    data = build_zip([entry("a.txt", flags=UTF8_FLAG | 0x1)])
    with zipfile.ZipFile(io.BytesIO(data)) as zf, pytest.raises(RuntimeError):
        zf.read("a.txt")  # what would escape without the up-front flag check
    assert refusal(data).code is ReasonCode.ZIP_ENCRYPTED


@pytest.mark.parametrize(
    ("data", "code", "words"),
    [
        pytest.param(build_zip([entry("/abs")]), ReasonCode.ZIP_UNSAFE_PATH, "absolute", id="absolute"),
        pytest.param(build_zip([entry("a//b")]), ReasonCode.ZIP_UNSAFE_PATH, "empty", id="empty-component"),
        pytest.param(build_zip([entry("l", external_attr=(stat.S_IFLNK | 0o777) << 16)]),
                     ReasonCode.ZIP_LINK, "symbolic link", id="symlink"),
    ],
)
def test_detail_names_the_problem(data: bytes, code: ReasonCode, words: str) -> None:
    err = refusal(data)
    assert err.code is code
    assert words in err.detail


def test_declared_sizes_are_checked_before_anything_is_inflated() -> None:
    # The second entry's data is garbage: reaching it would make the package merely "corrupt".
    data = build_zip([
        entry("a.bin", b"a" * 600, deflate=True),
        entry("b.bin", b"b" * 600, deflate=True, payload=b"\xff" * 20),
    ])
    assert refusal(data, replace(DEFAULT, max_total_uncompressed=1000)).code is ReasonCode.ZIP_BOMB


# --------------------------------------------------------------------------- real bombs


def test_deflate_bomb_150_mib_is_refused_from_the_central_directory(zeros_150: bytes) -> None:
    data = build_zip([entry("bomb.bin", payload=zeros_150, method=zipfile.ZIP_DEFLATED,
                            size=150 * MiB, crc=zeros_crc(150 * MiB))])
    err = refusal(data)
    assert err.code is ReasonCode.ZIP_BOMB
    assert "declares" in err.detail  # caught before inflating anything


def test_lying_central_directory_bomb_is_stopped_while_inflating(zeros_150: bytes) -> None:
    # Declares 1000 bytes (ratio and total look harmless); the stream really holds 150 MiB.
    data = build_zip([entry("bomb.bin", payload=zeros_150, method=zipfile.ZIP_DEFLATED,
                            size=1000, crc=zeros_crc(1000))])
    with zipfile.ZipFile(io.BytesIO(data)) as zf:
        assert len(zf.read("bomb.bin")) == 1000  # zipfile believes the header and drops the rest
    err = refusal(data)
    assert err.code is ReasonCode.ZIP_BOMB
    assert "inflates" in err.detail


def test_lying_bomb_memory_stays_near_the_cap(zeros_150: bytes) -> None:
    cap = 8 * MiB
    limits = replace(DEFAULT, max_total_uncompressed=cap, max_ratio=10**9)  # only the total cap binds
    data = build_zip([entry("bomb.bin", payload=zeros_150, method=zipfile.ZIP_DEFLATED,
                            size=1000, crc=zeros_crc(1000))])
    tracemalloc.start()
    try:
        assert refusal(data, limits).code is ReasonCode.ZIP_BOMB
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 3 * cap, f"peak {peak} bytes while inflating a 150 MiB stream with an 8 MiB cap"


# --------------------------------------------------------------------------- valid packages


@pytest.mark.parametrize(
    ("data", "names", "folder"),
    [
        pytest.param(make_zip([("kousei.xml", b"<a/>"), ("到達情報.xml", b"<b/>")],
                              compression=zipfile.ZIP_STORED),
                     ("kousei.xml", "到達情報.xml"), None, id="stored-root"),
        pytest.param(make_zip([("pkg/kousei.xml", b"<a/>" * 100), ("pkg/form.xml", b"<b/>" * 100)],
                              dirs=["pkg/"]),
                     ("kousei.xml", "form.xml"), "pkg", id="deflated-folder-with-directory-entry"),
        pytest.param(make_zip([("pkg/kousei.xml", b"<a/>"), ("pkg/form.xml", b"<b/>")]),
                     ("kousei.xml", "form.xml"), "pkg", id="folder-without-directory-entry"),
        pytest.param(make_zip([("保険証.pdf", b"%PDF"), ("到達情報.xml", b"<b/>"),
                               ("住民票の写し.png", b"P")]),
                     ("保険証.pdf", "到達情報.xml", "住民票の写し.png"), None, id="utf8-japanese-names"),
        pytest.param(make_zip([("児童手当認定請求/kousei.xml", b"<a/>"),
                               ("児童手当認定請求/保険証.pdf", b"%")], dirs=["児童手当認定請求/"]),
                     ("kousei.xml", "保険証.pdf"), "児童手当認定請求", id="utf8-japanese-folder"),
        pytest.param(build_zip([entry("ソフト表.pdf".encode("cp932"), b"%PDF"),
                                entry("kousei.xml".encode("cp932"), b"<a/>")]),
                     ("ソフト表.pdf", "kousei.xml"), None, id="cp932-name-with-5c-trail-byte"),
        pytest.param(build_zip([entry("申請書類表/".encode("cp932"), b""),
                                entry("申請書類表/ソフト表.pdf".encode("cp932"), b"%PDF")]),
                     ("ソフト表.pdf",), "申請書類表", id="cp932-folder-with-5c-trail-byte"),
        pytest.param(build_zip([entry("pkg/form.xml", b"<f/>" * 50, deflate=True)], zip64=True),
                     ("form.xml",), "pkg", id="zip64-end-records"),
        pytest.param(make_zip([]), (), None, id="empty-archive"),
        pytest.param(build_zip([entry("pkg/", b"")]), (), "pkg", id="only-the-folder"),
    ],
)
def test_reads_names_exactly(data: bytes, names: tuple[str, ...], folder: str | None) -> None:
    files = read_package(data, DEFAULT)
    assert files.names() == names
    assert files.folder == folder


def test_cp932_fixture_really_has_5c_trail_bytes_and_no_utf8_flag() -> None:
    # Guards the test above: without these properties it would prove nothing.
    assert "ソフト表".encode("cp932") == b"\x83\x5c\x83\x74\x83\x67\x95\x5c"
    data = build_zip([entry("ソフト表.pdf".encode("cp932"))])
    with zipfile.ZipFile(io.BytesIO(data)) as zf:
        info = zf.infolist()[0]
        assert not info.flag_bits & UTF8_FLAG
        assert "\\" in info.filename  # what plain zipfile makes of it


def test_contents_and_lookup() -> None:
    data = make_zip([("pkg/kousei.xml", b"<kousei/>"), ("pkg/form.xml", b"<form/>" * 1000),
                     ("pkg/empty.txt", b"")])
    files = read_package(data, DEFAULT)
    assert files.entries == (("kousei.xml", b"<kousei/>"), ("form.xml", b"<form/>" * 1000),
                             ("empty.txt", b""))
    assert files.get("form.xml") == b"<form/>" * 1000
    assert files.get("empty.txt") == b""
    assert files.get("pkg/form.xml") is None
    assert files.get("missing.xml") is None
    assert isinstance(files, PackageFiles)


def test_data_descriptor_entries_from_a_streaming_writer() -> None:
    class Unseekable(io.BytesIO):
        def seek(self, offset: int, whence: int = 0, /) -> int:
            raise OSError("not seekable")

    sink = Unseekable()
    with zipfile.ZipFile(sink, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, body in [("kousei.xml", b"<a/>" * 100), ("保険証.pdf", b"%PDF" * 100)]:
            with zf.open(name, "w") as out:
                out.write(body)
    data = sink.getvalue()
    with zipfile.ZipFile(io.BytesIO(data)) as check:
        assert all(info.flag_bits & 0x08 for info in check.infolist())  # sizes follow the data
    files = read_package(data, DEFAULT)
    assert files.entries == (("kousei.xml", b"<a/>" * 100), ("保険証.pdf", b"%PDF" * 100))


@pytest.mark.parametrize(
    ("content", "limits"),
    [
        pytest.param(bytes(MiB), DEFAULT, id="ratio-ignored-at-exactly-1MiB"),
        pytest.param(hashlib.shake_256(b"seed").digest(2 * MiB), DEFAULT, id="2MiB-incompressible"),
        pytest.param(b"x" * 1000, replace(DEFAULT, max_total_uncompressed=1000), id="total-exactly-at-cap"),
    ],
)
def test_accepts_at_the_limits(content: bytes, limits: ZipLimits) -> None:
    files = read_package(build_zip([entry("a.bin", content, deflate=True)]), limits)
    assert files.get("a.bin") == content


def test_accepts_exactly_max_entries() -> None:
    data = build_zip(entry(f"f{i}.txt", b"") for i in range(1000))
    assert len(read_package(data, DEFAULT).entries) == 1000


def test_accepts_package_of_exactly_max_bytes() -> None:
    assert read_package(VALID, replace(DEFAULT, max_package_bytes=len(VALID))).names() == (
        "kousei.xml", "form.xml")


# --------------------------------------------------------------------------- nothing else escapes


SMALL = build_zip([entry("pkg/", b""), entry("pkg/kousei.xml", b"<a/>" * 20, deflate=True),
                   entry("pkg/表.pdf".encode("cp932"), b"%PDF-1.7")])


def _outcome(data: bytes) -> str:
    try:
        read_package(data, DEFAULT)
    except UnreadablePackage as exc:
        return exc.code.value
    return "ok"


@pytest.mark.parametrize("mask", [0x01, 0x80, 0xFF], ids=["xor-01", "xor-80", "xor-ff"])
def test_every_single_byte_corruption_is_read_or_refused(mask: int) -> None:
    assert _outcome(SMALL) == "ok"
    outcomes = set()
    for i in range(len(SMALL)):
        mutated = bytearray(SMALL)
        mutated[i] ^= mask
        outcomes.add(_outcome(bytes(mutated)))  # any other exception fails the test
    assert ReasonCode.ZIP_CORRUPT.value in outcomes


def test_every_truncation_is_refused() -> None:
    for length in range(1, len(SMALL)):
        assert _outcome(SMALL[:length]) in {ReasonCode.ZIP_CORRUPT.value, ReasonCode.NOT_A_ZIP.value}
