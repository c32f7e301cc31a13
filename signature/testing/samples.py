"""Sample application content: a form with My Numbers, small real attachments, whole specs."""

from __future__ import annotations

import random
import struct
import zlib
from datetime import datetime
from typing import Literal

from lxml import etree

from signature.identity import encode_era_date
from signature.mynumber import check_digit
from signature.testing.builder import Applicant, ApplicationSpec, Attachment
from signature.testing.pki import Resident

__all__ = [
    "FORM_NAMESPACE",
    "FORM_STYLES",
    "MY_NUMBER_NAMESPACE",
    "FormStyle",
    "make_my_number",
    "namespaced_form",
    "sample_form",
    "sample_pdf",
    "sample_png",
    "sample_spec",
]

#: Namespaces the namespaced form styles use (e-Gov forms carry their own; these are examples).
FORM_NAMESPACE = "urn:example:shinsei:form:jidoteate:1"
MY_NUMBER_NAMESPACE = "urn:example:shinsei:mynumber:1"
OTHER_NAMESPACE = "urn:example:shinsei:household:1"

#: How a form writes its element names:
#: ``none`` — no namespace; ``default`` — one default namespace on the document element;
#: ``prefixed`` — every element with the prefix ``f:``; ``mixed`` — a default namespace, and every
#: 個人番号 in a second namespace with the prefix ``mn:``; ``redeclared`` — a default namespace that
#: each child group (児童) declares anew as another namespace.
FormStyle = Literal["none", "default", "prefixed", "mixed", "redeclared"]
FORM_STYLES: tuple[FormStyle, ...] = ("none", "default", "prefixed", "mixed", "redeclared")


def make_my_number(rng: random.Random) -> str:
    """A 12-digit number with a correct check digit (fictitious; not issued to anyone)."""
    body = "".join(str(rng.randrange(10)) for _ in range(11))
    return body + str(check_digit(body))


def sample_pdf(title: str = "sample") -> bytes:
    """A tiny, valid one-page PDF."""
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 595 842] /Contents 4 0 R >>",
    ]
    stream = f"BT /F1 12 Tf 72 770 Td ({title}) Tj ET".encode("ascii", "replace")
    objects.append(b"<< /Length %d >>\nstream\n" % len(stream) + stream + b"\nendstream")
    out = bytearray(b"%PDF-1.4\n")
    offsets = []
    for i, body in enumerate(objects, start=1):
        offsets.append(len(out))
        out += b"%d 0 obj\n" % i + body + b"\nendobj\n"
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    out += b"".join(b"%010d 00000 n \n" % o for o in offsets)
    out += b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (len(objects) + 1, xref)
    return bytes(out)


