"""The one hardened XML parser of the project.

Every XML document that crosses a zone (manifest, arrival record, form, portal answers) is parsed
here: no DTD (a document with a DOCTYPE is refused whatever it declares, package-format.md §2), no
entity expansion, no network, no huge-tree mode, and a byte limit checked before parsing.
"""

from __future__ import annotations

from lxml import etree

from signature.errors import UnreadablePackage
from signature.report import ReasonCode

__all__ = ["DEFAULT_MAX_XML_BYTES", "parse_xml"]

DEFAULT_MAX_XML_BYTES = 10 * 1024 * 1024


def _parser() -> etree.XMLParser:
    # A parser instance is not safe to share between threads; creating one is cheap.
    return etree.XMLParser(
        resolve_entities=False,
        no_network=True,
        load_dtd=False,
        dtd_validation=False,
        huge_tree=False,
        remove_blank_text=False,
        remove_comments=False,
        remove_pis=False,
        strip_cdata=False,
        collect_ids=True,
    )


def parse_xml(data: bytes, *, max_bytes: int = DEFAULT_MAX_XML_BYTES) -> etree._Element:
    """Parse ``data`` as a standalone XML document and return its root element.

    Raises :class:`UnreadablePackage` with ``XML_TOO_LARGE``, ``XML_DTD`` or ``XML_MALFORMED``.
    """
    if len(data) > max_bytes:
        raise UnreadablePackage(ReasonCode.XML_TOO_LARGE, f"XML document over {max_bytes} bytes")
    try:
        root = etree.fromstring(data, parser=_parser())
    except etree.XMLSyntaxError as exc:
        # libxml2 may stop at an entity amplification before we could see the DOCTYPE: name the
        # real reason either way.
        if b"<!DOCTYPE" in data:
            raise UnreadablePackage(ReasonCode.XML_DTD, "document has a DOCTYPE") from exc
        raise UnreadablePackage(ReasonCode.XML_MALFORMED, f"not well-formed XML (line {exc.lineno})") from exc
    doc = root.getroottree()
    # A DOCTYPE is refused even when it declares nothing: internal subsets carry entity bombs and
    # external ones are network access; legitimate packages never have one.
    if doc.docinfo.doctype or doc.docinfo.internalDTD is not None or doc.docinfo.externalDTD is not None:
        raise UnreadablePackage(ReasonCode.XML_DTD, "document has a DOCTYPE")
    if next(root.iter(etree.Entity), None) is not None:
        raise UnreadablePackage(ReasonCode.XML_DTD, "document references an undeclared entity")
    return root
