"""Reads an application package (ZIP) into memory without trusting anything the container declares.

Packages come from the internet. A ZIP can lie in its headers, inflate to gigabytes, carry paths that
escape a folder, hide links or a second reading of the same bytes, and Python's :mod:`zipfile` guards
against none of that (docs/pitfalls.md, "ZIP"). This module is the single place where untrusted bytes
become ``(name, data)`` pairs; anything other than a plain package is refused with
:class:`~signature.errors.UnreadablePackage` and a stable :class:`~signature.report.ReasonCode`.
"""

from __future__ import annotations

import io
import re
import stat
import struct
import unicodedata
import zipfile
import zlib
from dataclasses import dataclass

from signature.errors import UnreadablePackage
from signature.policy import ZipLimits
from signature.report import ReasonCode

__all__ = ["PackageFiles", "read_package"]

# Large enough to keep memory flat, small enough that the caps are overshot by at most this much.
_CHUNK = 64 * 1024

_EOCD = struct.Struct("<4s4H2LH")
_EOCD_SIG = b"PK\x05\x06"
_ZIP64_LOCATOR = struct.Struct("<4sLQL")
_ZIP64_LOCATOR_SIG = b"PK\x06\x07"
_ZIP64_EOCD = struct.Struct("<4sQ2H2L4Q")
_ZIP64_EOCD_SIG = b"PK\x06\x06"
_CENTRAL = struct.Struct("<4s4B4HL2L5H2L")
_CENTRAL_SIG = b"PK\x01\x02"
_LOCAL = struct.Struct("<4s2B4HL2L2H")
_LOCAL_SIG = b"PK\x03\x04"
_MAX_COMMENT = 0xFFFF

_FLAG_ENCRYPTED = 0x0001
_FLAG_STRONG_ENCRYPTION = 0x0040
_FLAG_PATCHED = 0x0020  # compressed patched data: zipfile refuses it (NotImplementedError)
_FLAG_UTF8 = 0x0800
_FLAG_MASKED_HEADERS = 0x2000  # central-directory encryption: local headers are masked
_ANY_ENCRYPTION = _FLAG_ENCRYPTED | _FLAG_STRONG_ENCRYPTION | _FLAG_MASKED_HEADERS

_SYSTEM_UNIX = 3
# Windows archivers mark symlinks and junctions with this MS-DOS attribute bit.
_DOS_REPARSE_POINT = 0x0400

_SUPPORTED_METHODS = frozenset({zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED})

# Direction overrides make "gpj.exe" display as "exe.jpg" to the staff who open attachments.
_BIDI_CONTROLS = frozenset("\u061c\u200e\u200f\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")
# Control characters (general category Cc: exactly U+0000–U+001F and U+007F–U+009F) or one of the
# above, found by one regular expression instead of a category lookup per character.
_UNSAFE_CHARACTERS = re.compile("[\x00-\x1f\x7f-\x9f" + "".join(sorted(_BIDI_CONTROLS)) + "]")

# What zipfile, struct and zlib raise on malformed input; none of it may leave this module.
_READ_ERRORS: tuple[type[BaseException], ...] = (
    zipfile.BadZipFile,
    zlib.error,
    EOFError,
    struct.error,
    OSError,
    ValueError,
    KeyError,
    IndexError,
    OverflowError,
    RuntimeError,
)


@dataclass(frozen=True, slots=True)
class PackageFiles:
    """Files of one package, names relative to the optional single top-level folder."""

    entries: tuple[tuple[str, bytes], ...]  # (name, data) in central-directory order, directories omitted
    folder: str | None  # the top-level folder name, if the package used one

    def names(self) -> tuple[str, ...]:
        return tuple(name for name, _ in self.entries)

    def get(self, name: str) -> bytes | None:
        for entry_name, data in self.entries:
            if entry_name == name:
                return data
        return None


@dataclass(frozen=True, slots=True)
class _Directory:
    """Where the central directory is, as the end record(s) say."""

    offset: int
    size: int
    count: int


@dataclass(frozen=True, slots=True)
class _Entry:
    info: zipfile.ZipInfo
    parts: tuple[str, ...]
    is_dir: bool


