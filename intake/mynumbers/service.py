"""Extract every 個人番号 from a verified form; store them encrypted; reveal one with a logged reason."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from lxml import etree
from sqlalchemy import select
from sqlalchemy.orm import Session

from intake.accesslog.service import Actor, append_access
from intake.crypto import Sealer
from intake.errors import NotFound, PermissionDenied
from intake.models import ApplicationVersion, MyNumberRow
from signature.mynumber import is_valid_my_number
from signature.xmlparse import parse_xml

__all__ = [
    "REVEAL_PERMISSION",
    "ExtractedNumber",
    "MyNumberAccessDenied",
    "extract_my_numbers",
    "reveal_my_number",
    "store_my_numbers",
]

REVEAL_PERMISSION = "my_number.reveal"
MY_NUMBER_ELEMENT = "個人番号"


class MyNumberAccessDenied(PermissionDenied):
    """The actor lacks the reveal permission, or gave no reason (処理事由)."""


@dataclass(frozen=True)
class ExtractedNumber:
    position: int
    path: str
    value: str = ""
    valid: bool = False

    def __repr__(self) -> str:  # never print the number itself
        return f"ExtractedNumber(position={self.position}, path={self.path!r}, valid={self.valid})"


def extract_my_numbers(form: bytes) -> tuple[str, list[ExtractedNumber]]:
    """The form as text with every ``個人番号`` emptied, and the numbers with their positions.

    ``form`` must be the verified bytes; it is parsed with the hardened parser.
    """
    root = parse_xml(form)
    tree = root.getroottree()
    found: list[ExtractedNumber] = []
    for position, el in enumerate(root.iter(MY_NUMBER_ELEMENT)):
        value = "".join(el.itertext()).strip()
        found.append(ExtractedNumber(position, tree.getpath(el), value, is_valid_my_number(value)))
        for child in list(el):
            el.remove(child)
        el.text = None
    return etree.tostring(root, encoding="unicode"), found


def store_my_numbers(
    session: Session, version: ApplicationVersion, numbers: list[ExtractedNumber], sealer: Sealer
) -> None:
    for n in numbers:
        if not n.value:
            continue  # an unanswered field
        session.add(MyNumberRow(
            version_id=version.id, position=n.position, path=n.path, valid_check_digit=n.valid,
            ciphertext=sealer.seal(n.value.encode(), aad=_aad(version.id, n.position)),
            key_id=sealer.active_key_id,
        ))


def _aad(version_id: int, position: int) -> bytes:
    return f"my_numbers:{version_id}:{position}".encode()


def reveal_my_number(
    session: Session, *, actor: Actor, version_id: int, position: int, reason: str, at: datetime,
    sealer: Sealer, atena_number: str | None = None,
) -> str:
    """The one way to read a My Number: permission, a stated reason, an access-log row."""
    if REVEAL_PERMISSION not in actor.permissions:
        raise MyNumberAccessDenied("the reveal permission is required")
    if not reason.strip():
        raise MyNumberAccessDenied("a reason (処理事由) is required")
    row = session.scalar(select(MyNumberRow).where(MyNumberRow.version_id == version_id,
                                                   MyNumberRow.position == position))
    if row is None:
        raise NotFound("no such My Number")
    append_access(session, actor=actor, at=at, action="my_number.reveal", reason=reason.strip(),
                  atena_number=atena_number, subject=f"version:{version_id}:my_number:{position}")
    return sealer.open(row.ciphertext, aad=_aad(version_id, position)).decode()
