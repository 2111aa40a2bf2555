"""Seed the plan table from the product's production plan table (shared DOMAIN.md)."""

from decimal import Decimal

from django.db import migrations

PLANS = [
    # code, name, minutes/month (None = unlimited), max file MB, formats, TWD monthly, TWD annual
    ("free", "Free", 200, 60, ["csv"], "0", "0"),
    ("student", "Student", 500, 100, ["csv", "pdf"], "299", "2990"),
    ("pro", "Pro", 3000, 200, ["csv", "pdf", "xlsx"], "899", "7641.50"),
    ("coaching_school", "Coaching School", None, 500, ["csv", "pdf", "xlsx"], "5000", "42500"),
]


def seed(apps, schema_editor):
    Plan = apps.get_model("coaching", "Plan")
    for order, (code, name, minutes, max_mb, formats, monthly, annual) in enumerate(PLANS):
        Plan.objects.update_or_create(
            code=code,
            defaults={
                "name": name,
                "minutes_per_month": minutes,
                "max_file_mb": max_mb,
                "export_formats": formats,
                "price_monthly": Decimal(monthly),
                "price_annual": Decimal(annual),
                "currency": "TWD",
                "sort_order": order,
            },
        )


class Migration(migrations.Migration):
    dependencies = [("coaching", "0001_initial")]
    operations = [migrations.RunPython(seed, migrations.RunPython.noop)]
