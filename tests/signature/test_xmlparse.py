"""The one hardened parser refuses DTDs, entities and oversized input; attack samples."""

from __future__ import annotations

import pytest

from signature.errors import UnreadablePackage
from signature.report import ReasonCode
from signature.xmlparse import parse_xml

BILLION_LAUGHS = b"""<?xml version="1.0"?>
<!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
<!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">]><lolz>&lol3;</lolz>"""
XXE_FILE = b"""<?xml version="1.0"?><!DOCTYPE r [<!ENTITY x SYSTEM "file:///etc/passwd">]><r>&x;</r>"""
XXE_NETWORK = b"""<?xml version="1.0"?><!DOCTYPE r [<!ENTITY x SYSTEM "http://127.0.0.1:9/x">]><r>&x;</r>"""
PARAMETER_ENTITY = b"""<?xml version="1.0"?><!DOCTYPE r [<!ENTITY % p SYSTEM "file:///etc/passwd"> %p;]><r/>"""
EXTERNAL_DTD = b"""<?xml version="1.0"?><!DOCTYPE r SYSTEM "file:///etc/passwd"><r/>"""
EMPTY_DOCTYPE = b"""<?xml version="1.0"?><!DOCTYPE r><r/>"""
QUADRATIC = b"<?xml version='1.0'?><!DOCTYPE r [<!ENTITY a '" + b"x" * 10000 + b"'>]><r>" + b"&a;" * 1000 + b"</r>"


@pytest.mark.parametrize(
    ("data", "code"),
    [
        pytest.param(BILLION_LAUGHS, ReasonCode.XML_DTD, id="billion-laughs"),
        pytest.param(XXE_FILE, ReasonCode.XML_DTD, id="xxe-file"),
        pytest.param(XXE_NETWORK, ReasonCode.XML_DTD, id="xxe-network"),
        pytest.param(PARAMETER_ENTITY, ReasonCode.XML_DTD, id="parameter-entity"),
        pytest.param(EXTERNAL_DTD, ReasonCode.XML_DTD, id="external-dtd"),
        pytest.param(EMPTY_DOCTYPE, ReasonCode.XML_DTD, id="empty-doctype"),
        pytest.param(QUADRATIC, ReasonCode.XML_DTD, id="quadratic-blowup"),
        pytest.param(b"<r>&undeclared;</r>", ReasonCode.XML_MALFORMED, id="undeclared-entity"),
        pytest.param(b"<r><a></r>", ReasonCode.XML_MALFORMED, id="unclosed"),
        pytest.param(b"", ReasonCode.XML_MALFORMED, id="empty"),
        pytest.param(b"\xff\xfe<r/>", ReasonCode.XML_MALFORMED, id="bad-encoding"),
    ],
)
def test_refused(data: bytes, code: ReasonCode) -> None:
    with pytest.raises(UnreadablePackage) as info:
        parse_xml(data)
    assert info.value.code is code


def test_size_limit_checked_before_parsing() -> None:
    with pytest.raises(UnreadablePackage) as info:
        parse_xml(b"<r>" + b"x" * 2000 + b"</r>", max_bytes=1000)
    assert info.value.code is ReasonCode.XML_TOO_LARGE


def test_passwd_never_appears() -> None:
    # Whatever the parser decides, the content of a local file must not come back.
    for data in (XXE_FILE, PARAMETER_ENTITY, EXTERNAL_DTD):
        with pytest.raises(UnreadablePackage) as info:
            parse_xml(data)
        assert "root:" not in str(info.value)


@pytest.mark.parametrize(
    ("data", "text"),
    [
        pytest.param("<r>申請</r>".encode(), "申請", id="utf-8"),
        pytest.param('<?xml version="1.0" encoding="Shift_JIS"?><r>申請</r>'.encode("cp932"), "申請", id="shift-jis"),
        pytest.param(b"<r>&amp;&#x7533;</r>", "&申", id="predefined-and-character-references"),
        pytest.param(b"<r><![CDATA[<b>]]></r>", "<b>", id="cdata"),
    ],
)
def test_accepted(data: bytes, text: str) -> None:
    assert parse_xml(data).text == text
