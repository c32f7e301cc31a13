"""Extract every 個人番号 from a verified form and the manifest's applicant data; store them
encrypted; reveal one with a logged reason.

What counts as a My Number field (issue 15 §2), so that none stays in the clear:

* in the form, **every element whose local name is 個人番号, in any namespace** (no namespace, a
  default namespace, any prefix), and every element a **path the procedure catalogue declares**
  for the procedure names (:class:`MyNumberPaths`: fields that carry a My Number under another name);
* in ``kousei.xml``'s 申請者情報, every field whose local name is 個人番号;
* in the form's other text (a 備考, an attribute, a comment, mixed content), whatever looks like a
  My Number (:func:`intake.freetext.my_number_spans`): replaced there by ``［個人番号］``.

Each is emptied where it is stored (the form as ``form_xml``, the applicant data as
``application_versions.applicant``) and its value sealed with the My Number key in ``my_numbers``,
with its position, its path and where it came from (``form`` / ``kousei`` / ``text``).
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, replace
from datetime import datetime

from lxml import etree
from sqlalchemy import func, insert, select, update
from sqlalchemy.orm import Session, sessionmaker

from intake.accesslog.service import append_access
from intake.authz import REVEAL_PERMISSION, Actor
from intake.crypto import Sealer
from intake.db import table_of
from intake.errors import NotFound, ReasonRequired
from intake.freetext import MyNumberSpan, my_number_spans
from intake.models import ApplicationVersion, MyNumberRow
from intake.mynumbers.errors import MyNumberAccessDenied
from intake.procedures import MyNumberPaths, PathSyntaxError
from intake.sealing import open_my_number, seal_my_number
from signature.errors import UnreadablePackage
from signature.mynumber import is_valid_my_number
from signature.xmlparse import parse_xml

__all__ = [
    "APPLICANT_PATH",
    "FORM",
    "KOUSEI",
    "MY_NUMBER_ELEMENT",
    "NO_PATHS",
    "TEXT",
    "TEXT_MASK",
    "ElementPaths",
    "ExtractedNumber",
    "MyNumberPaths",
    "PathSyntaxError",
    "TypedNumbersProgress",
    "element_path",
    "extract_applicant_numbers",
    "extract_my_numbers",
    "is_my_number_name",
    "local_name",
    "my_number_elements",
    "reveal_my_number",
    "seal_typed_numbers",
    "store_my_numbers",
    "stored_path",
]

_log = logging.getLogger(__name__)

MY_NUMBER_ELEMENT = "個人番号"
#: ``my_numbers.source``: the form, or kousei.xml's 申請者情報
FORM = "form"
KOUSEI = "kousei"
#: ``my_numbers.source`` of a My Number found in the form's other text (a 備考, an attribute…)
TEXT = "text"
#: what stands in the stored form where a resident typed a My Number into text
TEXT_MASK = "［個人番号］"
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
    ``getpath`` gives; with them it stays readable (and is the same for every namespace style).
    For many elements of one tree, one :class:`ElementPaths` (this is one call of a fresh one)."""
    return ElementPaths()(el)


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
    fields = my_number_elements(root, paths)
    named = ElementPaths()
    found: list[ExtractedNumber] = []
    for position, el in enumerate(fields):
        value = "".join(el.itertext()).strip()
        found.append(ExtractedNumber(position, named(el), value, is_valid_my_number(value)))
    for el in fields:  # emptied after all paths are read: a field inside another
        for child in list(el):
            el.remove(child)
        el.text = None
        el.attrib.clear()  # the format puts the number in the text; an attribute may carry one too
    found.extend(_seal_from_text(root, first_position=len(found)))
    return etree.tostring(root, encoding="unicode"), found


class ElementPaths:
    """:func:`element_path` of the elements of one tree, each parent's children counted once (a scan
    of all siblings per element was quadratic: minutes for a form of 20 000 typed numbers)."""

    def __init__(self) -> None:
        self._paths: dict[etree._Element, str] = {}

    def __call__(self, el: etree._Element) -> str:
        path = self._paths.get(el)
        if path is None:
            parent = el.getparent()
            if parent is None:
                path = "/" + local_name(el.tag)
            else:
                self._count(parent)
                path = self._paths[el]
        return path

    def _count(self, parent: etree._Element) -> None:
        children = list(parent)
        names = [local_name(c.tag) for c in children]
        total: dict[str, int] = {}
        for name in names:
            total[name] = total.get(name, 0) + 1
        seen: dict[str, int] = {}
        base = self(parent)
        for child, name in zip(children, names, strict=True):
            seen[name] = seen.get(name, 0) + 1
            self._paths[child] = f"{base}/{name}" + (f"[{seen[name]}]" if total[name] > 1 else "")