def read_package(data: bytes, limits: ZipLimits) -> PackageFiles:
    """Read every file of the package at ``data``, or raise :class:`UnreadablePackage`."""
    if len(data) > limits.max_package_bytes:
        raise UnreadablePackage(
            ReasonCode.ZIP_TOO_LARGE,
            f"package is {len(data)} bytes, more than the limit of {limits.max_package_bytes}",
        )
    if not data:
        raise UnreadablePackage(ReasonCode.EMPTY_INPUT, "package is empty (0 bytes)")

    # zipfile builds an object per central-directory record before anyone can count them, so the
    # count is checked on the raw bytes first; the same walk pins down the layout zipfile will see.
    directory = _locate_central_directory(data)
    _walk_central_directory(data, directory, limits)

    try:
        # Without the UTF-8 flag the name bytes are CP932 (Japanese Windows tools), not cp437.
        # Decoding them as CP932 here, rather than splitting cp437 text, keeps a trailing 0x5C byte
        # ("ソ" = 83 5C) inside its character instead of turning it into a backslash.
        archive = zipfile.ZipFile(io.BytesIO(data), metadata_encoding="cp932")
    except UnicodeDecodeError as exc:
        raise UnreadablePackage(
            ReasonCode.ZIP_UNSAFE_PATH, "an entry name is not valid UTF-8 or CP932"
        ) from exc
    except NotImplementedError as exc:
        raise UnreadablePackage(ReasonCode.ZIP_UNSUPPORTED, "ZIP version not supported") from exc
    except _READ_ERRORS as exc:
        raise UnreadablePackage(ReasonCode.ZIP_CORRUPT, "central directory is malformed") from exc

    with archive:
        infos = archive.infolist()
        entries = [_check_entry(data, info, directory) for info in infos]
        _check_no_overlap(data, infos, directory)
        _check_duplicates(entries)
        folder = _check_layout(entries)
        files = [e for e in entries if not e.is_dir]
        _check_declared_sizes(files, limits)

        contents: list[tuple[str, bytes]] = []
        total = 0
        for entry in files:
            body = _inflate(data, entry.info, limits, total)
            total += len(body)
            contents.append((entry.parts[-1], body))
    return PackageFiles(entries=tuple(contents), folder=folder)


def _locate_central_directory(data: bytes) -> _Directory:
    # Same search as zipfile (_EndRecData), so both of us agree on which end record counts.
    end = len(data) - _EOCD.size
    if not (end >= 0 and data.startswith(_EOCD_SIG, end) and data[-2:] == b"\0\0"):
        end = data.rfind(_EOCD_SIG, max(len(data) - _MAX_COMMENT - _EOCD.size, 0))
    if end < 0 or end + _EOCD.size > len(data):
        if data.startswith(_LOCAL_SIG):
            raise UnreadablePackage(ReasonCode.ZIP_CORRUPT, "ZIP is truncated: no end of central directory")
        raise UnreadablePackage(ReasonCode.NOT_A_ZIP, "not a ZIP file")

    (_, disk, cd_disk, on_disk, count, size, offset, comment_len) = _EOCD.unpack_from(data, end)
    if end + _EOCD.size + comment_len != len(data):
        # Bytes after the archive comment are invisible to zipfile but not to every other reader.
        raise UnreadablePackage(ReasonCode.ZIP_CORRUPT, "data after the end of the ZIP")
    cd_end = end

    locator = end - _ZIP64_LOCATOR.size
    if locator >= 0 and data.startswith(_ZIP64_LOCATOR_SIG, locator):
        _, eocd64_disk, eocd64_offset, disks = _ZIP64_LOCATOR.unpack_from(data, locator)
        if eocd64_disk != 0 or disks > 1:
            raise UnreadablePackage(ReasonCode.ZIP_UNSUPPORTED, "multi-disk ZIP")
        # zipfile assumes the zip64 end record has no extensible data and sits right before the
        # locator; anything else would make it read a different directory from the one we check.
        cd_end = locator - _ZIP64_EOCD.size
        if cd_end < 0 or eocd64_offset != cd_end or not data.startswith(_ZIP64_EOCD_SIG, cd_end):
            raise UnreadablePackage(ReasonCode.ZIP_CORRUPT, "zip64 end record is malformed")
        (_, _, _, _, disk, cd_disk, on_disk, count, size, offset) = _ZIP64_EOCD.unpack_from(data, cd_end)

    if disk != 0 or cd_disk != 0 or on_disk != count:
        raise UnreadablePackage(ReasonCode.ZIP_UNSUPPORTED, "multi-disk ZIP")
    if offset + size != cd_end:
        # zipfile would silently shift every offset ("concatenated" ZIP): that is how a file that
        # is also a PDF or an executable hides a ZIP behind it.
        raise UnreadablePackage(ReasonCode.ZIP_CORRUPT, "central directory is not where the end record says")
    if count > 0 and not data.startswith(_LOCAL_SIG):
        raise UnreadablePackage(ReasonCode.ZIP_CORRUPT, "data before the first entry")
    return _Directory(offset=offset, size=size, count=count)


