"""Take a built package apart, change exactly one thing, and put it back together.

Used by ``test_vectors.py``. Each helper changes what its name says and nothing else; when a change
to ``kousei.xml`` would also break the portal's 到達情報 (its 構成情報ダイジェスト covers kousei.xml's
raw bytes), :meth:`Unpacked.reissue_arrival` writes a fresh 到達情報 for the changed bytes and signs
it with the portal key (through the builder's own :func:`arrival_document` / :func:`sign_arrival`),
so that a test isolates the one check it is about.
"""

from __future__ import annotations

import base64
import io
import struct
import zipfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from typing import Any
from urllib.parse import unquote

import xmlsec
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from lxml import etree

from signature.package import ARRIVAL_FILE, MANIFEST_FILE, MANIFEST_ID
from signature.testing.builder import ApplicationSpec, arrival_document, sign_arrival, zip_package
from signature.testing.pki import Issued
from signature.xmldsig import DSIG_NS

__all__ = [
    "ARRIVAL_FILE",
    "MANIFEST_FILE",
    "Unpacked",
    "b64_flip",
    "declare_size",
    "ds",
    "edit_xml",
    "flip_byte",
    "flip_signature_value",
    "key_value_only",
    "manifest_element",
    "replace_once",
    "unpack",
    "with_doctype",
    "xmlsec_plain_verify",
]

_UTF8_FLAG = 0x800
XmlEdit = Callable[[etree._Element], None]


def ds(local: str) -> str:
    """Clark name of an XMLDSig element."""
    return f"{{{DSIG_NS}}}{local}"


@dataclass
class Unpacked:
    """The entries of a package, in ZIP order, with names relative to its top-level folder."""

    entries: list[tuple[str, bytes]]
    folder: str | None = None
    cp932_names: bool = False

    def names(self) -> list[str]:
        return [name for name, _ in self.entries]

    def __contains__(self, name: object) -> bool:
        return name in self.names()

    def __getitem__(self, name: str) -> bytes:
        for entry_name, data in self.entries:
            if entry_name == name:
                return data
        raise KeyError(name)

    def __setitem__(self, name: str, data: bytes) -> None:
        """Replace the entry ``name`` in place (or append it if there is none)."""
        for i, (entry_name, _) in enumerate(self.entries):
            if entry_name == name:
                self.entries[i] = (name, data)
                return
        self.entries.append((name, data))

    def add(self, name: str, data: bytes) -> None:
        if name in self:
            raise ValueError(f"{name!r} is already in the package")
        self.entries.append((name, data))

    def remove(self, name: str) -> None:
        if name not in self:
            raise KeyError(name)
        self.entries = [(n, d) for n, d in self.entries if n != name]

    def edit(self, name: str, change: Callable[[bytes], bytes]) -> None:
        before = self[name]
        after = change(before)
        if after == before:
            raise AssertionError(f"the edit of {name!r} changed nothing")
        self[name] = after

    def edit_xml(self, name: str, change: XmlEdit) -> None:
        self.edit(name, lambda data: edit_xml(data, change))

    def files(self) -> dict[str, bytes]:
        """The form and attachments: every entry but kousei.xml and 到達情報.xml."""
        return {n: d for n, d in self.entries if n not in (MANIFEST_FILE, ARRIVAL_FILE)}

    def reissue_arrival(
        self,
        spec: ApplicationSpec,
        portal: Issued,
        *,
        for_kousei: bytes | None = None,
        edit: XmlEdit | None = None,
        **spec_changes: Any,
    ) -> None:
        """Write a new 到達情報.xml signed by ``portal`` for the current kousei.xml.

        ``for_kousei`` issues it for other bytes (a digest mismatch), ``spec_changes`` change what it
        says (``procedure_id=…``), ``edit`` changes the document before it is signed.
        """
        kousei = self[MANIFEST_FILE] if for_kousei is None else for_kousei
        root = arrival_document(replace(spec, **spec_changes) if spec_changes else spec, kousei)
        if edit is not None:
            edit(root)
        self[ARRIVAL_FILE] = sign_arrival(root, portal)

    def zip(
        self,
        *,
        compression: int = zipfile.ZIP_DEFLATED,
        folder: str | bool | None = True,
        cp932_names: bool | None = None,
    ) -> bytes:
        """Re-zip with :func:`zip_package`; ``folder=True`` keeps the original folder."""
        return zip_package(
            self.entries,
            folder=self.folder if folder is True else (folder or None),
            cp932_names=self.cp932_names if cp932_names is None else cp932_names,
            compression=compression,
        )