def _masked(text: str, owner: etree._Element, suffix: str, seen: dict[str, int], found: list[ExtractedNumber],
            first_position: int, paths: ElementPaths) -> str:
    """``text`` with each My Number in it replaced by TEXT_MASK; the numbers added to ``found``
    with the path ``<owner's path><suffix>/text()[k]``, the k-th found there (from 1)."""
    spans = my_number_spans(text)
    if not spans:
        return text
    path = paths(owner) + suffix
    for _start, _stop, digits in spans:
        seen[path] = seen.get(path, 0) + 1
        found.append(ExtractedNumber(first_position + len(found), f"{path}/text()[{seen[path]}]", digits, True,
                                     TEXT))
    return _replace(text, spans)


def _replace(text: str, spans: list[MyNumberSpan]) -> str:
    """``text`` with each span replaced by TEXT_MASK."""
    pieces, end = [], 0
    for start, stop, _digits in spans:
        pieces += [text[end:start], TEXT_MASK]
        end = stop
    return "".join([*pieces, text[end:]])


def _seal_from_text(root: etree._Element, *, first_position: int) -> list[ExtractedNumber]:
    """A resident's My Number typed into any other text of the form — a 備考, an attribute, a
    comment — masked in place, in document order (:func:`intake.freetext.my_number_spans` says what
    counts: 12 digits with a valid check digit, in one run or groups of four, half- or full-width)."""
    found: list[ExtractedNumber] = []
    seen: dict[str, int] = {}
    paths = ElementPaths()

    def mask(text: str | None, owner: etree._Element, suffix: str = "") -> str | None:
        return _masked(text, owner, suffix, seen, found, first_position, paths) if text else text

    for node in list(root.iter()):
        parent = node.getparent()
        if isinstance(node.tag, str):
            node.text = mask(node.text, node)
            for name, value in node.attrib.items():
                node.set(name, mask(value, node, f"/@{local_name(name)}") or "")
        elif parent is not None:  # a comment or processing instruction: its element's
            node.text = mask(node.text, parent, "/comment()")
        if parent is not None:  # text after the node belongs to its parent (mixed content)
            node.tail = mask(node.tail, parent)
    return found


def extract_applicant_numbers(
    applicant: Iterable[tuple[str, str]], *, first_position: int,
) -> tuple[list[list[str]], list[ExtractedNumber]]:
    """kousei.xml's 申請者情報 (``(tag, text)`` pairs) with every 個人番号 emptied, and the numbers
    (positions from ``first_position``, after the form's; source ``kousei``). A My Number typed into
    another field (住所, 電話番号…) is replaced there by TEXT_MASK and sealed with source ``text``
    and the path ``…/申請者情報/<field>/text()[k]``: these values are shown to every reader of the
    case, and 電話番号 becomes a search key."""
    pairs = [(str(tag), str(text)) for tag, text in applicant]
    masked: list[list[str]] = []
    found: list[ExtractedNumber] = []
    names = [local_name(tag) for tag, _ in pairs]
    for index, (tag, text) in enumerate(pairs):
        name = local_name(tag)
        if names.count(name) > 1:
            name += f"[{names[:index + 1].count(name)}]"
        if not is_my_number_name(tag):
            spans = my_number_spans(text)
            for k, (_start, _stop, digits) in enumerate(spans, start=1):
                found.append(ExtractedNumber(first_position + len(found), f"{APPLICANT_PATH}/{name}/text()[{k}]",
                                             digits, True, TEXT))
            masked.append([tag, _replace(text, spans) if spans else text])
            continue
        value = text.strip()
        found.append(ExtractedNumber(first_position + len(found), f"{APPLICANT_PATH}/{name}", value,
                                     is_valid_my_number(value), KOUSEI))
        masked.append([tag, ""])
    return masked, found