def _walk_central_directory(data: bytes, directory: _Directory, limits: ZipLimits) -> None:
    # The end record's count may lie (zipfile ignores it and trusts the directory's size), so count
    # the records themselves, stopping at the first one over the limit.
    pos, end, seen = directory.offset, directory.offset + directory.size, 0
    while pos < end:
        if seen == limits.max_entries:
            raise UnreadablePackage(
                ReasonCode.ZIP_TOO_MANY_ENTRIES, f"more than {limits.max_entries} entries"
            )
        if pos + _CENTRAL.size > end or not data.startswith(_CENTRAL_SIG, pos):
            raise UnreadablePackage(ReasonCode.ZIP_CORRUPT, "central directory is malformed")
        fields = _CENTRAL.unpack_from(data, pos)
        pos += _CENTRAL.size + fields[12] + fields[13] + fields[14]
        seen += 1
    if pos != end or seen != directory.count:
        raise UnreadablePackage(ReasonCode.ZIP_CORRUPT, "central directory does not match its end record")


def _check_entry(data: bytes, info: zipfile.ZipInfo, directory: _Directory) -> _Entry:
    """Flags, method, file type and path of one entry, from the central directory and local header."""
    if info.flag_bits & _ANY_ENCRYPTION:
        # Must come before zf.open(): zipfile answers encryption with RuntimeError.
        raise UnreadablePackage(ReasonCode.ZIP_ENCRYPTED, "an entry is encrypted")
    if info.compress_type not in _SUPPORTED_METHODS:
        raise UnreadablePackage(
            ReasonCode.ZIP_UNSUPPORTED, f"compression method {info.compress_type} is not stored or deflate"
        )
    if info.volume != 0:
        raise UnreadablePackage(ReasonCode.ZIP_UNSUPPORTED, "multi-disk ZIP")

    # zipfile reads only the central directory; other readers (and the staff's unzip tool) trust the
    # local header, so the two must not tell different stories.
    offset = info.header_offset
    if offset + _LOCAL.size > directory.offset or not data.startswith(_LOCAL_SIG, offset):
        raise UnreadablePackage(ReasonCode.ZIP_CORRUPT, "local file header is missing")
    local = _LOCAL.unpack_from(data, offset)
    if local[3] & _ANY_ENCRYPTION:
        raise UnreadablePackage(ReasonCode.ZIP_ENCRYPTED, "an entry is encrypted")
    if local[4] != info.compress_type:
        raise UnreadablePackage(ReasonCode.ZIP_CORRUPT, "local header and central directory disagree")

    name = info.orig_filename  # .filename is cut at the first NUL; the original shows it
    _check_file_type(info, name)
    parts, is_dir = _split_name(name)
    if is_dir and info.file_size != 0:
        raise UnreadablePackage(ReasonCode.ZIP_UNSAFE_PATH, "a directory entry carries data")
    return _Entry(info=info, parts=parts, is_dir=is_dir)


def _check_file_type(info: zipfile.ZipInfo, name: str) -> None:
    if info.external_attr & _DOS_REPARSE_POINT:
        raise UnreadablePackage(ReasonCode.ZIP_LINK, "an entry is a link (reparse point)")
    if info.create_system != _SYSTEM_UNIX:
        return
    kind = stat.S_IFMT(info.external_attr >> 16)
    if kind == 0:  # no file type recorded: nothing to contradict the name
        return
    if kind == stat.S_IFLNK:
        raise UnreadablePackage(ReasonCode.ZIP_LINK, "an entry is a symbolic link")
    expected = stat.S_IFDIR if name.endswith("/") else stat.S_IFREG
    if kind != expected:
        raise UnreadablePackage(ReasonCode.ZIP_LINK, "an entry is not a regular file or folder")


