"""Log-in, lockout after repeated failures, idle timeout, and the remembered language."""

from __future__ import annotations

import datetime as dt

import pytest
import time_machine
from django.test import Client

from yilian.core.models import AuditEvent
from yilian.demo.seed import DEMO_PASSWORD
from yilian.registry.models import User

pytestmark = pytest.mark.django_db


def test_anonymous_visitor_is_sent_to_the_login_page(client: Client) -> None:
    response = client.get("/institutions/")
    assert response.status_code == 302
    assert response["Location"].startswith("/login/")


def test_wrong_password_shows_a_clear_message_in_chinese_by_default(client: Client) -> None:
    response = client.post("/login/", {"username": "doctor", "password": "wrong-password-1"})
    assert response.status_code == 200
    assert "用户名或密码错误" in response.content.decode()


def test_wrong_password_message_in_english(client: Client) -> None:
    response = client.post("/login/", {"username": "doctor", "password": "wrong-password-1"}, HTTP_ACCEPT_LANGUAGE="en")
    assert "The username or password is wrong" in response.content.decode()


def test_login_and_failed_login_are_audited(client: Client) -> None:
    client.post("/login/", {"username": "doctor", "password": "nope-nope-1"})
    assert AuditEvent.objects.filter(action="login_failed", actor_label="doctor").exists()
    client.post("/login/", {"username": "doctor", "password": DEMO_PASSWORD})
    event = AuditEvent.objects.filter(action="login", actor_label="doctor").latest("id")
    assert event.ip_address == "127.0.0.1"


def test_account_locks_after_five_failures_even_with_the_right_password(client: Client) -> None:
    for _ in range(5):
        client.post("/login/", {"username": "coordinator", "password": "wrong-password-1"})
    response = client.post("/login/", {"username": "coordinator", "password": DEMO_PASSWORD})
    assert response.status_code == 429
    assert "锁定" in response.content.decode()
    assert "_auth_user_id" not in client.session
    other = Client()  # another account from the same address is not affected
    assert other.post("/login/", {"username": "doctor", "password": DEMO_PASSWORD}).status_code == 302


def test_lock_lifts_after_the_cool_off(client: Client) -> None:
    for _ in range(5):
        client.post("/login/", {"username": "coordinator", "password": "wrong-password-1"})
    with time_machine.travel(dt.datetime.now(tz=dt.UTC) + dt.timedelta(minutes=16), tick=False):
        response = client.post("/login/", {"username": "coordinator", "password": DEMO_PASSWORD})
        assert response.status_code == 302


def test_idle_session_expires_but_activity_keeps_it_alive(login) -> None:
    start = dt.datetime.now(tz=dt.UTC)
    with time_machine.travel(start, tick=False) as clock:
        client = login("doctor")
        clock.shift(dt.timedelta(minutes=20))
        assert client.get("/").status_code == 200
        clock.shift(dt.timedelta(minutes=20))  # 40 min after log-in, 20 after the last request
        assert client.get("/").status_code == 200
        clock.shift(dt.timedelta(minutes=31))
        response = client.get("/")
        assert response.status_code == 302 and response["Location"].startswith("/login/")


def test_language_switch_is_remembered_on_the_account(login) -> None:
    client = login("doctor")
    assert "机构" in client.get("/institutions/").content.decode()
    response = client.post("/language/", {"language": "en", "next": "/institutions/"})
    assert response.status_code == 302 and response["Location"] == "/institutions/"
    assert User.objects.get(username="doctor").language == "en"
    assert "Institutions" in client.get("/institutions/").content.decode()
    fresh = Client()  # a new browser: no cookie, but the account remembers
    fresh.post("/login/", {"username": "doctor", "password": DEMO_PASSWORD})
    assert '<html lang="en">' in fresh.get("/").content.decode()


def test_unknown_language_is_refused(login) -> None:
    assert login("doctor").post("/language/", {"language": "fr"}).status_code == 400


def test_language_switch_ignores_offsite_next(login) -> None:
    response = login("doctor").post("/language/", {"language": "en", "next": "https://evil.example/"})
    assert response["Location"] == "/"


def test_logout_ends_the_session(login) -> None:
    client = login("doctor")
    client.post("/logout/")
    assert client.get("/").status_code == 302
    assert AuditEvent.objects.filter(action="logout", actor_label="doctor").exists()
