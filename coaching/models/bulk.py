import uuid

from django.conf import settings
from django.db import models
from django.utils import timezone


class BulkOperation(models.Model):
    """An admin's bulk change over many users, run in chunks by Celery."""

    class Kind(models.TextChoices):
        RESET_USAGE = "reset_usage", "Reset usage"
        CHANGE_PLAN = "change_plan", "Change plan"
        DEACTIVATE = "deactivate"
        REACTIVATE = "reactivate"

    class Status(models.TextChoices):
        PENDING = "pending"
        RUNNING = "running"
        SUCCEEDED = "succeeded"
        PARTIALLY_FAILED = "partially_failed"
        FAILED = "failed"
        REVERTED = "reverted"

    FINISHED = (Status.SUCCEEDED, Status.PARTIALLY_FAILED, Status.FAILED, Status.REVERTED)

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    kind = models.CharField(max_length=16, choices=Kind.choices)
    parameters = models.JSONField(default=dict, blank=True)
    user_ids = models.JSONField(default=list, blank=True, help_text="The users selected, as given.")
    requested_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, related_name="bulk_operations"
    )
    dry_run = models.BooleanField(default=False)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.PENDING)
    total = models.PositiveIntegerField(default=0)
    processed = models.PositiveIntegerField(default=0)
    succeeded = models.PositiveIntegerField(default=0)
    skipped = models.PositiveIntegerField(default=0)
    failed = models.PositiveIntegerField(default=0)
    summary = models.JSONField(default=dict, blank=True, help_text="e.g. minutes affected, from the dry run.")
    error = models.TextField(blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    reverted_at = models.DateTimeField(null=True, blank=True)
    celery_task_id = models.CharField(max_length=255, blank=True)
    idempotency_key = models.CharField(
        max_length=255, blank=True, help_text="The API client's Idempotency-Key: a re-sent request returns this one."
    )

    class Meta:
        ordering = ["-created_at"]
        permissions = [("run_bulkoperation", "Can run bulk operations on users")]
        constraints = [
            models.UniqueConstraint(
                fields=["requested_by", "idempotency_key"],
                condition=~models.Q(idempotency_key=""),
                name="bulk_idempotency_key_once_per_user",
            ),
        ]

    def __str__(self) -> str:
        noun = "user" if self.total == 1 else "users"
        return f"{self.get_kind_display()} of {self.total} {noun} ({self.status})"

    @property
    def progress_percent(self) -> int:
        return 100 if not self.total else min(100, round(100 * self.processed / self.total))


class BulkOperationResult(models.Model):
    class Status(models.TextChoices):
        SUCCEEDED = "succeeded"
        SKIPPED = "skipped"
        FAILED = "failed"

    operation = models.ForeignKey(BulkOperation, on_delete=models.CASCADE, related_name="results")
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="bulk_results")
    status = models.CharField(max_length=10, choices=Status.choices)
    reason = models.TextField(blank=True, help_text="Why skipped, or the error when failed.")
    before = models.JSONField(default=dict, blank=True, help_text="The values before the change.")
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["operation", "created_at"]
        indexes = [models.Index(fields=["operation", "status"])]
        constraints = [
            # Each user is affected at most once per operation, however often a chunk is redelivered.
            models.UniqueConstraint(fields=["operation", "user"], name="bulk_result_once_per_user"),
        ]

    def __str__(self) -> str:
        return f"{self.user_id}: {self.status}"
