from django.contrib import admin, messages
from django.contrib.admin import helpers
from django.contrib.auth.admin import UserAdmin as DjangoUserAdmin
from django.core.exceptions import ValidationError
from django.utils.translation import gettext_lazy as _

from . import billing_services
from .admin_bulk import BULK_USER_ACTIONS, BulkOperationAdminMixin, BulkUserActionsMixin
from .admin_users import MonthUsageColumnsMixin, PlanUsageFilter
from .models import (
    ApiUsage,
    BulkOperation,
    Client,
    CoachingSession,
    ExportRecord,
    MonthlyUsage,
    MonthlyUsageArchive,
    Payment,
    Plan,
    Subscription,
    SubscriptionEvent,
    UsageLog,
    User,
)


class CheckedSelectionMixin:
    """An action posted with a selection that is not a list of ids gets a message, not a 500.

    Django filters ``pk__in=<selection>`` as posted, and a UUID or integer key raises a
    ``ValidationError`` for "abc". A browser never sends one; a hand-made request can.
    """

    def response_action(self, request, queryset):
        key = self.model._meta.pk
        try:
            for value in request.POST.getlist(helpers.ACTION_CHECKBOX_NAME):
                key.to_python(value)
        except ValidationError:
            self.message_user(request, "The selection is not a list of this page's ids: select again.", messages.ERROR)
            return None  # the changelist redirects back to itself with the message
        return super().response_action(request, queryset)


class CheckedModelAdmin(CheckedSelectionMixin, admin.ModelAdmin):
    """The base of this app's admins."""


class ReadOnlyAdminMixin:
    """For ledgers: viewable and searchable, never edited or deleted by hand."""

    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


@admin.register(Plan)
class PlanAdmin(CheckedModelAdmin):
    list_display = [
        "code",
        "name",
        "minutes_per_month",
        "max_file_mb",
        "export_formats",
        "price_monthly",
        "price_annual",
        "currency",
    ]
    ordering = ["sort_order"]


@admin.register(User)
class UserAdmin(CheckedSelectionMixin, MonthUsageColumnsMixin, BulkUserActionsMixin, DjangoUserAdmin):
    actions = [*BULK_USER_ACTIONS]  # exports/admin.py adds the usage report and the export button
    list_display = [
        "email",
        "name",
        "plan",
        "minutes_this_month",
        "plan_share",
        "timezone",
        "country",
        "is_active",
        "is_staff",
        "is_test_account",
        "date_joined",
    ]
    list_filter = [
        PlanUsageFilter,
        "plan",
        "is_active",
        "is_staff",
        "is_superuser",
        "is_test_account",
        "country",
        "language",
    ]
    search_fields = ["email", "name"]
    ordering = ["email"]
    date_hierarchy = "date_joined"
    list_select_related = ["plan"]
    fieldsets = (
        (None, {"fields": ("email", "password")}),
        (_("Profile"), {"fields": ("name", "plan", "timezone", "country", "language", "is_test_account")}),
        (_("Permissions"), {"fields": ("is_active", "is_staff", "is_superuser", "groups", "user_permissions")}),
        (_("Dates"), {"fields": ("last_login", "date_joined")}),
    )
    add_fieldsets = ((None, {"classes": ("wide",), "fields": ("email", "name", "plan", "password1", "password2")}),)


@admin.register(Client)
class ClientAdmin(CheckedModelAdmin):
    list_display = ["name", "coach", "email", "created_at"]
    search_fields = ["name", "email", "coach__email", "coach__name"]
    autocomplete_fields = ["coach"]
    date_hierarchy = "created_at"


@admin.register(CoachingSession)
class CoachingSessionAdmin(CheckedModelAdmin):
    list_display = [
        "title",
        "coach",
        "client",
        "status",
        "session_date",
        "duration_seconds",
        "stt_provider",
        "processing_started_at",
        "processing_finished_at",
        "deleted_at",
    ]
    list_filter = ["status", "stt_provider", "language"]
    search_fields = ["title", "coach__email", "coach__name", "client__name"]
    date_hierarchy = "created_at"
    list_select_related = ["coach", "client"]
    raw_id_fields = ["coach", "client"]


@admin.register(UsageLog)
class UsageLogAdmin(ReadOnlyAdminMixin, CheckedModelAdmin):
    list_display = [
        "created_at",
        "user",
        "kind",
        "minutes",
        "seconds",
        "provider",
        "provider_cost_usd",
        "billable",
        "plan_code",
    ]
    list_filter = ["kind", "billable", "provider", "plan_code"]
    search_fields = ["user__email", "user__name"]
    date_hierarchy = "created_at"
    list_select_related = ["user"]


