"""A collision that a page's view did not catch is shown with its reason and 409, not a 500."""

from __future__ import annotations

from django.contrib.auth.models import AnonymousUser
from django.http import HttpResponse
from django.test import RequestFactory

from yilian.core.errors import Conflict
from yilian.core.middleware import RequestContextMiddleware


def _middleware() -> RequestContextMiddleware:
    return RequestContextMiddleware(lambda request: HttpResponse())


def test_an_uncaught_conflict_on_a_page_is_a_409_with_the_reason(db: None) -> None:
    request = RequestFactory().get("/stationing/")
    request.user = AnonymousUser()
    response = _middleware().process_exception(request, Conflict("已有人先一步完成了此操作。"))
    assert response is not None and response.status_code == 409
    assert "已有人先一步完成了此操作。" in response.content.decode()


def test_a_constraint_that_caught_a_concurrent_write_on_a_page_is_a_409(db: None) -> None:
    from django.db import IntegrityError

    request = RequestFactory().get("/stationing/new/")
    request.user = AnonymousUser()
    response = _middleware().process_exception(request, IntegrityError("duplicate key"))
    assert response is not None and response.status_code == 409
    assert "duplicate key" not in response.content.decode()


def test_the_api_keeps_its_own_conflict_handler() -> None:
    request = RequestFactory().get("/api/v1/stationing/programmes")
    assert _middleware().process_exception(request, Conflict("x")) is None


def test_other_exceptions_are_left_alone() -> None:
    request = RequestFactory().get("/stationing/")
    assert _middleware().process_exception(request, ValueError("x")) is None
