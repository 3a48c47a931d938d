"""The JSON API at /api/v1/. Every call needs a bearer token or a browser session.

Handlers are thin: authorise and read through selectors, write through services. Errors a
user can cause come back as {"detail": "..."} in the request's language with a 4xx status.
"""

from __future__ import annotations

from typing import Any

from django.core.exceptions import PermissionDenied, ValidationError
from django.http import HttpRequest, HttpResponse
from django.utils.translation import gettext as _
from ninja import NinjaAPI
from ninja.errors import AuthenticationError
from ninja.errors import ValidationError as NinjaValidationError
from ninja.security import APIKeyCookie, HttpBearer

from yilian.registry import services
from yilian.registry.api import router as registry_router
from yilian.registry.models import User


class BearerToken(HttpBearer):
    def authenticate(self, request: HttpRequest, token: str) -> User | None:
        user = services.api_token_authenticate(token)
        if user is not None:
            request.user = user
        return user


class BrowserSession(APIKeyCookie):
    """The browser's Django session (CSRF-checked for unsafe methods)."""

    param_name = "sessionid"

    def authenticate(self, request: HttpRequest, key: str | None) -> Any:
        user = getattr(request, "user", None)
        if user is not None and user.is_authenticated:
            return user
        return None


api = NinjaAPI(
    title="Yilian API",
    version="1",
    description="Registry of the medical consortium: regions, institutions, consortia, agreements, practitioners.",
    auth=[BearerToken(), BrowserSession()],
    urls_namespace="api",
)


def _error(request: HttpRequest, status: int, detail: str, errors: dict[str, list[str]] | None = None) -> HttpResponse:
    body: dict[str, Any] = {"detail": detail}
    if errors:
        body["errors"] = errors
    return api.create_response(request, body, status=status)


@api.exception_handler(AuthenticationError)
def _unauthenticated(request: HttpRequest, exc: AuthenticationError) -> HttpResponse:
    return _error(request, 401, _("Sign in, or send an API token as 'Authorization: Bearer <token>'."))


@api.exception_handler(PermissionDenied)
def _forbidden(request: HttpRequest, exc: PermissionDenied) -> HttpResponse:
    return _error(request, 403, str(exc) or _("You may not do this."))


@api.exception_handler(ValidationError)
def _invalid(request: HttpRequest, exc: ValidationError) -> HttpResponse:
    errors = exc.message_dict if hasattr(exc, "error_dict") else None
    return _error(request, 400, " ".join(exc.messages), errors)


@api.exception_handler(NinjaValidationError)
def _malformed(request: HttpRequest, exc: NinjaValidationError) -> HttpResponse:
    errors: dict[str, list[str]] = {}
    for error in exc.errors:
        location = ".".join(str(part) for part in error.get("loc", ()))
        errors.setdefault(location, []).append(str(error.get("msg", "")))
    return _error(request, 422, _("The request is not well formed."), errors)


api.add_router("/", registry_router)
