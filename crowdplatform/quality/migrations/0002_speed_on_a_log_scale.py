"""The study's speed figures are the typical (median) time and a robust SD of log-time."""

from django.db import migrations


class Migration(migrations.Migration):
    dependencies = [("quality", "0001_initial")]

    operations = [
        migrations.RenameField("studysignal", "speed_mean_seconds", "speed_typical_seconds"),
        migrations.RenameField("studysignal", "speed_sd_seconds", "speed_log_sd"),
    ]