def unpack(package: bytes) -> Unpacked:
    """The entries of a package made by the builder (UTF-8 or CP932 names, at most one folder)."""
    entries: list[tuple[str, bytes]] = []
    folders: set[str] = set()
    cp932 = False
    # metadata_encoding applies only to names without the UTF-8 flag: exactly the CP932 ones.
    with zipfile.ZipFile(io.BytesIO(package), metadata_encoding="cp932") as zf:
        for info in zf.infolist():
            if info.is_dir():
                continue
            if not info.flag_bits & _UTF8_FLAG and not info.filename.isascii():
                cp932 = True
            name = info.filename
            if "/" in name:
                folder, name = name.split("/", 1)
                folders.add(folder)
            entries.append((name, zf.read(info)))
    if len(folders) > 1:
        raise ValueError("the package has more than one folder")
    return Unpacked(entries, next(iter(folders), None), cp932)


def edit_xml(data: bytes, change: XmlEdit) -> bytes:
    """Parse (our own test bytes), let ``change`` modify the tree, serialise as UTF-8."""
    root = etree.fromstring(data)
    change(root)
    return etree.tostring(root.getroottree(), xml_declaration=True, encoding="UTF-8")


def replace_once(data: bytes, old: bytes | str, new: bytes | str) -> bytes:
    """``data`` with the single occurrence of ``old`` replaced by ``new``."""
    o = old.encode("utf-8") if isinstance(old, str) else old
    n = new.encode("utf-8") if isinstance(new, str) else new
    count = data.count(o)
    if count != 1:
        raise AssertionError(f"{o!r} occurs {count} times, expected once")
    return data.replace(o, n)


def flip_byte(data: bytes, index: int) -> bytes:
    """``data`` with the lowest bit of the byte at ``index`` flipped."""
    out = bytearray(data)
    out[index] ^= 0x01
    return bytes(out)


def with_doctype(xml: bytes, doctype: bytes) -> bytes:
    """``xml`` with ``doctype`` inserted right after the XML declaration."""
    if not xml.startswith(b"<?xml"):
        return doctype + b"\n" + xml
    end = xml.index(b"?>") + 2
    return xml[:end] + b"\n" + doctype + xml[end:]


