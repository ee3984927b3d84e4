"""Joins the two migrations of session 4: the audience bit masks and the inbox search."""

from django.db import migrations


class Migration(migrations.Migration):
    dependencies = [
        ("broadcasts", "0016_follower_choice_bits"),
        ("broadcasts", "0016_moderation_search"),
    ]

    operations: list = []
