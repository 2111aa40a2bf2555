"""Admin pieces for exports: the import-export mixin and "Export selected users' usage report".

``exports/admin.py`` mixes ``SafeExportAdminMixin`` into the usage log, session, payment and
user admins and adds ``export_usage_report`` to the user admin's actions.
"""

from __future__ import annotations

import tempfile
import zipfile

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.http import FileResponse, HttpRequest
from django.template.response import TemplateResponse
from django.utils import timezone
from import_export.admin import ExportActionMixin

from .api import content_disposition
from .registry import REGISTRY
from .resources import EXPORT_FORMATS, TextSafeXLSX
from .services import ExportError, usage_export

MAX_USERS = 50


class SafeExportAdminMixin(ExportActionMixin):
    """Export button (honours the changelist's filters and search) and "Export selected", CSV and XLSX.

    Exporting needs the view permission on the model, like the changelist it mirrors.
    """

    export_formats = EXPORT_FORMATS

    def has_export_permission(self, request: HttpRequest) -> bool:
        return self.has_view_permission(request)

    def get_export_data(self, file_format, request, queryset, **kwargs):
        # import-export asks for native types only for its own binary classes (an exact type check);
        # our XLSX subclass wants them too.
        if isinstance(file_format, TextSafeXLSX):
            if not self.has_export_permission(request):
                raise PermissionDenied
            kwargs.pop("encoding", None)
            data = self.get_data_for_export(request, queryset, force_native_type=True, **kwargs)
            return file_format.export_data(data)
        return super().get_export_data(file_format, request, queryset, **kwargs)


class UsageReportForm(forms.Form):
    start = forms.DateField(label="From", help_text="YYYY-MM-DD, in each user's own time zone.")
    end = forms.DateField(label="To", help_text="Inclusive.")
    format = forms.ChoiceField(choices=[(f.name, f.label) for f in REGISTRY.values()], initial="pdf")

    def clean(self):
        data = super().clean()
        if data.get("start") and data.get("end") and data["end"] < data["start"]:
            raise forms.ValidationError("'To' must be on or after 'From'.")
        return data


@admin.action(description="Export selected users' usage report", permissions=["view"])
def export_usage_report(modeladmin, request: HttpRequest, queryset):
    """Ask for a period and format, then download one file (one user) or a ZIP (several).

    Each file goes through ``exports.services.usage_export`` as the admin: the same
    permission, plan and recording rules as the API. Users whose plan lacks the format are
    listed in the ZIP's SKIPPED.txt and reported.
    """
    count = queryset.count()
    if count > MAX_USERS:
        modeladmin.message_user(
            request, f"Select at most {MAX_USERS} users for a usage report ({count} selected).", messages.ERROR
        )
        return None
    today = timezone.localdate()
    form = UsageReportForm(request.POST if "apply" in request.POST else None)
    if not form.is_bound:
        form = UsageReportForm(initial={"start": today.replace(day=1), "end": today, "format": "pdf"})
    if not form.is_valid():
        context = {
            **modeladmin.admin_site.each_context(request),
            "title": "Export selected users' usage report",
            "opts": modeladmin.model._meta,
            "form": form,
            "users": queryset,
            "action": "export_usage_report",
            "action_checkbox_name": admin.helpers.ACTION_CHECKBOX_NAME,
        }
        return TemplateResponse(request, "exports/admin/usage_report_action.html", context)
    return _reports_response(modeladmin, request, queryset, form.cleaned_data)


def _reports_response(modeladmin, request, queryset, data):
    fmt = data["format"]
    params = {"from": data["start"].isoformat(), "to": data["end"].isoformat()}
    files, skipped = [], []
    try:
        for user in queryset.order_by("email"):
            try:
                files.append(usage_export(request.user, fmt=fmt, params=params, user_id=user.pk))
            except ExportError as error:
                skipped.append(f"{user.email}: {error.message}")
    except BaseException:
        _close_all(files)
        raise
    if not files:
        modeladmin.message_user(request, "No report produced. " + " ".join(skipped), messages.WARNING)
        return None
    if len(files) == 1 and not skipped:
        export = files[0]
        response = FileResponse(export.content, content_type=export.content_type)
        response["Content-Disposition"] = content_disposition(export.filename, export.ascii_filename)
        return response
    archive = tempfile.TemporaryFile()
    try:
        with zipfile.ZipFile(archive, "w", compression=zipfile.ZIP_DEFLATED) as zf:
            for export in files:
                with zf.open(export.filename, "w") as entry:
                    for chunk in _chunks(export):
                        entry.write(chunk)
            if skipped:
                zf.writestr("SKIPPED.txt", "\n".join(skipped) + "\n")
    except BaseException:
        archive.close()
        _close_all(files)
        raise
    archive.seek(0)
    name = f"usage-reports_{params['from']}_{params['to']}.zip"
    if skipped:
        modeladmin.message_user(request, f"{len(skipped)} user(s) skipped; see SKIPPED.txt.", messages.WARNING)
    return FileResponse(archive, as_attachment=True, filename=name, content_type="application/zip")


def _close_all(files) -> None:
    """After a failure: close every produced export, so none keeps a temporary file and each CSV
    stream records itself failed (interrupted) at once rather than staying running until the sweep."""
    for export in files:
        export.content.close()  # closing one already closed or finished is harmless


def _chunks(export):
    """The export's bytes, whichever form it came in; closes it (a CSV stream finalises its record)."""
    try:
        if export.size is None:
            yield from export.content
        else:
            yield from iter(lambda: export.content.read(1 << 16), b"")
    finally:
        export.content.close()
