"""Shared test data for the status service and the staff UI: a two-department catalogue, principals."""

from __future__ import annotations

from sqlalchemy.orm import Session

from intake.authz import Principal
from intake.deliveries.service import expected_key, store_delivery
from intake.procedures import Procedure, ProcedureCatalogue
from intake.runtime import Runtime
from status import Role

OWN_PROCEDURE = "KOSODATE-JIDOTEATE-NINTEI"  # the sample packages' procedure
OTHER_PROCEDURE = "KOSEKI-SHOMEI"
OWN_DEPT = "kodomo"
OTHER_DEPT = "kuminka"

CATALOGUE = ProcedureCatalogue({
    OWN_PROCEDURE: Procedure(OWN_PROCEDURE, "児童手当 認定請求", OWN_DEPT, "子ども家庭課"),
    OTHER_PROCEDURE: Procedure(OTHER_PROCEDURE, "戸籍証明書の請求", OTHER_DEPT, "区民課"),
}, configured=True)


def principal(*roles: Role, department: str = OWN_DEPT, reveal: bool = False, login: str = "staff1") -> Principal:
    return Principal(login=login, display_name="職員 一郎", roles=frozenset(roles), departments=frozenset({department}),
                     terminal="ip:127.0.0.1", may_reveal_my_number=reveal, catalogue=CATALOGUE)


def deliver(session: Session, runtime: Runtime, body: bytes) -> int:
    receipt = store_delivery(session, runtime, body=body, key=expected_key(body), client_id="relay-test",
                             relay_report=None)
    session.commit()
    return receipt.delivery_id
