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
                self.message_user(request, f"Started: {label} of {len(ids):,} users.", messages.SUCCESS)
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
            and op.status in bulk.operations.UNDOABLE,
            "undo_url": reverse("admin:coaching_bulkoperation_undo", args=[op.pk]),
            **(extra_context or {}),
        }
        return TemplateResponse(request, self.operation_template, context)

    def undo_view(self, request, object_id):
        if request.method != "POST":
            return HttpResponseNotAllowed(["POST"])
        if not request.user.has_perm(bulk.BULK_PERMISSION):
            raise PermissionDenied
        op = self.get_object(request, unquote(object_id))
        if op is None:
            return self._get_obj_does_not_exist_redirect(request, self.opts, object_id)
        try:
            op = bulk.operation_undo(op, by=request.user)
        except bulk.BulkStateError as exc:
            self.message_user(request, str(exc), messages.ERROR)
        else:
            undo = op.summary["undo"]
            self.message_user(
                request,
                f"Undone: {undo['users_restored']:,} users' counters restored"
                + (
                    f", {undo['users_not_restored']:,} left alone (moved on to a later month)."
                    if undo["users_not_restored"]
                    else "."
                ),
                messages.SUCCESS,
            )
        return HttpResponseRedirect(reverse("admin:coaching_bulkoperation_change", args=[op.pk]))