def sample_png(width: int = 4, height: int = 4) -> bytes:
    """A tiny, valid grey PNG."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    raw = b"".join(b"\x00" + b"\x80" * width for _ in range(height))
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b""))


def _era_group(parent: etree._Element, tag: str, code: str) -> None:
    eras = {"1": "明治", "2": "大正", "3": "昭和", "4": "平成", "5": "令和"}
    starts = {"1": 1867, "2": 1911, "3": 1925, "4": 1988, "5": 2018}
    group = etree.SubElement(parent, tag)
    year = int(code[1:5])
    etree.SubElement(group, "年号").text = eras[code[0]]
    etree.SubElement(group, "年").text = str(year - starts[code[0]])
    etree.SubElement(group, "月").text = str(int(code[5:7]))
    etree.SubElement(group, "日").text = str(int(code[7:9]))


def sample_form(resident: Resident, rng: random.Random, *, children: int = 1) -> bytes:
    """A 児童手当 認定請求 form (e-Gov style): Japanese names, era dates, empty unanswered fields,
    one 個人番号 for the applicant and one per child."""
    root = etree.Element("DataRoot")
    etree.SubElement(root, "様式ID").text = "JIDOTEATE-01"
    etree.SubElement(root, "様式バージョン").text = "0001"
    body = etree.SubElement(root, "児童手当認定請求書")
    applicant = etree.SubElement(body, "請求者")
    etree.SubElement(applicant, "氏名").text = resident.name
    etree.SubElement(applicant, "氏名フリガナ").text = resident.name_kana
    _era_group(applicant, "生年月日", encode_era_date(resident.birth_date))
    etree.SubElement(applicant, "個人番号").text = make_my_number(rng)
    etree.SubElement(applicant, "住所").text = resident.address
    etree.SubElement(applicant, "職業")  # unanswered
    for i in range(children):
        child = etree.SubElement(body, "児童")
        etree.SubElement(child, "氏名").text = resident.name.split("\u3000")[0] + "\u3000" + ["太郎", "花", "蓮"][i % 3]
        _era_group(child, "生年月日", "520220401")
        etree.SubElement(child, "個人番号").text = make_my_number(rng)
        etree.SubElement(child, "続柄").text = "子"
    etree.SubElement(body, "備考")
    return etree.tostring(root, xml_declaration=True, encoding="UTF-8")


def namespaced_form(form: bytes, style: FormStyle) -> bytes:
    """``form`` (without namespaces) with its element names written in ``style`` (:data:`FormStyle`):
    the same fields and values, as different portals and form generators write them."""
    if style == "none":
        return form
    source = etree.fromstring(form, parser=etree.XMLParser(resolve_entities=False, no_network=True))
    maps: dict[str, dict[str | None, str]] = {
        "default": {None: FORM_NAMESPACE}, "prefixed": {"f": FORM_NAMESPACE},
        "mixed": {None: FORM_NAMESPACE, "mn": MY_NUMBER_NAMESPACE}, "redeclared": {None: FORM_NAMESPACE},
    }
    nsmap = maps[style]

    def name(el: etree._Element, namespace: str) -> str:
        local = str(el.tag)
        if style == "mixed" and local == "個人番号":
            namespace = MY_NUMBER_NAMESPACE
        return f"{{{namespace}}}{local}"

    def copy(el: etree._Element, parent: etree._Element | None, namespace: str) -> etree._Element:
        if style == "redeclared" and el.tag == "児童":
            namespace = OTHER_NAMESPACE
            new = etree.SubElement(parent, name(el, namespace), nsmap={None: namespace}) if parent is not None \
                else etree.Element(name(el, namespace))
        elif parent is None:
            new = etree.Element(name(el, namespace), nsmap=nsmap)
        else:
            new = etree.SubElement(parent, name(el, namespace))
        new.text, new.tail = el.text, el.tail
        for child in el:
            if isinstance(child.tag, str):
                copy(child, new, namespace)
        return new

    return etree.tostring(copy(source, None, FORM_NAMESPACE), xml_declaration=True, encoding="UTF-8")


def sample_spec(
    resident: Resident, rng: random.Random, *, receipt_number: str, arrived_at: datetime,
    user_cert_serial: str, kind: str = "新規申請", first_receipt_number: str | None = None,
    form_style: FormStyle = "none", applicant_my_number: str | None = None,
    applicant_my_number_namespace: str | None = None,
) -> ApplicationSpec:
    """A whole 児童手当 application with a PDF and a PNG attachment (Japanese file names).
    ``form_style``: how the form names its elements (:data:`FormStyle`); ``applicant_my_number``: a
    個人番号 in kousei.xml's 申請者情報 too (in ``applicant_my_number_namespace`` if given)."""
    return ApplicationSpec(
        receipt_number=receipt_number,
        arrived_at=arrived_at,
        procedure_id="KOSODATE-JIDOTEATE-NINTEI",
        procedure_name="児童手当 認定請求",
        form_file="JIDOTEATE-01_01.xml",
        form_xml=namespaced_form(sample_form(resident, rng), form_style),
        applicant=Applicant(
            name=resident.name, name_kana=resident.name_kana, postal_code="1058511",
            address=resident.address, phone="03-3578-2111", email="resident@example.jp",
            my_number=applicant_my_number, my_number_namespace=applicant_my_number_namespace,
        ),
        user_cert_serial=user_cert_serial,
        attachments=(
            Attachment("健康保険証の写し", "保険証.pdf", sample_pdf("insurance card")),
            Attachment("振込先口座の写し", "口座確認.png", sample_png()),
        ),
        kind=kind,
        first_receipt_number=first_receipt_number,
        form_id="JIDOTEATE-01",
    )
