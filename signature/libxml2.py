"""lxml and python-xmlsec must share one libxml2; say so clearly when they do not.

lxml canonicalises and parses; python-xmlsec works on documents that lxml built (the tests'
independent plain verifier, the benchmark; it checked the verifier's signature values until
issue 19). Both wheels carry their own copy of libxml2, and a document built by one copy and read
by another crashes or misbehaves deep inside verification. python-xmlsec (>= 1.3.14) refuses to import when the
two differ in major.minor, with a message that names neither version; a patch-level difference passes
its check silently. :func:`load_xmlsec` turns both cases into :class:`LibxmlMismatch`, which names
the two versions and what to do. :mod:`signature.algorithms` calls it before the package's first
``import xmlsec`` (tests/signature/test_libxml2.py runs the services' entry points against a real
mismatched lxml to keep it so).

This module imports nothing of :mod:`signature` so that the check runs before anything else of the
package needs xmlsec. :class:`LibxmlMismatch` is an :class:`ImportError` whose ``name`` is
``"xmlsec"``: the services' ``__main__`` modules turn any ImportError of xmlsec into one line.
"""

from __future__ import annotations

import importlib
from importlib import metadata
from types import ModuleType

from lxml import etree

__all__ = ["LibxmlMismatch", "load_xmlsec", "version_text"]


class LibxmlMismatch(ImportError):
    """lxml and python-xmlsec are not built against the same libxml2 (or xmlsec cannot load)."""

    def __init__(self, message: str) -> None:
        super().__init__(message, name="xmlsec")


def version_text(version: tuple[int, ...]) -> str:
    return ".".join(str(part) for part in version)


def _distribution(name: str) -> str:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return "not installed"


def _advice() -> str:
    return (f"lxml {_distribution('lxml')} uses libxml2 {version_text(etree.LIBXML_VERSION)}; install the lxml "
            f"and xmlsec versions of the lock file (make install), whose wheels share one libxml2")


def load_xmlsec() -> ModuleType:
    """Import python-xmlsec, refusing a libxml2 other than lxml's (exactly, not only major.minor)."""
    try:
        xmlsec = importlib.import_module("xmlsec")
    except ImportError as exc:
        raise LibxmlMismatch(f"python-xmlsec cannot be imported ({exc}); {_advice()}") from exc
    except Exception as exc:
        raise LibxmlMismatch(
            f"xmlsec {_distribution('xmlsec')} refuses lxml's libxml2 ({exc}); {_advice()}") from exc
    xmlsec_version = tuple(xmlsec.get_libxml_version())
    if xmlsec_version != tuple(etree.LIBXML_VERSION):
        raise LibxmlMismatch(
            f"xmlsec {_distribution('xmlsec')} uses libxml2 {version_text(xmlsec_version)} but {_advice()}")
    return xmlsec
