"""The export formats: one table that the endpoint, the permission check, the admin and the docs read.

A new format is one ``ExportFormat`` entry here and one writer module with a function
``(job: ExportJob) -> chunks | (file, rows)``; ``ExportRecord.Format`` lists the same names
(a test holds them equal, and the table in docs/exports.md).

``plan_permission`` is the code a plan's ``export_formats`` must list for its users to get the
format (the plan table, admin-editable, decides which plans do: ``Plan.export_formats``).
``writer`` is a dotted path, imported on first use, so a process that never renders a PDF never
imports WeasyPrint.
"""

from __future__ import annotations

import dataclasses
import datetime
from collections.abc import Callable, Sequence

from django.utils.module_loading import import_string

from analytics.periods import Period
from coaching.models import Plan, User


@dataclasses.dataclass(frozen=True)
class ExportJob:
    """What a writer is asked to write: whose history, which period, with which header row."""

    subject: User
    period: Period
    header: Sequence[str]
    bom: bool = True
    attachment_name: str = "usage-history.csv"  # the PDF's attached CSV, when it has one
    now: datetime.datetime | None = None
    record_id: int | None = None  # the ExportRecord: the PDF prints it as the report number
    language: str | None = None  # the reader's: the PDF's number format


@dataclasses.dataclass(frozen=True)
class ExportFormat:
    name: str  # the ?format= value and ExportRecord.format
    label: str  # what a person reads: buttons, admin, docs
    content_type: str
    extension: str
    writer: str  # dotted path of the writer function
    plan_permission: str  # what Plan.export_formats must list
    streamed: bool  # True: the writer returns byte chunks (rows and bytes counted as they go)

    def allowed(self, plan: Plan) -> bool:
        return plan.allows_format(self.plan_permission)

    def write_function(self) -> Callable[[ExportJob], object]:
        return import_string(self.writer)

    @property
    def media_type(self) -> str:
        """The content type without parameters (for the OpenAPI schema)."""
        return self.content_type.split(";")[0]


REGISTRY: dict[str, ExportFormat] = {
    f.name: f
    for f in (
        ExportFormat(
            name="csv",
            label="CSV",
            content_type="text/csv; charset=utf-8",
            extension="csv",
            writer="exports.csv_export.csv_export_write",
            plan_permission="csv",
            streamed=True,
        ),
        ExportFormat(
            name="pdf",
            label="PDF",
            content_type="application/pdf",
            extension="pdf",
            writer="exports.pdf_export.pdf_export_write",
            plan_permission="pdf",
            streamed=False,
        ),
        ExportFormat(
            name="xlsx",
            label="Excel (XLSX)",
            content_type="application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
            extension="xlsx",
            writer="exports.xlsx_export.xlsx_export_write",
            plan_permission="xlsx",
            streamed=False,
        ),
    )
}
FORMATS: tuple[str, ...] = tuple(REGISTRY)


def export_format(name: str) -> ExportFormat | None:
    return REGISTRY.get(name)


def formats_allowed(plan: Plan) -> list[ExportFormat]:
    """The formats ``plan`` includes, in registry order."""
    return [f for f in REGISTRY.values() if f.allowed(plan)]
