"""``create_app``: builds one self-contained portal API over a data directory.

No module-level state: two apps over two directories (or the same one, with different clocks)
can run side by side in one test process.
"""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from portal_sim.api.auth import TokenStore
from portal_sim.api.catalogue import Catalogue
from portal_sim.api.deps import Portal
from portal_sim.api.errors import ApiProblem
from portal_sim.api.limits import FaultInjector, RateLimiter
from portal_sim.api.middleware import BodySizeLimit, NoStore
from portal_sim.api.reception import ReceptionStore, reception
from portal_sim.api.routes import api, health
from portal_sim.api.settings import ApiSettings
from portal_sim.api.source import open_source
from portal_sim.api.statuses import StatusStore

__all__ = ["create_app"]

DESCRIPTION = """\
A simulator of the national portal's receiving API for municipal systems (電子申請等情報受取等API).
The operations follow the published list (login, application list, application by 受付番号,
processing-status list and update); paths, fields, paging, limits and errors are **modelled** —
see docs/portal-api.md for what is published and what is our guess.
"""

_HTTP_CODES = {404: "NOT_FOUND", 405: "METHOD_NOT_ALLOWED"}


def _problem(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, ApiProblem)  # noqa: S101 - registered for ApiProblem only
    return JSONResponse(exc.body(), status_code=exc.status_code, headers=exc.headers())


def _invalid(_request: Request, exc: Exception) -> JSONResponse:
    """Say which field failed and how, never echo its value (it may be a comment with a name in it)."""
    assert isinstance(exc, RequestValidationError)  # noqa: S101 - registered for it only
    fields = [{"location": ".".join(str(p) for p in e.get("loc", ())), "problem": str(e.get("type", ""))}
              for e in exc.errors()]
    body = {"error": {"code": "INVALID_REQUEST", "message": "the request does not match the API schema",
                      "details": {"fields": fields}}}
    return JSONResponse(body, status_code=422)


def _http(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)  # noqa: S101 - registered for it only
    code = _HTTP_CODES.get(exc.status_code, f"HTTP_{exc.status_code}")
    body = {"error": {"code": code, "message": str(exc.detail)}}
    return JSONResponse(body, status_code=exc.status_code, headers=exc.headers)


def _internal(_request: Request, _exc: Exception) -> JSONResponse:
    return JSONResponse({"error": {"code": "INTERNAL_ERROR", "message": "internal error"}}, status_code=500)


def create_app(data_dir: Path | str, *, settings: ApiSettings | None = None) -> FastAPI:
    """The portal API over ``data_dir`` (as written by ``portal_sim generate``).

    Raises :class:`~portal_sim.api.errors.ConfigurationError` if the directory or the settings
    cannot be used. Status history is kept in ``data_dir/status/``.
    """
    settings = settings if settings is not None else ApiSettings()
    directory = Path(data_dir)
    source = open_source(directory)
    portal = Portal(
        settings=settings,
        tokens=TokenStore(
            municipality_code=settings.municipality_code or source.municipality_code,
            api_key=settings.api_key.get_secret_value() if settings.api_key is not None else source.api_key,
            ttl=settings.token_ttl, clock=settings.timer,
        ),
        limiter=RateLimiter(settings.rate_limit, settings.timer) if settings.rate_limit is not None else None,
        faults=FaultInjector(settings.faults),
        catalogue=Catalogue(source.records, read_package=source.read_package, clock=settings.clock),
        statuses=StatusStore(directory / "status", clock=settings.clock),
        receptions=ReceptionStore(directory / "reception", clock=settings.clock),
    )
    app = FastAPI(title="portal_sim — 電子申請等情報受取等API (simulated)", version="1.0.0",
                  description=DESCRIPTION)
    app.state.portal = portal
    app.include_router(api)
    app.include_router(reception)
    app.include_router(health)
    app.add_exception_handler(ApiProblem, _problem)
    app.add_exception_handler(RequestValidationError, _invalid)
    app.add_exception_handler(StarletteHTTPException, _http)
    app.add_exception_handler(Exception, _internal)
    app.add_middleware(BodySizeLimit, limit=settings.max_body_bytes)
    app.add_middleware(NoStore)
    return app