def _split_name(name: str) -> tuple[tuple[str, ...], bool]:
    """Components of a safe entry name, and whether it names a directory."""

    def unsafe(why: str) -> UnreadablePackage:
        return UnreadablePackage(ReasonCode.ZIP_UNSAFE_PATH, f"entry name {why}")

    if not name:
        raise unsafe("is empty")
    if "\\" in name:
        # After correct decoding a backslash is a real one, i.e. a Windows path separator.
        raise unsafe("contains a backslash")
    if ":" in name:
        # On Windows, where the staff open attachments, "C:" is a drive and "a.pdf:x" a hidden stream.
        raise unsafe("contains a colon (drive letter or stream)")
    if _UNSAFE_CHARACTERS.search(name):
        raise unsafe("contains control characters")
    if name.startswith("/"):
        raise unsafe("is absolute")
    is_dir = name.endswith("/")
    parts = tuple((name[:-1] if is_dir else name).split("/"))
    for part in parts:
        if part.strip(".") == "":
            # "", ".", ".." and "..." (which some Windows tools also read as "..").
            raise unsafe("has an empty or dot component")
    if len(parts) > 2:
        raise unsafe("is nested more than one folder deep")
    if is_dir and len(parts) != 1:
        raise unsafe("is a directory other than the top-level folder")
    return parts, is_dir


def _check_no_overlap(data: bytes, infos: list[zipfile.ZipInfo], directory: _Directory) -> None:
    # Entries sharing bytes are how "overlapped" bombs multiply one deflate stream many times.
    limit = directory.offset
    for info in sorted(infos, key=lambda i: i.header_offset, reverse=True):
        local = _LOCAL.unpack_from(data, info.header_offset)
        start = info.header_offset
        end = start + _LOCAL.size + local[10] + local[11] + info.compress_size
        if end > limit:
            raise UnreadablePackage(ReasonCode.ZIP_CORRUPT, "entry data overlaps or is truncated")
        limit = start


def _check_duplicates(entries: list[_Entry]) -> None:
    seen: set[str] = set()
    for entry in entries:
        # macOS writes NFD, Windows NFC: the same visible name must not name two different files.
        name = unicodedata.normalize("NFC", entry.info.orig_filename)
        if name in seen:
            raise UnreadablePackage(
                ReasonCode.ZIP_DUPLICATE_ENTRY, "the same entry name occurs twice (after NFC normalisation)"
            )
        seen.add(name)


def _check_layout(entries: list[_Entry]) -> str | None:
    """The single top-level folder, if any (package-format.md §1)."""
    folders = {e.parts[0] for e in entries if e.is_dir or len(e.parts) == 2}
    at_root = any(not e.is_dir and len(e.parts) == 1 for e in entries)
    if len(folders) > 1:
        raise UnreadablePackage(ReasonCode.ZIP_UNSAFE_PATH, "more than one top-level folder")
    if folders and at_root:
        raise UnreadablePackage(ReasonCode.ZIP_UNSAFE_PATH, "entries both at the root and in a folder")
    return next(iter(folders), None)


def _check_declared_sizes(files: list[_Entry], limits: ZipLimits) -> None:
    total = 0
    for entry in files:
        info = entry.info
        if _ratio_exceeded(info.file_size, info.compress_size, limits):
            raise UnreadablePackage(
                ReasonCode.ZIP_BOMB, f"an entry declares a compression ratio over {limits.max_ratio}"
            )
        total += info.file_size
    if total > limits.max_total_uncompressed:
        raise UnreadablePackage(
            ReasonCode.ZIP_BOMB,
            f"entries declare {total} bytes, more than the limit of {limits.max_total_uncompressed}",
        )


def _ratio_exceeded(size: int, compressed: int, limits: ZipLimits) -> bool:
    return size > limits.ratio_applies_above and size > limits.max_ratio * compressed


