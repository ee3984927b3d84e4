"""Joins the migrations the features of session 3 were built on in parallel (each depends on
0013 and touches its own models): out-of-hours sends and staff alerts (issue 13), official
information (15), moderation and policy versions (17)."""

from django.db import migrations


class Migration(migrations.Migration):
    dependencies = [
        ("broadcasts", "0014_out_of_hours"),
        ("broadcasts", "0014_notifications"),
        ("broadcasts", "0014_official_alerts"),
        ("broadcasts", "0014_moderation_policy"),
    ]

    operations: list[migrations.operations.base.Operation] = []
