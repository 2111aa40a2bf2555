from decimal import Decimal

from django.conf import settings
from django.db import models
from django.utils import timezone


class Subscription(models.Model):
    class Cycle(models.TextChoices):
        MONTHLY = "monthly"
        ANNUAL = "annual"

    class Status(models.TextChoices):
        TRIALING = "trialing"
        ACTIVE = "active"
        PAST_DUE = "past_due"
        CANCELLED = "cancelled"
        EXPIRED = "expired"

    PAYING_STATUSES = (Status.ACTIVE, Status.PAST_DUE)

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="subscriptions")
    plan = models.ForeignKey("coaching.Plan", on_delete=models.PROTECT, related_name="subscriptions")
    billing_cycle = models.CharField(max_length=8, choices=Cycle.choices, default=Cycle.MONTHLY)
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.ACTIVE)
    started_at = models.DateTimeField(default=timezone.now)
    current_period_end = models.DateTimeField(null=True, blank=True)
    cancelled_at = models.DateTimeField(null=True, blank=True, help_text="When the user asked to cancel.")
    ended_at = models.DateTimeField(null=True, blank=True, help_text="When access stopped.")
    price = models.DecimalField(max_digits=10, decimal_places=2, help_text="Price per billing cycle.")
    currency = models.CharField(max_length=3, default="TWD")

    class Meta:
        ordering = ["-started_at"]
        indexes = [
            models.Index(fields=["user", "started_at"]),
            models.Index(fields=["status", "ended_at"]),
        ]
        constraints = [
            models.CheckConstraint(condition=models.Q(price__gte=0), name="subscription_price_non_negative"),
            models.CheckConstraint(
                condition=models.Q(ended_at__isnull=True) | models.Q(ended_at__gte=models.F("started_at")),
                name="subscription_ends_after_start",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.user_id} {self.plan_id} {self.billing_cycle} {self.status}"


class Payment(models.Model):
    class Status(models.TextChoices):
        SUCCEEDED = "succeeded"
        FAILED = "failed"
        PENDING = "pending"
        REFUNDED = "refunded"
        PARTIALLY_REFUNDED = "partially_refunded"

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="payments")
    subscription = models.ForeignKey(
        Subscription, on_delete=models.SET_NULL, null=True, blank=True, related_name="payments"
    )
    amount = models.DecimalField(max_digits=12, decimal_places=2)
    currency = models.CharField(max_length=3, default="TWD")
    status = models.CharField(max_length=20, choices=Status.choices, default=Status.PENDING)
    paid_at = models.DateTimeField(null=True, blank=True)
    refunded_amount = models.DecimalField(max_digits=12, decimal_places=2, default=Decimal("0"))
    refunded_at = models.DateTimeField(null=True, blank=True)
    failure_reason = models.TextField(blank=True)
    provider_reference = models.CharField(max_length=64, unique=True, help_text="Payment gateway's transaction number.")
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["-created_at"]
        indexes = [
            models.Index(fields=["user", "paid_at"]),
            # Covering: billing analytics sum a period's payments by currency, country and plan
            # from the index alone (PostgreSQL; elsewhere a plain index on paid_at).
            models.Index(
                fields=["paid_at"],
                include=["status", "currency", "amount", "user", "subscription"],
                name="payment_paid_at_covering",
            ),
            models.Index(fields=["refunded_at"]),
        ]
        constraints = [
            models.CheckConstraint(condition=models.Q(amount__gte=0), name="payment_amount_non_negative"),
            models.CheckConstraint(
                condition=models.Q(refunded_amount__gte=0) & models.Q(refunded_amount__lte=models.F("amount")),
                name="payment_refund_within_amount",
            ),
            models.CheckConstraint(
                condition=models.Q(refunded_amount=0) | models.Q(refunded_at__isnull=False),
                name="payment_refund_has_date",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.provider_reference} {self.amount} {self.currency} {self.status}"
