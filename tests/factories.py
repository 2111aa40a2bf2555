"""factory_boy factories for the domain records. Defaults are plausible; tests pin what they assert."""

import datetime
from decimal import Decimal

import factory
from django.utils import timezone

from coaching import rollups
from coaching.models import (
    ApiUsage,
    Client,
    CoachingSession,
    ExportRecord,
    MonthlyUsage,
    Payment,
    Plan,
    Subscription,
    UsageLog,
    User,
    minutes_from_seconds,
)


class UserFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = User
        django_get_or_create = ("email",)

    email = factory.Sequence(lambda n: f"user{n}@example.com")
    name = factory.Sequence(lambda n: f"User {n}")
    plan = factory.LazyFunction(lambda: Plan.objects.get(code="pro"))
    timezone = "Asia/Taipei"
    country = "TW"
    password = factory.django.Password("pw-for-tests-123")


class ClientFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Client

    coach = factory.SubFactory(UserFactory)
    name = factory.Sequence(lambda n: f"Client {n}")


class CoachingSessionFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = CoachingSession

    coach = factory.SubFactory(UserFactory)
    client = factory.SubFactory(ClientFactory, coach=factory.SelfAttribute("..coach"))
    title = "Coaching session"
    session_date = factory.LazyFunction(lambda: timezone.now().date())
    audio_filename = "session.m4a"
    audio_size_bytes = 1_048_576
    duration_seconds = 3600
    status = CoachingSession.Status.COMPLETED
    processing_started_at = factory.LazyFunction(timezone.now)
    processing_finished_at = factory.LazyAttribute(
        lambda o: o.processing_started_at + datetime.timedelta(minutes=10) if o.processing_started_at else None
    )

    @classmethod
    def _create(cls, model_class, *args, **kwargs):
        session = super()._create(model_class, *args, **kwargs)
        rollups.session_changed(session, None)  # the usage roll-ups count it, as the services do
        return session


class UsageLogFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = UsageLog

    user = factory.SubFactory(UserFactory)
    session = None
    kind = UsageLog.Kind.ORIGINAL
    seconds = 600
    minutes = factory.LazyAttribute(lambda o: minutes_from_seconds(o.seconds))
    provider = "google"
    provider_cost_usd = Decimal("0.1600")
    billable = True
    plan_code = "pro"
    created_at = factory.LazyFunction(timezone.now)

    @classmethod
    def _create(cls, model_class, *args, **kwargs):
        log = super()._create(model_class, *args, **kwargs)
        rollups.usage_logged(log, log.user)  # the usage roll-ups count it, as the services do
        return log


class MonthlyUsageFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = MonthlyUsage

    user = factory.SubFactory(UserFactory)
    period = factory.LazyFunction(lambda: timezone.now().date().replace(day=1))


class SubscriptionFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Subscription

    user = factory.SubFactory(UserFactory)
    plan = factory.LazyFunction(lambda: Plan.objects.get(code="pro"))
    billing_cycle = Subscription.Cycle.MONTHLY
    status = Subscription.Status.ACTIVE
    started_at = factory.LazyFunction(timezone.now)
    price = Decimal("899.00")

    @classmethod
    def _create(cls, model_class, *args, **kwargs):
        # Through the billing service, so every subscription a test makes has its history.
        from coaching.billing_services import subscription_import

        return subscription_import(**kwargs)


class PaymentFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Payment

    user = factory.SubFactory(UserFactory)
    amount = Decimal("899.00")
    status = Payment.Status.SUCCEEDED
    paid_at = factory.LazyFunction(timezone.now)
    provider_reference = factory.Sequence(lambda n: f"TEST{n:08d}")


class ExportRecordFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = ExportRecord

    requested_by = factory.SubFactory(UserFactory)
    subject = factory.SelfAttribute("requested_by")
    format = ExportRecord.Format.CSV
    status = ExportRecord.Status.SUCCEEDED
    rows = 10
    bytes = 2048

    @classmethod
    def _create(cls, model_class, *args, **kwargs):
        record = super()._create(model_class, *args, **kwargs)
        rollups.export_changed(record, None)  # the usage roll-ups count it, as the services do
        return record


class ApiUsageFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = ApiUsage

    user = factory.SubFactory(UserFactory)
    day = factory.LazyFunction(lambda: timezone.now().date())
    count = 1
