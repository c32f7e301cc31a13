"""FastAPI dependencies: the portal's state, fault injection, the caller's session, a checked 受付番号.

Order matters and is fixed by how routes declare them: fault injection first (an overloaded portal
fails before it looks at anything), then authentication, then the rate limit of that token, then
parameter validation.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Annotated

from fastapi import Depends, Path, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from portal_sim.api.auth import Session, TokenStore
from portal_sim.api.catalogue import Catalogue, check_receipt_number
from portal_sim.api.limits import FaultInjector, RateLimiter
from portal_sim.api.settings import ApiSettings
from portal_sim.api.statuses import StatusStore

if TYPE_CHECKING:
    from portal_sim.api.reception import ReceptionStore

__all__ = ["CurrentSession", "Portal", "PortalDep", "ReceiptNumber", "inject_faults"]


@dataclass(frozen=True)
class Portal:
    """Everything one app instance holds; lives in ``app.state.portal``, never in a module global."""

    settings: ApiSettings
    tokens: TokenStore
    limiter: RateLimiter | None
    faults: FaultInjector
    catalogue: Catalogue
    statuses: StatusStore
    receptions: ReceptionStore


def get_portal(request: Request) -> Portal:
    portal: Portal = request.app.state.portal
    return portal


PortalDep = Annotated[Portal, Depends(get_portal)]


def inject_faults(portal: PortalDep) -> None:
    portal.faults.check()


_bearer = HTTPBearer(auto_error=False, description="access_token from POST /api/v1/login")


def current_session(
    portal: PortalDep, credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> Session:
    session = portal.tokens.authenticate(credentials.credentials if credentials is not None else None)
    if portal.limiter is not None:
        portal.limiter.check(session.key)
    return session


CurrentSession = Annotated[Session, Depends(current_session)]


def receipt_number(
    receipt_number: Annotated[str, Path(description="受付番号, YYYYMMDD-NNNNNNNNNN")],
) -> str:
    return check_receipt_number(receipt_number)


ReceiptNumber = Annotated[str, Depends(receipt_number)]
