"""What a business system receives for one outbox item, as JSON or XML (docs/intake.md).

The payload is built afresh for every attempt from the stored data and never stored itself, so no
copy of the form, attachments or My Numbers sits in the outbox. Built from the same rows it is
byte-identical on every attempt; only later changes (a 宛名番号 linked meanwhile) change it.

Every build writes an access-log row (the machine reads personal data to pass it on); a route that
is ``my_number_entitled`` also reads each My Number through the one gate,
:func:`intake.mynumbers.service.reveal_my_number`, which logs each read. Other routes get the form
with every 個人番号 emptied, as stored, and no My Number anywhere.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol
from urllib.parse import quote

from lxml import etree
from sqlalchemy import select
from sqlalchemy.orm import Session

from intake.accesslog.service import append_access
from intake.authz import REVEAL_PERMISSION, Actor
from intake.crypto import CryptoError, Sealer
from intake.forwarding.errors import PayloadError
from intake.forwarding.routes import Route
from intake.jst import JST
from intake.models import ApplicationVersion, MyNumberRow
from intake.mynumbers.service import reveal_my_number
from intake.sealing import open_attachment
from signature.errors import UnreadablePackage
from signature.xmlparse import parse_xml

__all__ = ["SCHEMA", "SYSTEM_STAFF_ID", "ForwardingRuntime", "Payload", "build_payload", "drop_file_name"]

SCHEMA = "shinsei-forward/1"
SYSTEM_STAFF_ID = "system:forwarding"
_MEDIA_TYPES = {"json": "application/json; charset=utf-8", "xml": "application/xml; charset=utf-8"}


class ForwardingRuntime(Protocol):
    """What forwarding needs of :class:`intake.runtime.Runtime` (which satisfies it): the routes and
    the keys that open attachments and My Numbers. Forwarding does not import the runtime, which is
    built from forwarding's own route configuration."""

    @property
    def routes(self) -> Sequence[Route]: ...

    @property
    def package_sealer(self) -> Sealer: ...

    @property
    def my_number_sealer(self) -> Sealer: ...


@dataclass(frozen=True)
class Payload:
    """The bytes to send and their media type. ``repr`` never shows the body (personal data)."""

    body: bytes
    media_type: str
    file_name: str
    my_numbers: int  # how many My Numbers the body carries (0 for non-entitled routes)

    def __repr__(self) -> str:
        return f"Payload(media_type={self.media_type!r}, file_name={self.file_name!r}, bytes={len(self.body)}, " \
               f"my_numbers={self.my_numbers})"


def drop_file_name(idempotency_key: str, fmt: str) -> str:
    """File name of a file drop: the idempotency key, percent-encoded (injective, no separators)."""
    return quote(idempotency_key, safe="-_.") + "." + fmt


def _system_actor(route: Route) -> Actor:
    permissions = frozenset({REVEAL_PERMISSION}) if route.my_number_entitled else frozenset()
    return Actor(staff_id=SYSTEM_STAFF_ID, department="system", terminal=route.name, permissions=permissions)


