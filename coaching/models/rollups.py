"""Daily usage roll-ups: pre-added buckets, so a usage question costs the same whatever the history's length.

Written only by ``coaching.rollups`` (the ledger-writing services call it in their own transaction)
and rebuilt by ``manage.py rollups_rebuild``; read by ``analytics.rollups``. docs/usage-analytics.md
says what each bucket holds and how a period is cut into buckets and raw rows.
"""

from django.conf import settings
from django.db import models

from .sessions import CoachingSession

STATUS_FIELDS = {status: f"uploaded_{status}" for status in CoachingSession.Status.values}


def _count(help_text: str):
    return models.BigIntegerField(default=0, db_default=0, help_text=help_text)


class UsageRollup(models.Model):
    """What happened in one bucket of time: each record counts in the bucket its instant falls in.

    Additive fields add up over buckets; ``storage_delta_bytes`` adds up to a balance;
    ``processing_peak`` is the most *finished* processing intervals (clipped to the bucket) at one
    instant of it: the peak of a run of buckets is the largest of theirs (every instant lies in one).
    """

    minutes = models.DecimalField(
        max_digits=16, decimal_places=2, default=0, db_default=0, help_text="Every ledger row's minutes."
    )
    billable_minutes = models.DecimalField(
        max_digits=16, decimal_places=2, default=0, db_default=0, help_text="Quota kinds only: minutes_used."
    )
    sessions = _count("Ledger rows of kind original.")
    transcriptions = _count("Ledger rows of every kind but adjustment.")
    provider_cost_usd = models.DecimalField(max_digits=18, decimal_places=4, default=0, db_default=0)
    exports_csv = _count("Succeeded CSV exports, by creation time.")
    exports_pdf = _count("Succeeded PDF exports, by creation time.")
    exports_xlsx = _count("Succeeded XLSX exports, by creation time.")
    completed = _count("Sessions now completed whose processing finished here.")
    failed = _count("Sessions now failed whose processing finished here.")
    uploaded_uploading = _count("Sessions uploaded here, now uploading.")
    uploaded_pending = _count("Sessions uploaded here, now pending.")
    uploaded_processing = _count("Sessions uploaded here, now processing.")
    uploaded_completed = _count("Sessions uploaded here, now completed.")
    uploaded_failed = _count("Sessions uploaded here, now failed.")
    uploaded_cancelled = _count("Sessions uploaded here, now cancelled.")
    storage_delta_bytes = _count("Audio uploaded + export files kept, minus those deleted, here.")
    processing_peak = models.IntegerField(default=0, db_default=0, help_text="Finished intervals only.")

    class Meta:
        abstract = True


class CoachUsageDay(UsageRollup):
    """One coach's day, in the coach's time zone (``tz``: the zone the day was cut in)."""

    # No index of its own: ``coach_usage_day_once`` (user, day) serves every look-up by coach.
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="usage_days", db_index=False
    )
    day = models.DateField()
    tz = models.CharField(max_length=64)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["user", "day"], name="coach_usage_day_once")]

    def __str__(self) -> str:
        return f"{self.user_id} {self.day} ({self.tz})"


class PlatformUsageBucket(UsageRollup):
    """Every coach together, over a UTC day (``grain`` day) or a UTC quarter-hour (``grain`` q15).

    Quarter-hours let a period cut at any viewer's local midnight (every zone's offset since 2000
    is a whole number of quarter-hours) be answered from buckets; days keep long periods short.
    ``api_calls`` (day buckets only) is final once ``api_sealed``: a UTC day over is never counted again.
    """

    class Grain(models.TextChoices):
        DAY = "day"
        QUARTER = "q15"

    grain = models.CharField(max_length=3, choices=Grain.choices)
    start = models.DateTimeField()
    day = models.DateField(help_text="The UTC date of start.")
    api_calls = _count("Authenticated API requests of the UTC day (day buckets, once sealed).")
    api_sealed = models.BooleanField(default=False, db_default=False)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["grain", "start"], name="platform_usage_bucket_once")]
        indexes = [models.Index(fields=["grain", "day"], name="platform_usage_grain_day")]

    def __str__(self) -> str:
        return f"{self.grain} {self.start.isoformat()}"


ADDITIVE_FIELDS = [f.name for f in UsageRollup._meta.local_fields if f.name != "processing_peak"]
