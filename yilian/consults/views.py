"""Pages of teleconsultation (being written)."""

from __future__ import annotations

from typing import Any

from django.http import Http404, HttpRequest, HttpResponse


def _todo(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
    raise Http404


queue = new = figures = calendar = meeting_new = meeting = meeting_ics = meeting_act = _todo
detail = report = message = opinion = attach = attachment = act = _todo
