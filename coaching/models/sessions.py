from decimal import Decimal

from django.conf import settings
from django.db import models
from django.utils import timezone


class Client(models.Model):
    """A coach's coachee. Names may be in any script."""

    coach = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="clients")
    name = models.CharField(max_length=150)
    email = models.EmailField(blank=True)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["name"]
        indexes = [models.Index(fields=["coach", "name"])]

    def __str__(self) -> str:
        return self.name


class CoachingSessionQuerySet(models.QuerySet):
    def alive(self):
        """Sessions not soft-deleted."""
        return self.filter(deleted_at__isnull=True)

    def completed(self):
        return self.filter(status=CoachingSession.Status.COMPLETED)

    def failed(self):
        return self.filter(status=CoachingSession.Status.FAILED)


class CoachingSession(models.Model):
    """A recorded coaching session and its transcription job.

    ``processing_started_at``/``processing_finished_at`` bound the interval the job
    was processing, ``[started, finished)``; a failed job's finish is when it failed.
    """

    class Status(models.TextChoices):
        UPLOADING = "uploading"
        PENDING = "pending"
        PROCESSING = "processing"
        COMPLETED = "completed"
        FAILED = "failed"
        CANCELLED = "cancelled"

    class Provider(models.TextChoices):
        GOOGLE = "google", "Google STT"
        ASSEMBLYAI = "assemblyai", "AssemblyAI"

    coach = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="sessions")
    client = models.ForeignKey(Client, on_delete=models.SET_NULL, null=True, blank=True, related_name="sessions")
    title = models.CharField(max_length=200)
    session_date = models.DateField()
    audio_filename = models.CharField(max_length=255, blank=True)
    audio_size_bytes = models.BigIntegerField(default=0)
    duration_seconds = models.PositiveIntegerField(default=0)
    language = models.CharField(max_length=16, default="cmn-Hant-TW")
    stt_provider = models.CharField(max_length=16, choices=Provider.choices, default=Provider.GOOGLE)
    provider_cost_usd = models.DecimalField(max_digits=10, decimal_places=4, default=Decimal("0"))
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.UPLOADING)
    processing_started_at = models.DateTimeField(null=True, blank=True)
    processing_finished_at = models.DateTimeField(null=True, blank=True)
    error_message = models.TextField(blank=True)
    fee_amount = models.DecimalField(
        max_digits=12, decimal_places=2, null=True, blank=True, help_text="What the coach charged the client."
    )
    fee_currency = models.CharField(max_length=3, blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    deleted_at = models.DateTimeField(null=True, blank=True)

    objects = CoachingSessionQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at"]
        indexes = [
            models.Index(fields=["coach", "created_at"]),
            models.Index(fields=["coach", "processing_started_at"]),
            models.Index(fields=["coach", "status", "processing_finished_at"]),
            # Platform-wide usage analytics (no coach to lead with): failures and the concurrency
            # sweep by finish time, sessions by status by upload time (benchmarks/usage_analytics.py).
            models.Index(fields=["processing_finished_at", "status"], name="session_finished_status_idx"),
            models.Index(fields=["created_at", "status"], name="session_created_status_idx"),
            # Usage roll-ups: audio deleted in a range of days (rebuild, partial-day balances).
            models.Index(
                fields=["deleted_at"], condition=models.Q(deleted_at__isnull=False), name="session_deleted_idx"
            ),
        ]
        constraints = [
            models.CheckConstraint(condition=models.Q(audio_size_bytes__gte=0), name="session_audio_size_non_negative"),
            models.CheckConstraint(
                condition=models.Q(processing_finished_at__isnull=True)
                | models.Q(
                    processing_started_at__isnull=False, processing_finished_at__gte=models.F("processing_started_at")
                ),
                name="session_processing_interval_ordered",
            ),
            models.CheckConstraint(
                condition=models.Q(fee_amount__isnull=True) | ~models.Q(fee_currency=""),
                name="session_fee_has_currency",
            ),
        ]

    def __str__(self) -> str:
        return self.title
