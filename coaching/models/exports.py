from django.conf import settings
from django.db import models
from django.utils import timezone


class ExportRecord(models.Model):
    """One attempt to export usage history, successful or not."""

    class Format(models.TextChoices):
        CSV = "csv", "CSV"
        PDF = "pdf", "PDF"
        XLSX = "xlsx", "Excel (XLSX)"

    class Status(models.TextChoices):
        PENDING = "pending"
        RUNNING = "running"
        SUCCEEDED = "succeeded"
        FAILED = "failed"

    requested_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, related_name="exports_requested"
    )
    subject = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="exports")
    format = models.CharField(max_length=8, choices=Format.choices)
    period_start = models.DateField(null=True, blank=True)
    period_end = models.DateField(null=True, blank=True, help_text="Inclusive.")
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.PENDING)
    rows = models.PositiveIntegerField(default=0)
    bytes = models.BigIntegerField(default=0)
    created_at = models.DateTimeField(default=timezone.now)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    error = models.TextField(blank=True)
    file_path = models.CharField(max_length=500, blank=True, help_text="For files kept on disk.")
    file_expires_at = models.DateTimeField(null=True, blank=True, help_text="When the kept file is deleted.")
    file_deleted_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]
        indexes = [
            models.Index(fields=["subject", "created_at"]),
            models.Index(fields=["created_at"]),
            # Usage roll-ups: kept files deleted in a range of days.
            models.Index(
                fields=["file_deleted_at"],
                condition=models.Q(file_deleted_at__isnull=False),
                name="export_file_deleted_idx",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.format} export of {self.subject_id} ({self.status})"
