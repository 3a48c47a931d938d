"""Display rules of registry values in both languages."""

from __future__ import annotations

import pytest
from django.utils import translation

from yilian.registry.models import Consortium, Region, localized, weekdays_display


@pytest.mark.parametrize(
    ("weekdays", "zh", "en"),
    [
        ("1234567", "每天", "daily"),
        ("12345", "周一至周五", "Mon–Fri"),
        ("135", "周一、周三、周五", "Mon, Wed, Fri"),
        ("67", "周六、周日", "Sat, Sun"),
    ],
)
def test_weekdays_read_as_words(weekdays: str, zh: str, en: str) -> None:
    with translation.override("zh-hans"):
        assert weekdays_display(weekdays) == zh
    with translation.override("en"):
        assert weekdays_display(weekdays) == en


def test_localized_falls_back_to_chinese_when_english_is_missing() -> None:
    with translation.override("en"):
        assert localized("衢州", "Quzhou") == "Quzhou"
        assert localized("衢州", "") == "衢州"
    with translation.override("zh-hans"):
        assert localized("衢州", "Quzhou") == "衢州"


@pytest.mark.django_db
def test_region_knows_its_ancestors_and_prefix() -> None:
    kaihua = Region.objects.get(code="330824")
    assert [r.code for r in kaihua.ancestors()] == ["330000", "330800"]
    assert Region.objects.get(code="330800").code_prefix() == "3308"
    assert Region.objects.get(code="330000").code_prefix() == "33"


@pytest.mark.django_db
def test_consortium_description_follows_the_language() -> None:
    consortium = Consortium.objects.get(code="zju2-quzhou")
    with translation.override("en"):
        assert "Zhejiang University" in consortium.description
        assert "五纵五横" not in consortium.description.split("(")[0]
    with translation.override("zh-hans"):
        assert consortium.description.startswith("2017年")


@pytest.mark.django_db
def test_an_external_identifier_names_one_institution_in_whichever_field() -> None:
    from django.core.exceptions import ValidationError

    from yilian.registry.models import Institution

    first, second = Institution.objects.order_by("code")[:2]
    first.org_code = "47000777X"
    first.full_clean()
    first.save()
    second.licence_no = "47000777-x"  # the same identifier, spelled otherwise, in another field
    with pytest.raises(ValidationError, match="47000777X"):
        second.full_clean()
