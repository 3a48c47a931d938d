"""Who is acting and from where, for the audit trail, without threading it through every call."""

from __future__ import annotations

from contextvars import ContextVar
from dataclasses import dataclass


@dataclass(frozen=True)
class RequestContext:
    ip_address: str | None = None
    channel: str = "web"


COMMAND_LINE = RequestContext(channel="cli")

# None outside a request: the command line, the worker, the demo seed.
current: ContextVar[RequestContext | None] = ContextVar("yilian_request_context", default=None)