@admin.register(MonthlyUsage)
class MonthlyUsageAdmin(ReadOnlyAdminMixin, CheckedModelAdmin):
    """Counters change with usage and through archived resets only: a hand edit would lose usage unarchived."""

    list_display = ["user", "period", "minutes", "sessions", "transcriptions", "updated_at"]
    search_fields = ["user__email", "user__name"]
    list_filter = ["period"]
    list_select_related = ["user"]
    raw_id_fields = ["user"]


@admin.register(MonthlyUsageArchive)
class MonthlyUsageArchiveAdmin(ReadOnlyAdminMixin, CheckedModelAdmin):
    list_display = [
        "user",
        "period",
        "minutes",
        "sessions",
        "transcriptions",
        "archived_at",
        "bulk_operation",
        "restored_at",
    ]
    search_fields = ["user__email", "user__name"]
    list_filter = ["period"]
    date_hierarchy = "archived_at"
    list_select_related = ["user"]


class SubscriptionEventInline(admin.TabularInline):
    """The subscription's timeline, oldest first: read-only (the history is append-only)."""

    model = SubscriptionEvent
    fields = ["at", "kind", "plan_before", "plan_after", "status_before", "status_after", "mrr_before", "mrr_after"]
    readonly_fields = fields
    ordering = ["at", "id"]
    extra = 0
    can_delete = False

    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False


@admin.register(Subscription)
class SubscriptionAdmin(CheckedModelAdmin):
    """New subscriptions are written through the billing service with their history; an existing one's
    revenue fields are read-only here (change them through ``coaching.billing_services``, which records why)."""

    inlines = [SubscriptionEventInline]
    list_display = [
        "user",
        "plan",
        "billing_cycle",
        "status",
        "price",
        "currency",
        "started_at",
        "cancelled_at",
        "ended_at",
    ]
    list_filter = ["plan", "billing_cycle", "status"]
    search_fields = ["user__email", "user__name"]
    date_hierarchy = "started_at"
    list_select_related = ["user", "plan"]
    raw_id_fields = ["user"]
    HISTORY_FIELDS = ["user", "plan", "billing_cycle", "status", "started_at", "cancelled_at", "ended_at", "price"]

    def get_readonly_fields(self, request, obj=None):
        return [*self.HISTORY_FIELDS, "currency"] if obj else []

    def save_model(self, request, obj, form, change):
        if change:  # only current_period_end is editable: not a revenue change
            super().save_model(request, obj, form, change)
            return
        fields = {field: getattr(obj, field) for field in ["current_period_end", "currency", *self.HISTORY_FIELDS]}
        created = billing_services.subscription_import(**fields)
        obj.pk = created.pk

    def has_delete_permission(self, request, obj=None):
        return False  # its history would go with it


@admin.register(Payment)
class PaymentAdmin(CheckedModelAdmin):
    list_display = [
        "provider_reference",
        "user",
        "amount",
        "currency",
        "status",
        "paid_at",
        "refunded_amount",
        "refunded_at",
    ]
    list_filter = ["status", "currency"]
    search_fields = ["provider_reference", "user__email", "user__name"]
    date_hierarchy = "created_at"
    list_select_related = ["user"]
    raw_id_fields = ["user", "subscription"]


@admin.register(ExportRecord)
class ExportRecordAdmin(ReadOnlyAdminMixin, CheckedModelAdmin):
    list_display = ["created_at", "subject", "requested_by", "format", "status", "rows", "bytes", "finished_at"]
    list_filter = ["format", "status"]
    search_fields = ["subject__email", "requested_by__email"]
    date_hierarchy = "created_at"
    list_select_related = ["subject", "requested_by"]


@admin.register(ApiUsage)
class ApiUsageAdmin(ReadOnlyAdminMixin, CheckedModelAdmin):
    list_display = ["day", "user", "count"]
    search_fields = ["user__email"]
    date_hierarchy = "day"
    list_select_related = ["user"]


@admin.register(BulkOperation)
class BulkOperationAdmin(BulkOperationAdminMixin, CheckedModelAdmin):
    """The operation page (progress, results a page at a time, undo) lives in ``admin_bulk``."""

    list_display = [
        "created_at",
        "kind",
        "status",
        "progress",
        "dry_run",
        "total",
        "processed",
        "succeeded",
        "skipped",
        "failed",
        "requested_by",
    ]
    list_filter = ["kind", "status", "dry_run"]
    date_hierarchy = "created_at"
    list_select_related = ["requested_by"]
    readonly_fields = [f.name for f in BulkOperation._meta.fields]

    def has_add_permission(self, request):
        return False

    def has_delete_permission(self, request, obj=None):
        return False  # the record of what was done to whom, and a reset's undo
