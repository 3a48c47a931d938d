"""The JSON API at /api/v1/. Every call needs a bearer token or a browser session.

Handlers are thin: authorise and read through selectors, write through services. Errors a
user can cause come back as {"detail": "..."} in the request's language with a 4xx status.
"""

from __future__ import annotations

from typing import Any

from django.core.exceptions import PermissionDenied, ValidationError
from django.db import DataError, IntegrityError
from django.http import Http404, HttpRequest, HttpResponse
from django.utils.translation import gettext as _
from ninja import NinjaAPI
from ninja.errors import AuthenticationError, HttpError
from ninja.errors import ValidationError as NinjaValidationError
from ninja.security import APIKeyCookie, HttpBearer

from yilian.activity.api import router as activity_router
from yilian.capability.api import router as capability_router
from yilian.catalogues.api import router as catalogues_router
from yilian.consults.api import router as consults_router
from yilian.consults.workflow import TransitionNotAllowed as ConsultTransitionNotAllowed
from yilian.core.errors import Conflict
from yilian.dispatch.api import router as dispatch_router
from yilian.indicators.api import router as indicators_router
from yilian.notifications.api import router as notifications_router
from yilian.referrals.api import patients_router
from yilian.referrals.api import router as referrals_router
from yilian.referrals.green_api import router as green_router
from yilian.referrals.workflow import TransitionNotAllowed
from yilian.registry import services
from yilian.registry.api import router as registry_router
from yilian.registry.models import User
from yilian.surveys.api import router as surveys_router


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
    description=(
        "Registry of the medical consortium (regions, institutions, consortia, agreements, practitioners), "
        "two-way referrals with their patients, green-channel (time-critical) transfers, the caller's "
        "notifications, satisfaction surveys, expert stationing (programmes, assignments, rosters, check-ins, "
        "work logs), teleconsultations, clinical-activity imports (discharges, operations, visits), the "
        "indicators computed from them, the operation catalogues that decide how operations count (classification, "
        "level-4 and minimally invasive catalogues, institutions' own lists), and capability building (techniques, "
        "transfer ledgers, surgical privileges, regional firsts, teaching, training programmes)."
    ),
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


@api.exception_handler(Http404)
def _not_found(request: HttpRequest, exc: Http404) -> HttpResponse:
    return _error(request, 404, str(exc) if exc.args else _("Not found."))


@api.exception_handler(HttpError)
def _http_error(request: HttpRequest, exc: HttpError) -> HttpResponse:
    # django-ninja's own 4xx (a body it cannot parse, above all) in the caller's language.
    if exc.status_code == 400 and str(exc).startswith("Cannot parse request body"):
        return _error(request, 400, _("The body is not valid JSON."))
    return _error(request, exc.status_code, str(exc))


@api.exception_handler(DataError)
def _unstorable(request: HttpRequest, exc: DataError) -> HttpResponse:
    # E.g. a NUL character, which PostgreSQL text columns cannot hold; nothing was written.
    return _error(request, 400, _("The request contains characters or values that cannot be stored."))


@api.exception_handler(IntegrityError)
def _conflict(request: HttpRequest, exc: IntegrityError) -> HttpResponse:
    # A database constraint caught what the services' checks could not see: a concurrent
    # write of the same thing. The transaction was rolled back whole.
    return _error(request, 409, _("Someone else changed this at the same moment. Reload and try again."))


@api.exception_handler(Conflict)
def _collides(request: HttpRequest, exc: Conflict) -> HttpResponse:
    return _error(request, 409, str(exc))


@api.exception_handler(TransitionNotAllowed)
@api.exception_handler(ConsultTransitionNotAllowed)
def _not_now(request: HttpRequest, exc: TransitionNotAllowed | ConsultTransitionNotAllowed) -> HttpResponse:
    # The step is not possible from the referral's or consult's current status (or someone acted
    # first): the caller is told that status, so a client can refresh without another call.
    return api.create_response(request, {"detail": str(exc), "status": exc.status.value}, status=409)


@api.exception_handler(NinjaValidationError)
def _malformed(request: HttpRequest, exc: NinjaValidationError) -> HttpResponse:
    errors: dict[str, list[str]] = {}
    for error in exc.errors:
        location = ".".join(str(part) for part in error.get("loc", ()))
        errors.setdefault(location, []).append(field_message(error))
    return _error(request, 422, _("The request is not well formed."), errors)


def field_message(error: dict[str, Any]) -> str:
    """A pydantic error as a sentence in the request's language (pydantic's own are English)."""
    kind = str(error.get("type", ""))
    ctx = {
        k: (", ".join(map(str, v)) if isinstance(v, list | tuple) else v) for k, v in (error.get("ctx") or {}).items()
    }
    messages: dict[str, str] = {
        "missing": _("This field is required."),
        "string_too_short": _("Must be at least %(min_length)s characters."),
        "string_too_long": _("Must be at most %(max_length)s characters."),
        "string_pattern_mismatch": _("Does not have the expected format."),
        "enum": _("Not one of the allowed values: %(expected)s."),
        "literal_error": _("Not one of the allowed values: %(expected)s."),
        "greater_than_equal": _("Must be at least %(ge)s."),
        "less_than_equal": _("Must be at most %(le)s."),
        "greater_than": _("Must be more than %(gt)s."),
        "less_than": _("Must be less than %(lt)s."),
        "uuid_parsing": _("Not a valid identifier."),
        "uuid_type": _("Not a valid identifier."),
        "json_invalid": _("The body is not valid JSON."),
    }
    messages["bool_parsing"] = messages["bool_type"] = _("Must be true or false.")
    messages["string_type"] = _("Must be text.")
    messages["model_type"] = messages["dict_type"] = _("Must be an object.")
    messages["list_type"] = _("Must be a list.")
    for number in ("int_parsing", "int_type", "int_from_float", "float_parsing", "float_type", "decimal_parsing"):
        messages[number] = _("Must be a number.")
    for moment in (
        "date_parsing",
        "date_from_datetime_parsing",
        "datetime_parsing",
        "datetime_from_date_parsing",
        "time_parsing",
        "time_type",
        "date_type",
        "datetime_type",
    ):
        messages[moment] = _("Not a valid date or time.")
    if kind == "value_error" and "error" in ctx:
        return str(ctx["error"])  # our own validators raise translated messages
    template = messages.get(kind)
    if template is None:
        return str(error.get("msg", ""))
    try:
        return template % ctx
    except (KeyError, TypeError, ValueError):
        return template


api.add_router("/", registry_router)
api.add_router("/", referrals_router)
api.add_router("/", green_router)
api.add_router("/", patients_router)
api.add_router("/", notifications_router)
api.add_router("/", surveys_router)
api.add_router("/", dispatch_router)
api.add_router("/", consults_router)
api.add_router("/", activity_router)
api.add_router("/", indicators_router)
api.add_router("/", capability_router)
api.add_router("/", catalogues_router)
