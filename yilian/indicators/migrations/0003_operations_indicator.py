"""The total-operations indicator (``operations``), added to databases made before it shipped.

Adds it only when no indicator has the code yet (running again, or on a database that 0002 already
gave it, changes nothing); other shipped indicators an administrator removed stay removed."""

from __future__ import annotations

from typing import Any

from django.db import migrations

from yilian.indicators.defaults import load_defaults


def forwards(apps: Any, schema_editor: Any) -> None:
    load_defaults(apps.get_model("indicators", "Indicator"), codes=["operations"])


class Migration(migrations.Migration):
    dependencies = [("indicators", "0002_default_indicators")]

    operations = [migrations.RunPython(forwards, migrations.RunPython.noop)]
