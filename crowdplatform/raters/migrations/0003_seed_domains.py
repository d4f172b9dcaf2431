"""The starting list of expertise domains; staff manage it from then on."""

from django.db import migrations

DOMAINS = [
    ("medicine", "Medicine"),
    ("law", "Law"),
    ("education", "Education"),
    ("software", "Software engineering"),
    ("finance", "Finance"),
    ("science", "Science"),
    ("creative-writing", "Creative writing"),
    ("mathematics", "Mathematics"),
    ("general", "General knowledge"),
]


def add_domains(apps, schema_editor):
    ExpertiseDomain = apps.get_model("raters", "ExpertiseDomain")
    for slug, name in DOMAINS:
        ExpertiseDomain.objects.get_or_create(slug=slug, defaults={"name": name})


class Migration(migrations.Migration):
    dependencies = [("raters", "0002_application")]

    operations = [migrations.RunPython(add_domains, migrations.RunPython.noop)]
