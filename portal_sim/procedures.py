"""The ward's online procedures: 手続ID, 手続名称, owning department, form and attachments.

Names and departments follow 港区's organisation (子ども家庭支援部, 総合支所 区民課, みなと保健所);
the 手続ID values, department codes and form IDs are modelled, not published identifiers.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import date

from portal_sim.datadir import ProcedureEntry
from portal_sim.population import Person, age_on

__all__ = [
    "PROCEDURES",
    "WITHDRAWAL_FORM_FILE",
    "WITHDRAWAL_FORM_ID",
    "AttachmentSpec",
    "Media",
    "Procedure",
    "eligible_procedures",
    "procedure",
]


class Media(enum.StrEnum):
    PDF = "pdf"
    JPEG = "jpeg"
    PNG = "png"


@dataclass(frozen=True, slots=True)
class AttachmentSpec:
    """An attachment a procedure asks for: 添付書類名称, a Japanese file name, the file type, and how
    often applicants attach it (1.0 = always)."""

    title: str
    file_name: str
    media: Media
    share: float = 1.0


@dataclass(frozen=True, slots=True)
class Procedure:
    procedure_id: str
    procedure_name: str
    department: str
    department_code: str
    form_id: str
    #: relative frequency among new applications
    weight: int
    attachments: tuple[AttachmentSpec, ...]
    #: who may apply on a given day
    eligible: Callable[[Person, date], bool]

    @property
    def form_file(self) -> str:
        return f"{self.form_id}_01.xml"

    @property
    def folder_name(self) -> str:
        """The top-level folder e-Gov style ZIPs use: the procedure's name."""
        return self.procedure_name.replace(" ", "")

    def entry(self) -> ProcedureEntry:
        return ProcedureEntry(self.procedure_id, self.procedure_name, self.department, self.department_code,
                              self.form_id)


def _anyone(person: Person, on: date) -> bool:
    return True


def _has_child_under(years: int) -> Callable[[Person, date], bool]:
    def check(person: Person, on: date) -> bool:
        return any(0 <= age_on(c.birth_date, on) < years for c in person.children)

    return check


def _may_be_pregnant(person: Person, on: date) -> bool:
    return person.identity.sex == "2" and 18 <= age_on(person.identity.birth_date, on) <= 45


_CHILD_FAMILY = ("子ども家庭支援部 子ども家庭課", "0601")
_NURSERY = ("子ども家庭支援部 保育課", "0602")
_CITIZENS = ("芝地区総合支所 区民課", "0101")
_HEALTH = ("みなと保健所 健康推進課", "0702")

PROCEDURES: tuple[Procedure, ...] = (
    Procedure(
        "KOSODATE-JIDOTEATE-NINTEI", "児童手当 認定請求", *_CHILD_FAMILY, "JIDOTEATE-01", 20,
        (
            AttachmentSpec("健康保険証の写し", "健康保険証の写し.pdf", Media.PDF, 0.7),
            AttachmentSpec("振込先口座の通帳の写し", "通帳の写し（表紙）.jpg", Media.JPEG),
            AttachmentSpec("児童の健康保険証の写し", "児童の保険証.png", Media.PNG, 0.4),
        ),
        _has_child_under(18),
    ),
    Procedure(
        "KOSODATE-HOIKU-RIYOU", "保育施設等利用申込", *_NURSERY, "HOIKU-01", 15,
        (
            AttachmentSpec("就労証明書", "就労証明書.pdf", Media.PDF),
            AttachmentSpec("就労証明書（配偶者）", "就労証明書_配偶者.pdf", Media.PDF, 0.6),
            AttachmentSpec("母子健康手帳の写し", "母子手帳.png", Media.PNG, 0.5),
        ),
        _has_child_under(6),
    ),
    Procedure(
        "JUMIN-TENSHUTSU", "転出届", *_CITIZENS, "TENSHUTSU-01", 25, (), _anyone,
    ),
    Procedure(
        "JUMIN-JUMINHYO-YUSO", "住民票の写し等の交付請求(郵送)", *_CITIZENS, "JUMINHYO-01", 30,
        (AttachmentSpec("委任状", "委任状.pdf", Media.PDF, 0.15),),
        _anyone,
    ),
    Procedure(
        "BOSHI-NINSHIN-TODOKE", "妊娠の届出", *_HEALTH, "NINSHIN-01", 10,
        (AttachmentSpec("妊娠の診断を受けたことが分かる書類", "妊娠診断書.jpg", Media.JPEG, 0.5),),
        _may_be_pregnant,
    ),
)
_BY_ID: Mapping[str, Procedure] = {p.procedure_id: p for p in PROCEDURES}

#: A 取下げ carries a short withdrawal form instead of the procedure's own form.
WITHDRAWAL_FORM_ID = "TORISAGE-01"
WITHDRAWAL_FORM_FILE = f"{WITHDRAWAL_FORM_ID}_01.xml"


def procedure(procedure_id: str) -> Procedure:
    return _BY_ID[procedure_id]


def eligible_procedures(person: Person, on: date) -> list[Procedure]:
    """The procedures ``person`` may apply for on ``on``, in catalogue order."""
    return [p for p in PROCEDURES if p.eligible(person, on)]
