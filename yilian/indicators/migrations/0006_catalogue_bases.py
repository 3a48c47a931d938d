"""The national-appraisal shares read the catalogue-derived operation columns: the level-4 share
counts ``level4`` (by the level-4 catalogue where one is loaded, else the reported level) instead
of ``operation_level = 4``, and the three shares' definitions say which basis decides.

Only what is still as shipped is changed: an indicator an administrator edited (or removed) keeps
its own numerator and texts. The values are written out here, not read from ``defaults``, so that
the migration means the same whatever the defaults become later."""

from __future__ import annotations

from typing import Any

from django.db import migrations

SURGERY = ["category", "in", ["surgery", "interventional"]]

CHANGES: dict[str, dict[str, tuple[Any, Any]]] = {
    "level4_share": {
        "numerator": (
            {"source": "operations", "measure": "distinct:record_id", "where": [SURGERY, ["operation_level", "=", 4]]},
            {"source": "operations", "measure": "distinct:record_id", "where": [SURGERY, ["level4", "=", True]]},
        ),
        "definition_zh": (
            "施行四级手术的出院患者人数 ÷ 同期出院患者手术人数 × 100%（手术级别取医院上报的级别）。",
            "施行四级手术的出院患者人数 ÷ 同期出院患者手术人数 × 100%（四级手术按已导入的国家四级手术目录"
            "认定；未导入目录的期间取医院上报的手术级别）。",
        ),
        "definition_en": (
            "Discharged stays with a level-4 operation ÷ discharged stays with surgery or "
            "intervention × 100 % (level as reported by the hospital).",
            "Discharged stays with a level-4 operation ÷ discharged stays with surgery or "
            "intervention × 100 % (level 4 by the national level-4 catalogue where one is loaded for the period, "
            "else the level reported by the hospital).",
        ),
    },
    "minimally_invasive_share": {
        "definition_zh": (
            "施行微创手术的出院患者人数 ÷ 同期出院患者手术人数 × 100%。",
            "施行微创手术的出院患者人数 ÷ 同期出院患者手术人数 × 100%（微创手术按已导入的国家微创手术目录"
            "认定；未导入目录的期间按本机构的微创手术编码清单和上报的微创标识）。",
        ),
        "definition_en": (
            "Discharged stays with a minimally invasive operation ÷ discharged stays with surgery "
            "or intervention × 100 %.",
            "Discharged stays with a minimally invasive operation ÷ discharged stays with surgery "
            "or intervention × 100 % (minimally invasive by the national catalogue where one is loaded for the "
            "period, else by the institution's own code list and the reported flag).",
        ),
    },
    "surgery_share": {
        "definition_zh": (
            "出院患者中施行手术或介入治疗的人数（一次住院多次手术计一次）÷ 同期出院患者总数 × 100%。",
            "出院患者中施行手术或介入治疗的人数（一次住院多次手术计一次）÷ 同期出院患者总数 × 100%"
            "（手术操作类别按已导入的国家手术操作分类认定，分类未列的编码按上报的类别）。",
        ),
        "definition_en": (
            "Discharged stays with at least one surgery or interventional treatment (several "
            "operations in one stay count once) ÷ all discharges in the period × 100 %.",
            "Discharged stays with at least one surgery or interventional treatment (several "
            "operations in one stay count once) ÷ all discharges in the period × 100 % (the category by the "
            "national operation classification where one is loaded, else as reported).",
        ),
    },
}


def _apply(apps: Any, *, forwards: bool) -> None:
    indicator_model = apps.get_model("indicators", "Indicator")
    for code, fields in CHANGES.items():
        indicator = indicator_model.objects.filter(code=code).first()
        if indicator is None:
            continue
        changed = []
        for name, (old, new) in fields.items():
            before, after = (old, new) if forwards else (new, old)
            if getattr(indicator, name) == before:
                setattr(indicator, name, after)
                changed.append(name)
        if changed:
            indicator.save(update_fields=[*changed, "updated_at"])


def forwards(apps: Any, schema_editor: Any) -> None:
    _apply(apps, forwards=True)


def backwards(apps: Any, schema_editor: Any) -> None:
    _apply(apps, forwards=False)


class Migration(migrations.Migration):
    dependencies = [("indicators", "0005_capability_indicators")]

    operations = [migrations.RunPython(forwards, backwards)]
