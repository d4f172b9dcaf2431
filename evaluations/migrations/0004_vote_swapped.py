"""Vote.swapped: whether the task showed the item pair's high response on the left.

Denormalised from the task (response_a_id > response_b_id) so the quality refresh can map choices to
item-pair labels from the votes alone, without joining a study's votes with its tasks."""

from typing import Any

from django.db import migrations, models
from django.db.models import F


def swapped_fill(apps: Any, schema_editor: Any) -> None:
    Vote = apps.get_model("evaluations", "Vote")
    Vote.objects.filter(task__response_a_id__gt=F("task__response_b_id")).update(swapped=True)


class Migration(migrations.Migration):
    dependencies = [
        ("evaluations", "0003_study_quality_rules"),
    ]

    operations = [
        migrations.AddField(
            model_name="vote",
            name="swapped",
            field=models.BooleanField(
                default=False,
                help_text="The pair's high response was shown left (denormalised from the task).",
            ),
        ),
        migrations.RunPython(swapped_fill, migrations.RunPython.noop),
    ]
