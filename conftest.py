"""Test setup shared by every app: a fast password hasher, the demo consortium seeded once
per test database, and Playwright driving the system's Chromium."""

from __future__ import annotations

import os
import shutil
import tempfile
from typing import Any

import pytest

os.environ.setdefault("DJANGO_ALLOW_ASYNC_UNSAFE", "true")  # Playwright's sync API runs an event loop

CHROMIUM_CANDIDATES = ("/usr/bin/chromium", "/usr/bin/chromium-browser")
CHROMIUM_FLAGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-dev-shm-usage",
]


def chromium_path() -> str | None:
    for candidate in (os.environ.get("YILIAN_CHROMIUM", ""), *CHROMIUM_CANDIDATES):
        if candidate and os.path.exists(candidate):
            return candidate
    found = shutil.which("chromium")
    return found


def pytest_configure(config: pytest.Config) -> None:
    from django.conf import settings

    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
    # Uploaded and generated files of a test run go to a throw-away directory.
    settings.MEDIA_ROOT = tempfile.mkdtemp(prefix="yilian-test-media-")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if chromium_path() is not None:
        return
    if os.environ.get("YILIAN_REQUIRE_BROWSER") == "1":
        raise pytest.UsageError("YILIAN_REQUIRE_BROWSER=1 but no Chromium was found (apt-get install -y chromium).")
    skip = pytest.mark.skip(reason="no Chromium at /usr/bin/chromium: apt-get install -y chromium to run browser tests")
    for item in items:
        if "browser" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(scope="session")
def browser_type_launch_args(browser_type_launch_args: dict[str, Any]) -> dict[str, Any]:
    return {**browser_type_launch_args, "executable_path": chromium_path(), "args": CHROMIUM_FLAGS}


@pytest.fixture(scope="session")
def django_db_setup(django_db_setup: None, django_db_blocker: Any) -> None:
    """Seed the demo consortium once; tests run in transactions rolled back around it."""
    from yilian.demo.seed import seed_demo

    with django_db_blocker.unblock():
        seed_demo()


@pytest.fixture(autouse=True)
def _default_language() -> Any:
    """Each test starts in the default language: a request with Accept-Language: en leaves
    English active in the thread, which would otherwise leak into the next test."""
    from django.conf import settings
    from django.utils import translation

    with translation.override(settings.LANGUAGE_CODE):
        yield


@pytest.fixture
def persona() -> Any:
    """A demo persona by username: admin, office, expert, doctor, coordinator, hospadmin, commission, bijie, quality,
    kaihua, telecentre, pathologist, radiologist."""
    from yilian.registry.models import User

    def get(username: str) -> User:
        return User.objects.get(username=username)

    return get


@pytest.fixture
def login() -> Any:
    """A test client logged in as a demo persona through the real log-in page."""
    from django.test import Client

    from yilian.demo.seed import DEMO_PASSWORD

    def make(username: str, language: str = "") -> Client:
        client = Client(HTTP_ACCEPT_LANGUAGE=language) if language else Client()
        response = client.post("/login/", {"username": username, "password": DEMO_PASSWORD})
        assert response.status_code == 302, response.content[:500]
        return client

    return make


@pytest.fixture(scope="session")
def browser_context_args(browser_context_args: dict[str, Any]) -> dict[str, Any]:
    """Browse as a hospital user in mainland China would: Chinese, China time."""
    return {**browser_context_args, "locale": "zh-CN", "timezone_id": "Asia/Shanghai"}


@pytest.fixture
def site(live_server: Any) -> str:
    """The demo consortium served by a live server, for the browser tests (transactional tests
    start from an emptied database, so the demo is seeded again)."""
    from yilian.demo.seed import seed_demo

    seed_demo()
    return str(live_server.url)
