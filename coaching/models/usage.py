import datetime
from decimal import ROUND_HALF_UP, Decimal

from django.conf import settings
from django.db import models
from django.utils import timezone

TWO_PLACES = Decimal("0.01")


def minutes_from_seconds(seconds: int) -> Decimal:
    """Minutes = seconds / 60 as a decimal with two places, rounded half up: one rule everywhere."""
    return (Decimal(seconds) / Decimal(60)).quantize(TWO_PLACES, rounding=ROUND_HALF_UP)


def month_start(moment: datetime.datetime, tz) -> datetime.date:
    """The first day of the calendar month containing ``moment`` in time zone ``tz``."""
    return moment.astimezone(tz).date().replace(day=1)


class UsageLog(models.Model):
    """Append-only ledger of transcription usage. Never updated in place: corrections are new rows.

    Only ``original`` and ``retry_success`` count toward the monthly quota.
    """

    class Kind(models.TextChoices):
        ORIGINAL = "original"
        RETRY_FAILED = "retry_failed", "Free retry after a failure"
        RETRY_SUCCESS = "retry_success", "Paid re-transcription"
        ADJUSTMENT = "adjustment"

    QUOTA_KINDS = (Kind.ORIGINAL, Kind.RETRY_SUCCESS)

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="usage_logs")
    session = models.ForeignKey(
        "coaching.CoachingSession", on_delete=models.SET_NULL, null=True, blank=True, related_name="usage_logs"
    )
    client = models.ForeignKey(
        "coaching.Client", on_delete=models.SET_NULL, null=True, blank=True, related_name="usage_logs"
    )
    kind = models.CharField(max_length=16, choices=Kind.choices, default=Kind.ORIGINAL)
    seconds = models.IntegerField()
    minutes = models.DecimalField(max_digits=12, decimal_places=2)
    provider = models.CharField(max_length=16, blank=True)
    provider_cost_usd = models.DecimalField(max_digits=10, decimal_places=4, default=Decimal("0"))
    billable = models.BooleanField(default=True)
    plan_code = models.CharField(max_length=32, help_text="The user's plan when the usage happened.")
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["-created_at"]
        indexes = [
            models.Index(fields=["user", "created_at"]),
            models.Index(fields=["created_at"]),
        ]
        constraints = [
            models.CheckConstraint(
                condition=~models.Q(kind="original") | models.Q(seconds__gte=0), name="usage_original_non_negative"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.user_id} {self.kind} {self.minutes} min"

    def save(self, *args, **kwargs):
        if self.pk is not None and not kwargs.pop("force_ledger_write", False):
            raise ValueError("Usage logs are append-only: write a new adjustment row instead.")
        if self.minutes is None:
            self.minutes = minutes_from_seconds(self.seconds)
        super().save(*args, **kwargs)


class MonthlyUsage(models.Model):
    """The current month's counters for one user, with the month they belong to.

    A counter whose ``period`` is an earlier month reads as zero (see ``current``), so the
    month rolls over correctly even if no reset ever runs.
    """

    user = models.OneToOneField(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="monthly_usage")
    period = models.DateField(help_text="First day of the month, in the user's time zone.")
    minutes = models.DecimalField(max_digits=12, decimal_places=2, default=Decimal("0"))
    sessions = models.PositiveIntegerField(default=0)
    transcriptions = models.PositiveIntegerField(default=0)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        verbose_name_plural = "monthly usage"
        constraints = [
            models.CheckConstraint(condition=models.Q(minutes__gte=0), name="monthly_usage_minutes_non_negative"),
        ]

    def __str__(self) -> str:
        return f"{self.user_id} {self.period:%Y-%m}"

    def current(self, now: datetime.datetime | None = None) -> dict:
        """The counters as they read now: zero if they belong to an earlier month."""
        this_month = month_start(now or timezone.now(), self.user.tzinfo)
        if self.period != this_month:
            return {"period": this_month, "minutes": Decimal("0.00"), "sessions": 0, "transcriptions": 0}
        return {
            "period": self.period,
            "minutes": self.minutes,
            "sessions": self.sessions,
            "transcriptions": self.transcriptions,
        }


class MonthlyUsageArchive(models.Model):
    """Counter values as they were when archived, per user and month. Nothing a coach used is lost.

    ``bulk_operation`` is the operation that archived them (null for automatic rollover).
    """

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="usage_archives")
    period = models.DateField()
    minutes = models.DecimalField(max_digits=12, decimal_places=2)
    sessions = models.PositiveIntegerField()
    transcriptions = models.PositiveIntegerField()
    archived_at = models.DateTimeField(default=timezone.now)
    bulk_operation = models.ForeignKey(
        "coaching.BulkOperation", on_delete=models.PROTECT, null=True, blank=True, related_name="archives"
    )
    restored_at = models.DateTimeField(null=True, blank=True, help_text="When an undo put these values back.")

    class Meta:
        ordering = ["-period", "-archived_at"]
        indexes = [models.Index(fields=["user", "period"])]
        constraints = [
            # A retried chunk or a re-sent request must not archive the same user twice.
            models.UniqueConstraint(
                fields=["bulk_operation", "user", "period"],
                condition=models.Q(bulk_operation__isnull=False),
                name="archive_once_per_operation",
            ),
            models.UniqueConstraint(
                fields=["user", "period"],
                condition=models.Q(bulk_operation__isnull=True),
                name="rollover_archive_once_per_month",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.user_id} {self.period:%Y-%m} ({self.minutes} min)"


class ApiUsage(models.Model):
    """Authenticated API requests per user per UTC day."""

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="api_usage")
    day = models.DateField()
    count = models.PositiveIntegerField(default=0)

    class Meta:
        verbose_name_plural = "API usage"
        ordering = ["-day"]
        constraints = [models.UniqueConstraint(fields=["user", "day"], name="api_usage_one_row_per_day")]
        # Platform totals sum a range of days over every user. Not on ``count``: the counter's
        # UPDATE then changes no indexed column and stays a cheap HOT update.
        indexes = [models.Index(fields=["day"], name="api_usage_day_idx")]

    def __str__(self) -> str:
        return f"{self.user_id} {self.day} {self.count}"
