"""Request plumbing shared by the machine API and the staff UI: the app's state, the one unit of work
per request, the relay's authentication, and one JSON error shape for machine clients."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Annotated, Any, Protocol

from fastapi import Depends, Request
from fastapi.responses import JSONResponse
from sqlalchemy.orm import Session, sessionmaker
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from intake.auth import relay_identity
from intake.errors import Conflict, IntakeError, NotFound, PermissionDenied
from intake.runtime import Runtime

__all__ = [
    "AppState",
    "ContainErrors",
    "CurrentRuntime",
    "Recorded",
    "Relay",
    "UnitOfWork",
    "app_state",
    "error_response",
    "http_status",
    "relay_client",
    "unit_of_work",
]

_log = logging.getLogger(__name__)


@dataclass(frozen=True)
class AppState:
    runtime: Runtime
    session_factory: sessionmaker[Session]


def app_state(request: Request) -> AppState:
    state: AppState = request.app.state.shinsei
    return state


class Recorded(Protocol):
    """An exception that must leave a trace although its request fails: :func:`unit_of_work` calls
    ``record_after_rollback`` in a fresh transaction after rolling the request's work back."""

    def record_after_rollback(self, session: Session) -> None: ...


#: For a failure that carries no ``record_after_rollback`` of its own: what to record for it (a
#: function of the session), or ``None``. The staff UI's refused attempts (issue 15 §5).
RefusalRecorder = Callable[[BaseException], Callable[[Session], None] | None]


def unit_of_work(session_factory: sessionmaker[Session], *, refused: RefusalRecorder | None = None
                 ) -> Iterator[Session]:
    """One transaction per request — the only place a request's work is committed.

    Commits when the handler returns (before the response is sent: the dependency is declared with
    ``scope="function"``), rolls back when anything raises. An exception with a
    ``record_after_rollback(session)`` method (:class:`Recorded`: a refused terminal's access-log
    row, the end of an expired staff session) has it run after the rollback and committed on its
    own, so what must be written even for a failed request is written here and nowhere else. For any
    other exception, ``refused`` may name what to record (the staff UI logs every refused attempt).
    """
    session = session_factory()
    try:
        yield session
        session.commit()
    except BaseException as exc:
        session.rollback()
        record = getattr(exc, "record_after_rollback", None)
        if not callable(record) and refused is not None:
            record = refused(exc)
        if callable(record):
            try:
                record(session)
                session.commit()
            except Exception as failure:  # noqa: BLE001 - the request's own error must still be answered
                session.rollback()
                _log.error("could not record a failed request: %s", type(failure).__name__)
        raise
    finally:
        session.close()


def _request_unit_of_work(request: Request) -> Iterator[Session]:
    yield from unit_of_work(app_state(request).session_factory)


def _runtime(request: Request) -> Runtime:
    return app_state(request).runtime


def relay_client(request: Request) -> str:
    return relay_identity(request, app_state(request).runtime.settings)


UnitOfWork = Annotated[Session, Depends(_request_unit_of_work, scope="function")]
CurrentRuntime = Annotated[Runtime, Depends(_runtime)]
#: The authenticated relay's identity (:func:`intake.auth.relay_identity`), or 403.
Relay = Annotated[str, Depends(relay_client)]


def http_status(exc: IntakeError) -> int:
    """The HTTP status of a refusal: its own ``status`` if it names one, else by its class."""
    own = getattr(exc, "status", None)
    if isinstance(own, int):
        return own
    if isinstance(exc, PermissionDenied):
        return 403
    if isinstance(exc, NotFound):
        return 404
    if isinstance(exc, Conflict):
        return 409
    return 400


def error_response(status: int, code: str, message: str, *, retry_after: int | None = None) -> JSONResponse:
    """``{"error": {"code", "message"}}`` — codes are stable; messages never carry personal data."""
    headers: dict[str, Any] = {}
    if retry_after is not None:
        headers["Retry-After"] = str(retry_after)
    return JSONResponse({"error": {"code": code, "message": message}}, status_code=status, headers=headers)


class ContainErrors:
    """Pure ASGI middleware: an unexpected exception ends here, logged by its type only, answered 500
    (``INTERNAL_ERROR``) if nothing was sent yet, and never re-raised — so neither Starlette nor
    uvicorn writes its traceback ("Exception in ASGI application"), whose text could quote an SQL
    statement or a value of an application into the process log."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False

        async def tracking(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, receive, tracking)
        except Exception as exc:  # noqa: BLE001 - the last line of defence: type only, no traceback
            _log.error("internal error: %s", type(exc).__name__)
            if not started:
                await error_response(500, "INTERNAL_ERROR", "internal error")(scope, receive, send)
