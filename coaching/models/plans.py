from decimal import Decimal

from django.db import models


class Plan(models.Model):
    """A subscription plan. Seeded by a migration; admin-editable.

    ``minutes_per_month`` is null for an unlimited plan: never a magic number.
    """

    FREE = "free"
    STUDENT = "student"
    PRO = "pro"
    COACHING_SCHOOL = "coaching_school"

    code = models.SlugField(primary_key=True, max_length=32)
    name = models.CharField(max_length=64)
    minutes_per_month = models.PositiveIntegerField(
        null=True, blank=True, help_text="Transcription minutes a month; empty means unlimited."
    )
    max_file_mb = models.PositiveIntegerField()
    export_formats = models.JSONField(default=list, help_text='Usage-report formats, e.g. ["csv", "pdf"].')
    price_monthly = models.DecimalField(max_digits=10, decimal_places=2, default=Decimal("0"))
    price_annual = models.DecimalField(max_digits=10, decimal_places=2, default=Decimal("0"))
    currency = models.CharField(max_length=3, default="TWD")
    sort_order = models.PositiveSmallIntegerField(default=0)
    is_active = models.BooleanField(default=True)

    class Meta:
        ordering = ["sort_order"]

    def __str__(self) -> str:
        return self.name

    @property
    def is_unlimited(self) -> bool:
        return self.minutes_per_month is None

    @property
    def is_paid(self) -> bool:
        return self.price_monthly > 0 or self.price_annual > 0

    def price_for(self, cycle: str) -> Decimal:
        """The list price of one billing period: the annual price for ``annual``, else the monthly one."""
        return self.price_annual if cycle == "annual" else self.price_monthly

    def allows_format(self, fmt: str) -> bool:
        return fmt in self.export_formats
