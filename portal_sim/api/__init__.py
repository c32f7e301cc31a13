"""The simulated portal's receiving API (電子申請等情報受取等API) for municipal systems.

``create_app(data_dir, settings=ApiSettings(...))`` builds a FastAPI app over a data directory
written by ``portal_sim generate``; ``python -m portal_sim serve`` runs it with uvicorn.
The API is described, with what is published and what is modelled, in docs/portal-api.md.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from portal_sim.api.clock import AcceleratedClock, Clock, FixedClock, SystemClock, parse_clock
from portal_sim.api.errors import ApiProblem, ConfigurationError, PortalApiError
from portal_sim.api.settings import ApiSettings, FaultInjection, RateLimit
from portal_sim.api.statuses import Status

__all__ = [
    "AcceleratedClock",
    "ApiProblem",
    "ApiSettings",
    "Clock",
    "ConfigurationError",
    "FaultInjection",
    "FixedClock",
    "PortalApiError",
    "RateLimit",
    "Status",
    "SystemClock",
    "create_app",
    "parse_clock",
]

if TYPE_CHECKING:
    from portal_sim.api.app import create_app


def __getattr__(name: str) -> Any:
    # create_app pulls in FastAPI (about a second on a small machine); `python -m portal_sim generate`
    # imports this package for `serve`'s options only, so the web framework loads when first needed.
    if name == "create_app":
        from portal_sim.api.app import create_app

        return create_app
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
