"""The built-in questionnaires (outpatient, inpatient, referred patient, staff), version 1, so every
database has them."""

from __future__ import annotations

from typing import Any

from django.db import migrations
from django.utils import timezone

from yilian.surveys.defaults import create_default_questionnaires


def forwards(apps: Any, schema_editor: Any) -> None:
    create_default_questionnaires(
        apps.get_model("surveys", "Questionnaire"), apps.get_model("surveys", "QuestionnaireVersion"), timezone.now()
    )


class Migration(migrations.Migration):
    dependencies = [("surveys", "0001_initial")]

    operations = [migrations.RunPython(forwards, migrations.RunPython.noop)]