def build_payload(
    session: Session, runtime: ForwardingRuntime, *, version_id: int, idempotency_key: str, route: Route, at: datetime
) -> Payload:
    """Build the payload of ``version_id`` for ``route`` and write the access-log rows in ``session``.

    The caller commits ``session`` *before* the payload leaves the process, so that the log of the
    read exists whatever happens next. Raises :class:`PayloadError`.
    """
    version = session.get(ApplicationVersion, version_id)
    if version is None:
        raise PayloadError(f"version {version_id} does not exist", code="VERSION_MISSING")
    app = version.application
    actor = _system_actor(route)
    append_access(session, actor=actor, at=at, action="forwarding.read", subject=f"version:{version.id}",
                  reason=f"転送 (route {route.name})", atena_number=app.atena_number)
    attachments = []
    for att in sorted(version.attachments, key=lambda a: a.id):
        if att.role != "attachment":
            continue  # the form travels masked, never as its original (My-Number-bearing) bytes
        if att.malware_flagged:
            # Never forwarded: the business system gets the application with a clear marker instead.
            attachments.append({"file_name": att.name, "media_type": att.media_type, "size": att.size,
                                "sha256": att.sha256, "malware_flagged": True, "withheld": True, "data": None})
            continue
        try:
            data = open_attachment(runtime.package_sealer, att.id, att.data)
        except CryptoError as exc:
            raise PayloadError(f"attachment {att.id} cannot be opened", code="ATTACHMENT_UNREADABLE") from exc
        attachments.append({"file_name": att.name, "media_type": att.media_type, "size": att.size,
                            "sha256": att.sha256, "malware_flagged": False, "withheld": False, "data": data})
    my_numbers: list[dict[str, Any]] | None = None
    if route.my_number_entitled:
        my_numbers = []
        rows = session.scalars(select(MyNumberRow).where(MyNumberRow.version_id == version.id)
                               .order_by(MyNumberRow.position)).all()
        for row in rows:
            try:
                value = reveal_my_number(session, actor=actor, version_id=version.id, position=row.position,
                                         reason=f"転送 (route {route.name}, my_number_entitled)", at=at,
                                         sealer=runtime.my_number_sealer, atena_number=app.atena_number)
            except CryptoError as exc:
                raise PayloadError(f"My Number {row.position} of version {version.id} cannot be opened",
                                   code="MY_NUMBER_UNREADABLE") from exc
            my_numbers.append({"position": row.position, "source": row.source, "path": row.path,
                               "valid_check_digit": row.valid_check_digit, "value": value})
    meta = {
        "receipt_number": version.receipt_number,
        "first_receipt_number": app.first_receipt_number,
        "application_kind": version.kind,
        "procedure_id": app.procedure_id,
        "procedure_name": app.procedure_name,
        "arrived_at": version.arrived_at.astimezone(JST).isoformat(),
        "atena_number": app.atena_number,
    }
    if route.format == "json":
        body = _json_body(idempotency_key, route, meta, version, attachments, my_numbers)
    else:
        body = _xml_body(idempotency_key, route, meta, version, attachments, my_numbers)
    return Payload(body=body, media_type=_MEDIA_TYPES[route.format],
                   file_name=drop_file_name(idempotency_key, route.format),
                   my_numbers=len(my_numbers) if my_numbers else 0)


def _json_body(
    key: str, route: Route, meta: dict[str, Any], version: ApplicationVersion, attachments: list[dict[str, Any]],
    my_numbers: list[dict[str, Any]] | None,
) -> bytes:
    doc: dict[str, Any] = {
        "schema": SCHEMA,
        "idempotency_key": key,
        "route": route.name,
        "application": meta,
        "form": {"file_name": version.form_file, "xml": version.form_xml},
        "attachments": [{**{k: v for k, v in a.items() if k != "data"},
                         "data_base64": None if a["data"] is None else base64.b64encode(a["data"]).decode("ascii")}
                        for a in attachments],
        "malware_withheld": sum(1 for a in attachments if a["withheld"]),
    }
    if my_numbers is not None:
        doc["my_numbers"] = my_numbers
    return json.dumps(doc, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


def _xml_body(
    key: str, route: Route, meta: dict[str, Any], version: ApplicationVersion, attachments: list[dict[str, Any]],
    my_numbers: list[dict[str, Any]] | None,
) -> bytes:
    root = etree.Element("forwarded_application", schema=SCHEMA)
    etree.SubElement(root, "idempotency_key").text = key
    etree.SubElement(root, "route").text = route.name
    app_el = etree.SubElement(root, "application")
    for name, value in meta.items():
        if value is not None:  # an unlinked 宛名番号 is absent, not empty
            etree.SubElement(app_el, name).text = str(value)
    form_el = etree.SubElement(root, "form", file_name=version.form_file)
    try:
        form_el.append(parse_xml(version.form_xml.encode("utf-8")))
    except UnreadablePackage as exc:  # the stored form was written by us from verified bytes
        raise PayloadError(f"stored form of version {version.id} does not parse", code="FORM_UNREADABLE") from exc
    if my_numbers is not None:
        numbers_el = etree.SubElement(root, "my_numbers")
        for n in my_numbers:
            etree.SubElement(numbers_el, "my_number", position=str(n["position"]), source=n["source"], path=n["path"],
                             valid_check_digit="true" if n["valid_check_digit"] else "false").text = n["value"]
    atts_el = etree.SubElement(root, "attachments")
    for a in attachments:
        el = etree.SubElement(atts_el, "attachment", file_name=a["file_name"], media_type=a["media_type"],
                              size=str(a["size"]), sha256=a["sha256"],
                              malware_flagged="true" if a["malware_flagged"] else "false",
                              withheld="true" if a["withheld"] else "false")
        if a["data"] is not None:
            el.text = base64.b64encode(a["data"]).decode("ascii")
    etree.SubElement(root, "malware_withheld").text = str(sum(1 for a in attachments if a["withheld"]))
    return bytes(etree.tostring(root, xml_declaration=True, encoding="UTF-8"))
