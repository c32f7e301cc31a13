"""Extract every 個人番号 from a verified form and the manifest's applicant data; store them
encrypted; reveal one with a logged reason.

What counts as a My Number field (issue 15 §2), so that none stays in the clear:

* in the form, **every element whose local name is 個人番号, in any namespace** (no namespace, a
  default namespace, any prefix), and every element a **path the procedure catalogue declares**
  for the procedure names (:class:`MyNumberPaths`: fields that carry a My Number under another name);
* in ``kousei.xml``'s 申請者情報, every field whose local name is 個人番号.

Each is emptied where it is stored (the form as ``form_xml``, the applicant data as
``application_versions.applicant``) and its value sealed with the My Number key in ``my_numbers``,
with its position, its path and where it came from (``form`` / ``kousei``).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from lxml import etree
from sqlalchemy import insert, select
from sqlalchemy.orm import Session

from intake.accesslog.service import append_access
from intake.authz import REVEAL_PERMISSION, Actor
from intake.crypto import Sealer
from intake.db import table_of
from intake.errors import NotFound, ReasonRequired
from intake.models import ApplicationVersion, MyNumberRow
from intake.mynumbers.errors import MyNumberAccessDenied
from intake.procedures import MyNumberPaths, PathSyntaxError
from intake.sealing import open_my_number, seal_my_number
from signature.mynumber import is_valid_my_number
from signature.xmlparse import parse_xml

__all__ = [
    "APPLICANT_PATH",
    "FORM",
    "KOUSEI",
    "MY_NUMBER_ELEMENT",
    "NO_PATHS",
    "ExtractedNumber",
    "MyNumberPaths",
    "PathSyntaxError",
    "element_path",
    "extract_applicant_numbers",
    "extract_my_numbers",
    "is_my_number_name",
    "local_name",
    "my_number_elements",
    "reveal_my_number",
    "store_my_numbers",
]

MY_NUMBER_ELEMENT = "個人番号"
#: ``my_numbers.source``: the form, or kousei.xml's 申請者情報
FORM = "form"
KOUSEI = "kousei"
#: The path of 申請者情報 in kousei.xml (signature.package reads it there, without a namespace).
APPLICANT_PATH = "/DataRoot/構成情報/管理情報/申請者連絡先情報/申請者情報"


def local_name(tag: object) -> str:
    """``個人番号`` for ``{urn:x}個人番号`` and ``個人番号`` alike."""
    return etree.QName(tag).localname if isinstance(tag, str) else ""


def is_my_number_name(tag: object) -> bool:
    return local_name(tag) == MY_NUMBER_ELEMENT


def element_path(el: etree._Element) -> str:
    """``/DataRoot/請求書/児童[2]/個人番号``: local names from the root, with the position among the
    siblings of the same local name where there are several. Without namespaces it is what lxml's
    ``getpath`` gives; with them it stays readable (and is the same for every namespace style)."""
    steps: list[str] = []
    node: etree._Element | None = el
    while node is not None:
        name = local_name(node.tag)
        parent = node.getparent()
        if parent is not None:
            same = [c for c in parent if local_name(c.tag) == name]
            if len(same) > 1:
                name += f"[{same.index(node) + 1}]"
        steps.append(name)
        node = parent
    return "/" + "/".join(reversed(steps))


def _chain(el: etree._Element) -> list[str]:
    return [local_name(a.tag) for a in reversed(list(el.iterancestors()))] + [local_name(el.tag)]


@dataclass(frozen=True)
class ExtractedNumber:
    position: int
    path: str
    value: str = ""
    valid: bool = False
    source: str = FORM

    def __repr__(self) -> str:  # never print the number itself
        return (f"ExtractedNumber(position={self.position}, path={self.path!r}, source={self.source!r}, "
                f"valid={self.valid})")


NO_PATHS = MyNumberPaths()


def my_number_elements(root: etree._Element, paths: MyNumberPaths = NO_PATHS) -> list[etree._Element]:
    """The form's My Number fields in document order: local name 個人番号 (any namespace), or declared."""
    return [el for el in root.iter() if isinstance(el.tag, str)
            and (is_my_number_name(el.tag) or (paths.paths and paths.matches(_chain(el))))]


def extract_my_numbers(form: bytes, paths: MyNumberPaths = NO_PATHS) -> tuple[str, list[ExtractedNumber]]:
    """The form as text with every My Number field emptied — its text, its children (comments
    included) and its attributes, whatever they hold — and the numbers with their positions.

    ``form`` must be the verified bytes; it is parsed with the hardened parser. ``paths``: the
    procedure's declared fields (:class:`MyNumberPaths`).
    """
    root = parse_xml(form)
    found: list[ExtractedNumber] = []
    for position, el in enumerate(my_number_elements(root, paths)):
        value = "".join(el.itertext()).strip()
        found.append(ExtractedNumber(position, element_path(el), value, is_valid_my_number(value)))
    for el in my_number_elements(root, paths):  # emptied after all paths are read: a field inside another
        for child in list(el):
            el.remove(child)
        el.text = None
        el.attrib.clear()  # the format puts the number in the text; an attribute may carry one too
    return etree.tostring(root, encoding="unicode"), found


def extract_applicant_numbers(
    applicant: Iterable[tuple[str, str]], *, first_position: int,
) -> tuple[list[list[str]], list[ExtractedNumber]]:
    """kousei.xml's 申請者情報 (``(tag, text)`` pairs) with every 個人番号 emptied, and the numbers
    (positions from ``first_position``, after the form's; source ``kousei``)."""
    pairs = [(str(tag), str(text)) for tag, text in applicant]
    masked: list[list[str]] = []
    found: list[ExtractedNumber] = []
    names = [local_name(tag) for tag, _ in pairs]
    for index, (tag, text) in enumerate(pairs):
        if not is_my_number_name(tag):
            masked.append([tag, text])
            continue
        name = local_name(tag)
        if names.count(name) > 1:
            name += f"[{names[:index + 1].count(name)}]"
        value = text.strip()
        found.append(ExtractedNumber(first_position + len(found), f"{APPLICANT_PATH}/{name}", value,
                                     is_valid_my_number(value), KOUSEI))
        masked.append([tag, ""])
    return masked, found


_INSERT_MY_NUMBER = insert(table_of(MyNumberRow))


def store_my_numbers(
    session: Session, version: ApplicationVersion, numbers: list[ExtractedNumber], sealer: Sealer
) -> None:
    """Seal and insert the answered numbers of ``version`` (already inserted), in one Core
    statement on the session's connection: no ORM objects (docs/decisions.md, "Core for a
    delivery's writes")."""
    rows = [{"version_id": version.id, "position": n.position, "path": n.path, "source": n.source,
             "valid_check_digit": n.valid, "ciphertext": seal_my_number(sealer, version.id, n.position, n.value),
             "key_id": sealer.active_key_id}
            for n in numbers if n.value]  # an empty value: an unanswered field
    if rows:
        session.connection().execute(_INSERT_MY_NUMBER, rows)


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
