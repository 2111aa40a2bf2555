"""Admin side of bulk operations: the user-list actions (confirm with a dry run, then start) and the
operation page (live progress, counts, per-user results, undo). ``coaching/admin.py`` mixes these in.

Each action honours the changelist's selection, including "select all N matching" with its filters:
the confirmation page posts back to the same changelist URL with ``select_across`` and the filters
in the query string, as Django's ``delete_selected`` does.
"""

from __future__ import annotations

from django.contrib import admin, messages
from django.contrib.admin import helpers
from django.contrib.admin.utils import unquote
from django.core.exceptions import PermissionDenied
from django.core.paginator import Paginator
from django.http import HttpResponseNotAllowed, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import path, reverse

from coaching import bulk
from coaching.bulk.operations import counters_of
from coaching.models import BulkOperation, BulkOperationResult, Plan

Kind = BulkOperation.Kind
# A confirmation page lists this many of the selected users by name.
SAMPLE = 10
# Per-user results on the operation page, a page at a time.
RESULTS_PER_PAGE = 50


class BulkUserActionsMixin:
    """Bulk actions for the user list. Only users with the bulk permission see them."""

    bulk_confirm_template = "admin/coaching/user/bulk_confirm.html"

    def has_bulk_permission(self, request) -> bool:
        return request.user.has_perm(bulk.BULK_PERMISSION)

    @admin.action(description="Reset monthly usage", permissions=["bulk"])
    def reset_monthly_usage(self, request, queryset):
        return self._bulk_action(request, queryset, "reset_monthly_usage", Kind.RESET_USAGE, {"reset_type": "monthly"})

    @admin.action(description="Reset all usage", permissions=["bulk"])
    def reset_all_usage(self, request, queryset):
        return self._bulk_action(request, queryset, "reset_all_usage", Kind.RESET_USAGE, {"reset_type": "all"})

    @admin.action(description="Change plan", permissions=["bulk"])
    def change_plan(self, request, queryset):
        plan = request.POST.get("plan", "")
        return self._bulk_action(request, queryset, "change_plan", Kind.CHANGE_PLAN, {"plan": plan} if plan else {})

    @admin.action(description="Deactivate", permissions=["bulk"])
    def deactivate_users(self, request, queryset):
        return self._bulk_action(request, queryset, "deactivate_users", Kind.DEACTIVATE, {})

    @admin.action(description="Reactivate", permissions=["bulk"])
    def reactivate_users(self, request, queryset):
        return self._bulk_action(request, queryset, "reactivate_users", Kind.REACTIVATE, {})

    def _bulk_action(self, request, queryset, action: str, kind: str, parameters: dict):
        """First visit: the confirmation page with the dry run. Confirmed: start, then go to the operation page."""
        ids = list(queryset.order_by().values_list("pk", flat=True))
        error = ""
        if request.POST.get("post") == "yes":
            try:
                op, _ = bulk.operation_create(kind=kind, user_ids=ids, parameters=parameters, requested_by=request.user)
            except bulk.BulkInputError as exc:
                error = str(exc)
            else:
                label = op.get_kind_display().lower()
                noun = "user" if len(ids) == 1 else "users"
                self.message_user(request, f"Started: {label} of {len(ids):,} {noun}.", messages.SUCCESS)
                return HttpResponseRedirect(reverse("admin:coaching_bulkoperation_change", args=[op.pk]))
        select_across = request.POST.get("select_across") == "1"
        context = {
            **self.admin_site.each_context(request),
            "title": f"{getattr(self, action).short_description}: are you sure?",
            "opts": self.model._meta,
            "action": action,
            "kind": kind,
            "parameters": parameters,
            "preview": bulk.operation_preview(
                kind=kind, user_ids=ids, parameters=parameters, requested_by=request.user
            ),
            "sample": list(queryset.order_by("email")[:SAMPLE]),
            "more": max(0, len(ids) - SAMPLE),
            "select_across": select_across,
            "selected_ids": [] if select_across else [str(i) for i in ids],
            "action_checkbox_name": helpers.ACTION_CHECKBOX_NAME,
            "plans": Plan.objects.filter(is_active=True) if kind == Kind.CHANGE_PLAN else [],
            "error": error,
        }
        return TemplateResponse(request, self.bulk_confirm_template, context)


BULK_USER_ACTIONS = ["reset_monthly_usage", "reset_all_usage", "change_plan", "deactivate_users", "reactivate_users"]


