"""The shipped indicator definitions (``yilian.indicators.defaults``), so every database has them."""

from __future__ import annotations

from typing import Any

from django.db import migrations

from yilian.indicators.defaults import load_defaults


def forwards(apps: Any, schema_editor: Any) -> None:
    load_defaults(apps.get_model("indicators", "Indicator"))


class Migration(migrations.Migration):
    dependencies = [("indicators", "0001_initial")]

    operations = [migrations.RunPython(forwards, migrations.RunPython.noop)]