def b64_flip(text: str) -> str:
    """Base64 ``text`` with one bit flipped in the middle of the bytes it encodes."""
    raw = base64.b64decode("".join(text.split()), validate=True)
    return base64.b64encode(flip_byte(raw, len(raw) // 2)).decode("ascii")


def flip_signature_value(root: etree._Element) -> None:
    """Flip one bit in the middle of the (single) ds:SignatureValue."""
    (value_el,) = root.iter(ds("SignatureValue"))
    value_el.text = b64_flip(value_el.text or "")


_LOCAL_SIG, _CENTRAL_SIG, _EOCD_SIG = b"PK\x03\x04", b"PK\x01\x02", b"PK\x05\x06"


def declare_size(package: bytes, name: str, size: int) -> bytes:
    """``package`` with the uncompressed size of entry ``name`` declared as ``size`` in its local
    header and its central-directory record (a lying header; CRC and data are left alone)."""
    out = bytearray(package)
    eocd = package.rindex(_EOCD_SIG)
    count, _, cd_offset = struct.unpack_from("<HLL", package, eocd + 10)
    pos = cd_offset
    for _ in range(count):
        assert package.startswith(_CENTRAL_SIG, pos)
        name_len, extra_len, comment_len = struct.unpack_from("<HHH", package, pos + 28)
        (local,) = struct.unpack_from("<L", package, pos + 42)
        if package[pos + 46:pos + 46 + name_len].decode("utf-8") == name:
            assert package.startswith(_LOCAL_SIG, local)
            struct.pack_into("<L", out, pos + 24, size)  # central record: uncompressed size
            struct.pack_into("<L", out, local + 22, size)  # local header: uncompressed size
            return bytes(out)
        pos += 46 + name_len + extra_len + comment_len
    raise KeyError(name)


def key_value_only(root: etree._Element, key: rsa.RSAPrivateKey) -> None:
    """Replace KeyInfo's content with a bare ds:KeyValue/ds:RSAKeyValue of ``key`` (no certificate)."""
    (key_info,) = root.iter(ds("KeyInfo"))
    for child in list(key_info):
        key_info.remove(child)
    numbers = key.public_key().public_numbers()

    def b64int(n: int) -> str:
        return base64.b64encode(n.to_bytes((n.bit_length() + 7) // 8, "big")).decode("ascii")

    rsa_value = etree.SubElement(etree.SubElement(key_info, ds("KeyValue")), ds("RSAKeyValue"))
    etree.SubElement(rsa_value, ds("Modulus")).text = b64int(numbers.n)
    etree.SubElement(rsa_value, ds("Exponent")).text = b64int(numbers.e)


# -- python-xmlsec's own verify(), as a library user would call it ------------------------------


class _Reader:
    def __init__(self, data: bytes) -> None:
        self._stream = io.BytesIO(data)

    def read(self, buf: Any) -> int:
        return self._stream.readinto(buf)


def xmlsec_plain_verify(
    kousei: bytes, files: Mapping[str, bytes], key: x509.Certificate | rsa.RSAPublicKey
) -> bool:
    """python-xmlsec's plain ``verify()`` of the first ds:Signature in ``kousei`` with ``key`` (the
    signer certificate, or a bare public key).

    What a naive integration does (pitfalls.md): register the ``ID`` attribute, serve the detached
    files from memory (percent-decoded names, nothing from disk), and call ``verify()``. It says
    nothing about *which* nodes the references resolved to. Callbacks are restored afterwards.
    """
    root = etree.fromstring(kousei)
    xmlsec.tree.add_ids(root, ["ID"])
    signature = xmlsec.tree.find_node(root, xmlsec.constants.NodeSignature)
    if signature is None:
        raise AssertionError("no ds:Signature")

    def name_of(uri: bytes) -> str:
        return unquote(uri.decode("utf-8"), encoding="utf-8")

    def match(uri: bytes) -> bool:
        return name_of(uri) in files

    def open_(uri: bytes) -> _Reader:
        return _Reader(files[name_of(uri)])

    def read(reader: _Reader, buf: Any) -> int:
        return reader.read(buf)

    def close(_reader: _Reader) -> None:
        return None

    ctx = xmlsec.SignatureContext()
    if isinstance(key, x509.Certificate):
        ctx.key = xmlsec.Key.from_memory(key.public_bytes(Encoding.PEM), xmlsec.constants.KeyDataFormatCertPem, None)
    else:
        pem = key.public_bytes(Encoding.PEM, PublicFormat.SubjectPublicKeyInfo)
        ctx.key = xmlsec.Key.from_memory(pem, xmlsec.constants.KeyDataFormatPem, None)
    xmlsec.cleanup_callbacks()
    xmlsec.register_callbacks(match, open_, read, close)
    try:
        ctx.verify(signature)
    except xmlsec.Error:
        return False
    finally:
        xmlsec.cleanup_callbacks()
        xmlsec.register_default_callbacks()
    return True


def manifest_element(root: etree._Element) -> etree._Element:
    """The signed ``DataRoot/構成情報`` of a kousei.xml tree."""
    found = root.find(MANIFEST_ID)
    if found is None:
        raise AssertionError("no DataRoot/構成情報")
    return found
