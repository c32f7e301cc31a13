"""Extract every 個人番号 from a verified form; store them encrypted; reveal one with a logged reason."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from lxml import etree
from sqlalchemy import select
from sqlalchemy.orm import Session

from intake.accesslog.service import append_access
from intake.authz import REVEAL_PERMISSION, Actor
from intake.crypto import Sealer
from intake.errors import NotFound, ReasonRequired
from intake.models import ApplicationVersion, MyNumberRow
from intake.mynumbers.errors import MyNumberAccessDenied
from intake.sealing import open_my_number, seal_my_number
from signature.mynumber import is_valid_my_number
from signature.xmlparse import parse_xml

__all__ = [
    "ExtractedNumber",
    "extract_my_numbers",
    "reveal_my_number",
    "store_my_numbers",
]

MY_NUMBER_ELEMENT = "個人番号"


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
            ciphertext=seal_my_number(sealer, version.id, n.position, n.value),
            key_id=sealer.active_key_id,
        ))


def reveal_my_number(
    session: Session, *, actor: Actor, version_id: int, position: int, reason: str, at: datetime,
    sealer: Sealer, atena_number: str | None = None,
) -> str:
    """The one way to read a My Number: permission (:class:`MyNumberAccessDenied`), a stated reason
    (:class:`intake.errors.ReasonRequired`), an access-log row."""
    if REVEAL_PERMISSION not in actor.permissions:
        raise MyNumberAccessDenied
    if not reason.strip():
        raise ReasonRequired
    row = session.scalar(select(MyNumberRow).where(MyNumberRow.version_id == version_id,
                                                   MyNumberRow.position == position))
    if row is None:
        raise NotFound("no such My Number")
    append_access(session, actor=actor, at=at, action="my_number.reveal", reason=reason.strip(),
                  atena_number=atena_number, subject=f"version:{version_id}:my_number:{position}")
    return open_my_number(sealer, version_id, position, row.ciphertext)
