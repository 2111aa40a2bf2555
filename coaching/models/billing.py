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


MRR_PLACES = Decimal("0.000001")


class SubscriptionEvent(models.Model):
    """One change to a subscription that matters to revenue: append-only, never updated by hand.

    Written only by ``coaching.billing_services`` in the same transaction as the subscription row.
    The *facts* are the instant, the kind, and the subscription's plan, billing cycle, status, price
    and monthly recurring revenue before and after. The *customer columns* below them are derived
    from the user's facts up to and including this event's instant (``billing_services.
    customer_history_derive``): the user's MRR in this currency and paying state after the instant,
    and the instant's net MRR movement, put on the instant's last event so that several changes at
    one instant (ending one plan and starting another) count as one movement. Derived columns only
    depend on events at or before their own instant, so a later change never moves a closed period.

    A subscription's MRR is its monthly price (annual price / 12, kept to six places and rounded
    to cents only after summing) while it is ``active`` or ``past_due`` on a paid plan, else zero.
    """

    class Kind(models.TextChoices):
        STARTED = "started"
        PLAN_CHANGED = "plan_changed", "Plan or price changed"
        STATUS_CHANGED = "status_changed"
        CANCELLATION_REQUESTED = "cancellation_requested"
        REACTIVATED = "reactivated"
        ENDED = "ended"

    subscription = models.ForeignKey(Subscription, on_delete=models.CASCADE, related_name="events")
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="subscription_events")
    kind = models.CharField(max_length=24, choices=Kind.choices)
    at = models.DateTimeField(help_text="When it happened (not when it was recorded).")
    recorded_at = models.DateTimeField(default=timezone.now)
    currency = models.CharField(max_length=3)
    plan_before = models.CharField(max_length=32, blank=True)
    plan_after = models.CharField(max_length=32)
    cycle_before = models.CharField(max_length=8, blank=True)
    cycle_after = models.CharField(max_length=8)
    status_before = models.CharField(max_length=10, blank=True)
    status_after = models.CharField(max_length=10)
    price_before = models.DecimalField(max_digits=10, decimal_places=2, null=True, blank=True)
    price_after = models.DecimalField(max_digits=10, decimal_places=2)
    paying_before = models.BooleanField(default=False, help_text="Active or past due on a paid plan.")
    paying_after = models.BooleanField(default=False)
    mrr_before = models.DecimalField(max_digits=18, decimal_places=6, default=Decimal(0))
    mrr_after = models.DecimalField(max_digits=18, decimal_places=6, default=Decimal(0))
    # Derived, per customer (see the docstring).
    customer_mrr_after = models.DecimalField(max_digits=18, decimal_places=6, default=Decimal(0))
    customer_paying_after = models.BooleanField(default=False)
    paying_users_delta = models.SmallIntegerField(default=0)
    # The change in "the customer pays on this plan", on plan_after or plan_before (see derive).
    plan_after_users_delta = models.SmallIntegerField(default=0)
    plan_before_users_delta = models.SmallIntegerField(default=0)
    new_mrr = models.DecimalField(max_digits=18, decimal_places=6, default=Decimal(0))
    expansion_mrr = models.DecimalField(max_digits=18, decimal_places=6, default=Decimal(0))
    contraction_mrr = models.DecimalField(max_digits=18, decimal_places=6, default=Decimal(0))
    churned_mrr = models.DecimalField(max_digits=18, decimal_places=6, default=Decimal(0))
    reactivation_mrr = models.DecimalField(max_digits=18, decimal_places=6, default=Decimal(0))

    # Pointers (see billing_services.derive): on a loss of the customer, when they pay again; on a
    # new or reactivation movement, since when the customer's MRR in this currency had been zero.
    customer_paying_again_at = models.DateTimeField(null=True, blank=True)
    customer_mrr_zero_since = models.DateTimeField(null=True, blank=True)

    MOVEMENTS = ("new_mrr", "expansion_mrr", "contraction_mrr", "churned_mrr", "reactivation_mrr")
    DERIVED = (
        "customer_mrr_after",
        "customer_paying_after",
        "paying_users_delta",
        "plan_after_users_delta",
        "plan_before_users_delta",
        *MOVEMENTS,
        "customer_paying_again_at",
        "customer_mrr_zero_since",
    )

    class Meta:
        ordering = ["at", "id"]
        indexes = [
            # "Where did this customer stand before t?": answered from the index alone.
            models.Index(
                fields=["user", "at"],
                include=["currency", "customer_mrr_after", "customer_paying_after"],
                name="subscription_event_user_at",
            ),
            models.Index(fields=["subscription", "at"]),
            # Billing analytics sum a span of events from the index alone (PostgreSQL).
            models.Index(
                fields=["at"],
                include=[
                    "user",
                    "currency",
                    "mrr_before",
                    "mrr_after",
                    "paying_before",
                    "paying_after",
                    "status_before",
                    "status_after",
                    "plan_before",
                    "plan_after",
                    "paying_users_delta",
                    "plan_after_users_delta",
                    "plan_before_users_delta",
                ],
                name="subscription_event_at_covering",
            ),
            # The few instants a customer stopped paying (churn) or started again (retention's newcomers).
            models.Index(
                fields=["at"],
                condition=models.Q(paying_users_delta__lt=0),
                include=["user", "customer_paying_again_at"],
                name="subscription_event_losses",
            ),
            models.Index(
                fields=["at"],
                condition=~models.Q(new_mrr=0) | ~models.Q(reactivation_mrr=0),
                include=["user", "currency", "customer_mrr_zero_since"],
                name="subscription_event_gains",
            ),
            # Retention's newcomers: the MRR changes of one currency's events in a period, read from the index
            # alone (12-month summary at 100k users / 1M payments: 313 -> 251-275 ms, docs/billing.md).
            models.Index(
                fields=["currency", "at"],
                include=["user", "mrr_before", "mrr_after"],
                name="subscription_event_currency_at",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.at:%Y-%m-%d %H:%M} {self.kind} {self.subscription_id}"


def _sum_field(help_text: str, *, money: bool = False, places: int = 6):
    if money:
        return models.DecimalField(max_digits=20, decimal_places=places, default=0, db_default=0, help_text=help_text)
    return models.BigIntegerField(default=0, db_default=0, help_text=help_text)


class BillingBucket(models.Model):
    """Billing changes added up over one UTC hour or UTC day (``grain``): a roll-up of the history and payments.

    Written only by ``coaching.billing_rollups`` (called by the billing service, the payment and
    user signals and the bulk seeders, in the writer's transaction) and rebuilt from the records by
    ``manage.py billing_rollups_rebuild``. Each bucket adds up, over the records whose instant falls
    in ``[start, start + grain)``, what ``analytics.billing`` would sum over those raw rows, split by
    currency, plan (an event's state after counts under ``plan_after``, its state before, negated,
    under ``plan_before``), the user's country and whether the user is billable. A balance at an
    instant is the sum of every bucket before it plus the raw rows of the partial hour.
    """

    class Grain(models.TextChoices):
        HOUR = "hour"
        DAY = "day"

    grain = models.CharField(max_length=4, choices=Grain.choices)
    start = models.DateTimeField()
    currency = models.CharField(max_length=3, blank=True)
    plan = models.CharField(max_length=32, blank=True)
    country = models.CharField(max_length=2, blank=True)
    billable = models.BooleanField()
    mrr = _sum_field("Change in MRR (mrr_after - mrr_before).", money=True)
    past_due_mrr = _sum_field("Change in the past-due part of MRR.", money=True)
    subscriptions = _sum_field("Change in paying subscriptions.")
    plan_users = _sum_field("Change in customers paying on this plan.")
    paying_users = _sum_field("Change in paying customers (paying_users_delta).")
    new_mrr = _sum_field("MRR movement: new.", money=True)
    expansion_mrr = _sum_field("MRR movement: expansion.", money=True)
    contraction_mrr = _sum_field("MRR movement: contraction.", money=True)
    churned_mrr = _sum_field("MRR movement: churned.", money=True)
    reactivation_mrr = _sum_field("MRR movement: reactivation.", money=True)
    paid = _sum_field("Amount of payments paid here (succeeded, refunded or partially refunded).", money=True, places=2)
    refunded = _sum_field("Amount refunded here.", money=True, places=2)
    signups = _sum_field("Accounts created here.")
    # How many records of each kind (a currency or country is present in a sum even when it adds to zero).
    events = _sum_field("Subscription events here.")
    payments = _sum_field("Payments paid here.")
    refunds = _sum_field("Refunds made here.")

    SUMS = (
        "mrr",
        "past_due_mrr",
        "subscriptions",
        "plan_users",
        "paying_users",
        "new_mrr",
        "expansion_mrr",
        "contraction_mrr",
        "churned_mrr",
        "reactivation_mrr",
        "paid",
        "refunded",
        "signups",
        "events",
        "payments",
        "refunds",
    )
    KEYS = ("grain", "start", "currency", "plan", "country", "billable")

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["grain", "start", "currency", "plan", "country", "billable"], name="billing_bucket_once"
            )
        ]

    def __str__(self) -> str:
        return f"{self.grain} {self.start.isoformat()} {self.currency} {self.plan} {self.country}"
