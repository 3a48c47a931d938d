from __future__ import annotations

from collections.abc import Callable

from django.db import IntegrityError
from django.http import HttpRequest, HttpResponse
from django.template.response import TemplateResponse
from django.utils import translation
from django.utils.translation import gettext as _

from yilian.core import context
from yilian.core.errors import Conflict

Handler = Callable[[HttpRequest], HttpResponse]


def client_ip(request: HttpRequest) -> str | None:
    # Behind a reverse proxy, set it to overwrite REMOTE_ADDR (docs/operations.md); we do not
    # trust X-Forwarded-For here, since a client can forge it.
    return request.META.get("REMOTE_ADDR") or None


class RequestContextMiddleware:
    """Expose the client address to the audit trail for the duration of a request."""

    def __init__(self, get_response: Handler) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        channel = "api" if request.path.startswith("/api/") else "web"
        token = context.current.set(context.RequestContext(ip_address=client_ip(request), channel=channel))
        try:
            return self.get_response(request)
        finally:
            context.current.reset(token)

    def process_exception(self, request: HttpRequest, exception: Exception) -> HttpResponse | None:
        # A page whose view did not catch a collision (the API has its own handlers) shows the
        # reason with 409 rather than a 500: a Conflict says what collided; a database constraint
        # that caught a concurrent write of the same thing rolled the request back whole.
        if request.path.startswith("/api/"):
            return None
        if isinstance(exception, Conflict):
            message = str(exception)
        elif isinstance(exception, IntegrityError):
            message = _("Someone else changed this at the same moment. Reload and try again.")
        else:
            return None
        return TemplateResponse(request, "409.html", {"exception": message}, status=409).render()


class UserLanguageMiddleware:
    """A signed-in user's saved language wins over the browser's Accept-Language."""

    def __init__(self, get_response: Handler) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        user = getattr(request, "user", None)
        language = getattr(user, "language", "") if user is not None and user.is_authenticated else ""
        if language:
            translation.activate(language)
            request.LANGUAGE_CODE = language
        return self.get_response(request)