class BulkOperationAdminMixin:
    """The operation page: progress bar polling the status API, counts, results a page at a time, undo."""

    operation_template = "admin/coaching/bulkoperation/operation.html"
    undo_confirm_template = "admin/coaching/bulkoperation/undo_confirm.html"

    def get_queryset(self, request):
        # The selection (up to 100,000 ids of JSON) is never shown: do not read it for every row or poll.
        return super().get_queryset(request).defer("user_ids")

    @admin.display(description="progress")
    def progress(self, op: BulkOperation) -> str:
        return f"{bulk.live(op).progress_percent}%"

    def get_urls(self):
        undo = path(
            "<path:object_id>/undo/",
            self.admin_site.admin_view(self.undo_view),
            name="coaching_bulkoperation_undo",
        )
        return [undo, *super().get_urls()]

    def change_view(self, request, object_id, form_url="", extra_context=None):
        op = self.get_object(request, unquote(object_id))
        if op is None:
            return self._get_obj_does_not_exist_redirect(request, self.opts, object_id)
        if not self.has_view_permission(request, op):
            raise PermissionDenied
        bulk.live(op)
        status = request.GET.get("status", "")
        results = op.results.select_related("user").order_by("id")
        if status in BulkOperationResult.Status.values:
            results = results.filter(status=status)
        page = Paginator(results, RESULTS_PER_PAGE).get_page(request.GET.get("p"))
        context = {
            **self.admin_site.each_context(request),
            "title": str(op),
            "opts": self.opts,
            "original": op,
            "op": op,
            "page_obj": page,
            "status_filter": status,
            "result_statuses": BulkOperationResult.Status.choices,
            "status_url": reverse("coaching:bulk-operation", args=[op.pk]),
            "finished_statuses": list(BulkOperation.FINISHED),
            "can_undo": request.user.has_perm(bulk.BULK_PERMISSION)
            and op.kind == Kind.RESET_USAGE
            and not op.dry_run
            and op.status in bulk.operations.UNDOABLE
            and not bulk.undo_pending(op),
            "undoing": bulk.undo_pending(op),
            "summary_rows": summary_rows(op.summary or {}),
            "undo_url": reverse("admin:coaching_bulkoperation_undo", args=[op.pk]),
            **(extra_context or {}),
        }
        return TemplateResponse(request, self.operation_template, context)

    def undo_view(self, request, object_id):
        """GET (or a POST not yet confirmed): what the undo restores, for how many users. Confirmed: queue it."""
        if request.method not in ("GET", "POST"):
            return HttpResponseNotAllowed(["GET", "POST"])
        if not request.user.has_perm(bulk.BULK_PERMISSION):
            raise PermissionDenied
        op = self.get_object(request, unquote(object_id))
        if op is None:
            return self._get_obj_does_not_exist_redirect(request, self.opts, object_id)
        back = HttpResponseRedirect(reverse("admin:coaching_bulkoperation_change", args=[op.pk]))
        refusal = bulk.operations.undo_refusal(op) or (
            f"Operation {op.id} is being undone already: wait for it to finish." if bulk.undo_pending(op) else ""
        )
        if refusal:
            self.message_user(request, refusal, messages.ERROR)
            return back
        preview = bulk.undo_preview(op)
        if request.method == "POST" and request.POST.get("post") == "yes":
            try:
                bulk.undo_request(op, by=request.user)
            except bulk.BulkStateError as exc:
                self.message_user(request, str(exc), messages.ERROR)
            else:
                self.message_user(
                    request, f"Undo started: restoring {counters_of(preview.users_restored)}.", messages.SUCCESS
                )
            return back
        context = {
            **self.admin_site.each_context(request),
            "title": "Undo this reset: are you sure?",
            "opts": self.opts,
            "op": op,
            "preview": preview,
            "restored_phrase": counters_of(preview.users_restored),
            "moved_on_phrase": counters_of(preview.users_moved_on),
        }
        return TemplateResponse(request, self.undo_confirm_template, context)


# What the operation page calls each figure of ``BulkOperation.summary`` (never the raw field names).
SUMMARY_SECTIONS = {"dry_run": "Dry run", "done": "Done", "undo": "Undo"}
SUMMARY_FIGURES = {
    "users_selected": "users selected",
    "users_affected": "users that would change",
    "users_skipped": "users with nothing to do",
    "minutes": "minutes",
    "sessions": "sessions",
    "transcriptions": "transcriptions",
    "by_current_plan": "plans they were on",
    "users_changed": "users changed",
    "minutes_archived": "minutes archived",
    "sessions_archived": "sessions archived",
    "transcriptions_archived": "transcriptions archived",
    "users_restored": "users restored",
    "users_not_restored": "users left alone (moved on to a later month)",
    "status": "status",
    "requested_by": "asked by",
    "requested_at": "asked at",
    "error": "error",
}


def _figure(value) -> str:
    if isinstance(value, dict):
        return ", ".join(f"{key}: {_figure(v)}" for key, v in value.items()) or "none"
    if isinstance(value, int) and not isinstance(value, bool):
        return f"{value:,}"
    return str(value)


def summary_rows(summary: dict) -> list[tuple[str, list[tuple[str, str]]]]:
    """The operation's summary as (section, [(figure, value)]) in words; deleted users as a count."""
    rows = []
    for section, figures in summary.items():
        if section == "missing_user_ids":
            rows.append(("Users deleted since", [("users", f"{len(figures):,}")]))
            continue
        label = SUMMARY_SECTIONS.get(section, section.replace("_", " ").capitalize())
        rows.append(
            (
                label,
                [(SUMMARY_FIGURES.get(key, key.replace("_", " ")), _figure(value)) for key, value in figures.items()],
            )
        )
    return rows
