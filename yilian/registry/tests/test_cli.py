"""The `yilian` console command."""

from __future__ import annotations

import pytest

from yilian.cli import main
from yilian.registry import services
from yilian.registry.models import ApiToken, Membership, User

pytestmark = pytest.mark.django_db


def test_createuser_with_role_and_institution(capsys: pytest.CaptureFixture[str]) -> None:
    code = main(
        [
            "createuser",
            "--username",
            "li.nurse",
            "--password",
            "Kaihua-2019!",
            "--institution",
            "khph",
            "--role",
            "doctor",
        ]
    )
    assert code == 0
    user = User.objects.get(username="li.nurse")
    assert user.check_password("Kaihua-2019!")
    assert Membership.objects.filter(user=user, role="doctor", institution__code="khph").exists()


def test_createuser_rejects_weak_password_and_unknown_codes(capsys: pytest.CaptureFixture[str]) -> None:
    assert (
        main(
            [
                "createuser",
                "--username",
                "x1",
                "--password",
                "123",
                "--institution",
                "khph",
                "--role",
                "doctor",
            ]
        )
        == 2
    )
    assert (
        main(
            [
                "createuser",
                "--username",
                "x2",
                "--password",
                "Kaihua-2019!",
                "--institution",
                "nope",
                "--role",
                "doctor",
            ]
        )
        == 2
    )
    assert main(["createuser", "--username", "x3", "--password", "Kaihua-2019!", "--role", "wizard"]) == 2
    assert main(["createuser", "--username", "x4", "--password", "Kaihua-2019!", "--role", "commission_viewer"]) == 2
    assert not User.objects.filter(username__in=["x1", "x2", "x3", "x4"]).exists()


def test_createuser_commission_viewer_with_region() -> None:
    args = ["createuser", "--username", "wjw", "--password", "Quzhou-2018!", "--role", "commission_viewer"]
    assert main([*args, "--region", "330800"]) == 0


def test_token_create_prints_a_token_once_and_stores_only_its_hash(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["token", "create", "doctor"]) == 0
    key = capsys.readouterr().out.strip()
    assert key.startswith("yl_")
    assert not ApiToken.objects.filter(key_hash=key).exists()
    assert services.api_token_authenticate(key) == User.objects.get(username="doctor")
    assert main(["token", "create", "nobody"]) == 2


def test_seed_demo_twice_changes_nothing(capsys: pytest.CaptureFixture[str]) -> None:
    from yilian.core.models import AuditEvent

    before = AuditEvent.objects.count()
    assert main(["seed-demo"]) == 0
    assert AuditEvent.objects.count() == before