_INSERT_MY_NUMBER = insert(table_of(MyNumberRow))
#: ``my_numbers.path``'s length
MAX_PATH = 512


def stored_path(path: str) -> str:
    """``path`` as ``my_numbers.path`` holds it: a path longer than the column (a form nested a few
    hundred deep) keeps its end, after "…". The resident's application is stored all the same; the
    form view lists such a number apart, as it cannot say which field it was. A digest of the whole
    path follows the "…", so that two such paths with the same end stay apart (the form view maps
    path → position: equal paths hid one number)."""
    if len(path) <= MAX_PATH:
        return path
    head = f"…{hashlib.sha256(path.encode()).hexdigest()[:16]}…"
    return head + path[-(MAX_PATH - len(head)):]


def store_my_numbers(
    session: Session, version: ApplicationVersion, numbers: list[ExtractedNumber], sealer: Sealer
) -> None:
    """Seal and insert the answered numbers of ``version`` (already inserted), in one Core
    statement on the session's connection: no ORM objects (docs/decisions.md, "Core for a
    delivery's writes")."""
    _insert_sealed(session, version.id, numbers, sealer)


def _insert_sealed(session: Session, version_id: int, numbers: list[ExtractedNumber], sealer: Sealer) -> None:
    rows = [{"version_id": version_id, "position": n.position, "path": stored_path(n.path), "source": n.source,
             "valid_check_digit": n.valid, "ciphertext": seal_my_number(sealer, version_id, n.position, n.value),
             "key_id": sealer.active_key_id}
            for n in numbers if n.value]  # an empty value: an unanswered field
    if rows:
        session.connection().execute(_INSERT_MY_NUMBER, rows)


@dataclass(frozen=True)
class TypedNumbersProgress:
    examined: int  # versions read so far
    masked: int  # of which forms held a My Number in their text, now masked
    sealed: int  # My Numbers sealed from them
    #: forms the hardened parser refuses (over its limits): left as they are, named in the log by
    #: version id only, so that one such form does not stop every later one from being sealed
    unreadable: int = 0


def seal_typed_numbers(sessions: sessionmaker[Session], sealer: Sealer, *,
                       batch: int = 200) -> Iterator[TypedNumbersProgress]:
    """For forms stored before a My Number typed into their text was sealed (docs/decisions.md,
    2026-12-07): mask and seal it as a delivery now does, version by version, one committed
    transaction per batch; yields progress after each. The numbers get positions after the
    version's existing ones. Idempotent and resumable: a masked form holds nothing to find, and a
    form is written back only if it is still the one that was read."""
    last, examined, masked, sealed, unreadable = 0, 0, 0, 0, 0
    while True:
        with sessions() as session:
            rows = session.execute(select(ApplicationVersion.id, ApplicationVersion.form_xml)
                                   .where(ApplicationVersion.id > last).order_by(ApplicationVersion.id)
                                   .limit(batch)).all()
            if not rows:
                return
            last = rows[-1][0]
            examined += len(rows)
            for version_id, form_xml in rows:
                try:
                    root = parse_xml(form_xml.encode())
                except UnreadablePackage as exc:
                    unreadable += 1
                    _log.warning("seal-typed: the stored form of version %d cannot be read (%s)", version_id,
                                 exc.code.value)
                    continue
                found = _seal_from_text(root, first_position=0)
                if not found:
                    continue
                # after the version's own numbers (read only for a form that holds one)
                top = session.scalar(select(func.max(MyNumberRow.position)).where(MyNumberRow.version_id == version_id))
                found = [replace(n, position=n.position + (0 if top is None else top + 1)) for n in found]
                written = session.execute(
                    update(ApplicationVersion)
                    .where(ApplicationVersion.id == version_id, ApplicationVersion.form_xml == form_xml)
                    .values(form_xml=etree.tostring(root, encoding="unicode"))
                    .execution_options(synchronize_session=False))
                if not written.rowcount:  # type: ignore[attr-defined]
                    continue  # changed since it was read: the next run reads it again
                _insert_sealed(session, version_id, found, sealer)
                masked, sealed = masked + 1, sealed + len(found)
            session.commit()
        yield TypedNumbersProgress(examined, masked, sealed, unreadable)


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