def _inflate(data: bytes, info: zipfile.ZipInfo, limits: ZipLimits, before: int) -> bytes:
    """The entry's bytes, stopping as soon as a limit is crossed; ``before`` bytes were read already.

    Read straight from ``data`` at the offsets the checks above pinned down, with the same rules
    :meth:`zipfile.ZipFile.open` applies (local name equal to the central one, no patched data)
    but without its per-entry objects. Unlike zipfile, the stream is not cut at the declared size
    (zipfile stops there and, if the CRC was forged to fit, silently drops the rest): a lying
    header shows as a length mismatch, and our own caps bound the reading.
    """
    try:
        local = _LOCAL.unpack_from(data, info.header_offset)
        name_start = info.header_offset + _LOCAL.size
        if local[3] & _FLAG_PATCHED:
            raise NotImplementedError("compressed patched data (flag bit 5)")  # zipfile's own answer
        local_name = data[name_start:name_start + local[10]]
        if local_name.decode("utf-8" if local[3] & _FLAG_UTF8 else "cp932") != info.orig_filename:
            raise zipfile.BadZipFile("file name in directory and local header differ")  # as zipfile does
        start = name_start + local[10] + local[11]
        compressed = memoryview(data)[start:start + info.compress_size]
        if info.compress_type == zipfile.ZIP_STORED:
            body = bytes(compressed)
            if before + len(body) > limits.max_total_uncompressed:
                raise UnreadablePackage(
                    ReasonCode.ZIP_BOMB, f"entries inflate to more than {limits.max_total_uncompressed} bytes")
        else:
            body = _inflate_deflate(compressed, info, limits, before)
    except NotImplementedError as exc:
        raise UnreadablePackage(ReasonCode.ZIP_UNSUPPORTED, "an entry uses an unsupported feature") from exc
    except _READ_ERRORS as exc:
        raise UnreadablePackage(
            ReasonCode.ZIP_CORRUPT, "an entry cannot be read (bad CRC, truncated or invalid data)"
        ) from exc
    if len(body) != info.file_size:
        raise UnreadablePackage(
            ReasonCode.ZIP_CORRUPT, f"an entry inflates to {len(body)} bytes but declares {info.file_size}"
        )
    # Checked after the caps, so that "too big" does not pass as "corrupt".
    if zlib.crc32(body) != info.CRC:
        raise UnreadablePackage(ReasonCode.ZIP_CORRUPT, "an entry fails its CRC-32 check")
    return body


def _inflate_deflate(compressed: memoryview, info: zipfile.ZipInfo, limits: ZipLimits, before: int) -> bytes:
    # Raw deflate, as zipfile reads it: output in chunks of at most _CHUNK so that the caps are
    # overshot by at most that much; bytes after the end of the deflate stream are ignored, and a
    # stream cut short ends where the input ends (the length and CRC checks then refuse it).
    # A BytesIO, not a bytearray: getvalue() hands over its buffer as the entry's bytes without a
    # copy (CPython), so an entry is held once, not twice, at the end of its inflation.
    # The input goes in pieces of at most _CHUNK too: zlib's unconsumed_tail is a copy of the rest
    # of the input, so handing over the whole entry at once would copy it again on every step.
    inflater = zlib.decompressobj(-zlib.MAX_WBITS)
    body = io.BytesIO()
    position = 0
    while True:
        pending: bytes | memoryview = inflater.unconsumed_tail
        if not pending:
            pending = compressed[position:position + _CHUNK]
            position += len(pending)
        body.write(inflater.decompress(pending, _CHUNK))
        done = inflater.eof or (not inflater.unconsumed_tail and position >= len(compressed))
        if done:
            body.write(inflater.flush())
        if before + body.tell() > limits.max_total_uncompressed:
            raise UnreadablePackage(
                ReasonCode.ZIP_BOMB, f"entries inflate to more than {limits.max_total_uncompressed} bytes")
        if _ratio_exceeded(body.tell(), info.compress_size, limits):
            raise UnreadablePackage(ReasonCode.ZIP_BOMB, f"an entry inflates at a ratio over {limits.max_ratio}")
        if done:
            return body.getvalue()
