"""django-import-export resources for the admin's Export button and "Export selected" action.

Export only (the ledger is append-only; nothing here imports). CSV (with a BOM, like the
product's own CSV) and XLSX, each made formula-safe the way the usage-history files are: CSV text
cells get a leading ``'`` (``exports.rows.neutralise``); XLSX text cells keep the text as typed,
stored as strings with Excel's ``quotePrefix`` when formula-like (``TextSafeXLSX``). Numbers,
dates and booleans are left alone, so ``-2.00`` stays a number. import-export's own
``IMPORT_EXPORT_ESCAPE_FORMULAE_ON_EXPORT`` is not used: it deletes a leading ``=`` (changing
the data) and ignores ``+ - @``, tab and carriage return.
"""

from __future__ import annotations

import io

from import_export import resources, widgets
from import_export.formats import base_formats
from openpyxl import Workbook

from coaching.models import CoachingSession, Payment, UsageLog, User

from .rows import neutralise
from .xlsx_export import text_cell

# Widgets whose cells are not free text: never prefixed.
TYPED_WIDGETS = (
    widgets.NumberWidget,
    widgets.BooleanWidget,
    widgets.DateWidget,
    widgets.DateTimeWidget,
    widgets.TimeWidget,
    widgets.DurationWidget,
)


class CSVWithBOM(base_formats.CSV):
    """CSV in UTF-8 with a byte-order mark, so Excel shows Chinese names correctly."""

    def export_data(self, dataset, **kwargs):
        return "\ufeff" + super().export_data(dataset, **kwargs)


class TextSafeXLSX(base_formats.XLSX):
    """XLSX whose text cells are strings, never formulas (``xlsx_export.text_cell``); other cells typed.

    Rows come with native types (numbers, naive local datetimes, booleans): ``SafeExportAdminMixin``
    asks for them, as import-export does for its own XLSX class.
    """

    def export_data(self, dataset, **kwargs):
        workbook = Workbook(write_only=True)
        sheet = workbook.create_sheet(title=(dataset.title or "Export")[:31])
        sheet.append([text_cell(sheet, str(header)) for header in dataset.headers or ()])
        for row in dataset:
            sheet.append([text_cell(sheet, value) if isinstance(value, str) else value for value in row])
        out = io.BytesIO()
        workbook.save(out)
        return out.getvalue()


EXPORT_FORMATS = [CSVWithBOM, TextSafeXLSX]


class SafeExportResource(resources.ModelResource):
    """A model resource whose text cells are spreadsheet-safe."""

    def export_field(self, field, instance, **kwargs):
        value = super().export_field(field, instance, **kwargs)
        if kwargs.get("force_native_type"):  # XLSX: the format marks text cells itself
            return value
        if isinstance(value, str) and not isinstance(field.widget, TYPED_WIDGETS):
            return neutralise(value)
        return value


class UsageLogResource(SafeExportResource):
    class Meta:
        model = UsageLog
        fields = (
            "id",
            "created_at",
            "user__email",
            "user__name",
            "kind",
            "session__title",
            "client__name",
            "seconds",
            "minutes",
            "provider",
            "provider_cost_usd",
            "billable",
            "plan_code",
        )
        export_order = fields


class CoachingSessionResource(SafeExportResource):
    class Meta:
        model = CoachingSession
        fields = (
            "id",
            "title",
            "coach__email",
            "client__name",
            "session_date",
            "status",
            "stt_provider",
            "language",
            "duration_seconds",
            "audio_size_bytes",
            "provider_cost_usd",
            "fee_amount",
            "fee_currency",
            "processing_started_at",
            "processing_finished_at",
            "error_message",
            "created_at",
            "deleted_at",
        )
        export_order = fields


class PaymentResource(SafeExportResource):
    class Meta:
        model = Payment
        fields = (
            "provider_reference",
            "user__email",
            "amount",
            "currency",
            "status",
            "paid_at",
            "refunded_amount",
            "refunded_at",
            "failure_reason",
            "created_at",
        )
        export_order = fields


class UserResource(SafeExportResource):
    """Profile fields only: never the password hash or permissions."""

    class Meta:
        model = User
        fields = (
            "id",
            "email",
            "name",
            "plan",
            "timezone",
            "country",
            "language",
            "date_joined",
            "is_active",
            "is_staff",
            "is_test_account",
        )
        export_order = fields
