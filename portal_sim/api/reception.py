"""受領結果 (modelled): what the municipality's relay did with each application the portal offered.

``POST /api/v1/applications/{受付番号}/reception`` with ``{"result": "taken" | "refused" | "failed",
"reason_code": "…"}``: taken (stored by the municipality), refused (with the reason code: the package
cannot be taken, e.g. a malformed ZIP), failed (the relay set it aside after repeated failures; an
operator follows it up). ``GET`` of the same path reads it back. The latest report counts; a repeat of
the same report changes nothing. Stored in ``DIR/reception/<受付番号>.json`` (atomic writes). No
personal data: a result and a reason code. The national portal's documents do not name such a call:
a municipality whose portal lacks it turns ``report_reception`` off on the relay.
"""

from __future__ import annotations

import json
import threading
from datetime import datetime
from pathlib import Path
from typing import Annotated, Literal

from fastapi import APIRouter, Depends
from pydantic import BaseModel, ConfigDict, Field

from portal_sim.api.clock import Clock
from portal_sim.api.deps import CurrentSession, PortalDep, ReceiptNumber, inject_faults
from portal_sim.api.errors import ApiProblem
from portal_sim.api.statuses import _write_atomically

__all__ = ["ReceptionReport", "ReceptionStore", "reception"]

Result = Literal["taken", "refused", "failed"]


class ReceptionIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    result: Result
    reason_code: Annotated[str, Field(pattern=r"^[A-Z0-9_]{1,64}$")] | None = None


class ReceptionReport(BaseModel):
    receipt_number: str
    result: Result
    reason_code: str | None
    at: datetime


class NoReception(ApiProblem):
    status_code = 404
    code = "NOT_FOUND"


class ReceptionStore:
    """The latest reception report per 受付番号, written through to ``directory``."""

    def __init__(self, directory: Path, *, clock: Clock) -> None:
        self.directory = directory
        self.clock = clock
        self._lock = threading.Lock()

    def _path(self, receipt_number: str) -> Path:
        return self.directory / f"{receipt_number}.json"

    def get(self, receipt_number: str) -> ReceptionReport | None:
        path = self._path(receipt_number)
        if not path.exists():
            return None
        return ReceptionReport.model_validate_json(path.read_bytes())

    def put(self, receipt_number: str, result: Result, reason_code: str | None) -> tuple[ReceptionReport, bool]:
        """Record the report; ``(report, created)`` — False when it repeats the stored one."""
        with self._lock:
            current = self.get(receipt_number)
            if current is not None and (current.result, current.reason_code) == (result, reason_code):
                return current, False
            report = ReceptionReport(receipt_number=receipt_number, result=result, reason_code=reason_code,
                                     at=self.clock.now())
            self.directory.mkdir(parents=True, exist_ok=True)
            _write_atomically(self._path(receipt_number), json.dumps(report.model_dump(mode="json")).encode())
            return report, True


def _store(portal: PortalDep) -> ReceptionStore:
    return portal.receptions


reception = APIRouter(prefix="/api/v1", dependencies=[Depends(inject_faults)], tags=["reception"])
Store = Annotated[ReceptionStore, Depends(_store)]


@reception.post("/applications/{receipt_number}/reception", response_model=ReceptionReport, status_code=201)
def report_reception(session: CurrentSession, portal: PortalDep, store: Store, number: ReceiptNumber,
                     body: ReceptionIn) -> ReceptionReport:
    """The relay tells the portal what became of an application it offered (modelled)."""
    portal.catalogue.get(number)  # 404 for a 受付番号 the portal does not know
    report, _created = store.put(number, body.result, body.reason_code)
    return report


@reception.get("/applications/{receipt_number}/reception", response_model=ReceptionReport)
def read_reception(session: CurrentSession, portal: PortalDep, store: Store, number: ReceiptNumber
                   ) -> ReceptionReport:
    portal.catalogue.get(number)
    found = store.get(number)
    if found is None:
        raise NoReception("no reception report for this 受付番号 yet")
    return found
