"""Render the usage report to PDF with WeasyPrint, fetching nothing but local static files.

The template (``templates/exports/usage_report.html``) carries its own CSS and inline SVG
charts, so a normal report fetches nothing at all; the fetcher is the guard for everything
else. A client's name or a session title is user input: the template escapes it, and even if
markup got through, ``StaticFilesFetcher`` refuses ``http(s)://``, ``file://`` outside
``static/``, and every other scheme but ``data:``.

Traditional Chinese: the CSS asks for "Noto Sans CJK TC" (Debian's fonts-noto-cjk, installed
by ``scripts/system-deps.sh``) and WeasyPrint embeds the subset of glyphs used.
"""

from __future__ import annotations

import logging
import mimetypes
import tempfile
from pathlib import Path
from typing import BinaryIO
from urllib.parse import urlsplit
from urllib.request import url2pathname

from django.conf import settings
from django.template.loader import render_to_string
from django.utils import translation

# WeasyPrint reports every layout step at INFO; the project's root logger is at INFO.
logging.getLogger("weasyprint.progress").setLevel(logging.WARNING)

from weasyprint import HTML, Attachment  # noqa: E402
from weasyprint.urls import URLFetcher, URLFetcherResponse  # noqa: E402

from .csv_export import usage_history_csv  # noqa: E402
from .registry import ExportJob  # noqa: E402
from .report import ReportContext, report_context  # noqa: E402

TEMPLATE = "exports/usage_report.html"


def static_root() -> Path:
    """The project's own ``static/`` directory: the only files a report may load."""
    return Path(settings.BASE_DIR, "static").resolve()


class StaticFilesFetcher(URLFetcher):
    """A WeasyPrint URL fetcher that serves files under ``root`` and ``data:`` URIs, nothing else.

    Every URL asked for is kept in ``requested`` and every refusal in ``refused`` (tests read them).
    """

    def __init__(self, root: Path | None = None) -> None:
        super().__init__(allowed_protocols=("file", "data"), allow_redirects=False, timeout=2)
        self.root = (root or static_root()).resolve()
        self.requested: list[str] = []
        self.refused: list[str] = []

    def fetch(self, url: str, headers=None) -> URLFetcherResponse:
        self.requested.append(url)
        scheme = url.split(":", 1)[0].lower()
        if scheme == "data":
            return super().fetch(url, headers)
        path = self._local_path(url) if scheme == "file" else None
        if path is None:
            self.refused.append(url)
            raise ValueError(f"Refused to fetch {url!r}: a report may only load files under static/.")
        content_type = mimetypes.guess_type(path.name)[0] or "application/octet-stream"
        return URLFetcherResponse(url, body=path.read_bytes(), headers={"Content-Type": content_type})

    def _local_path(self, url: str) -> Path | None:
        parts = urlsplit(url)
        if parts.netloc not in ("", "localhost"):
            return None
        path = Path(url2pathname(parts.path)).resolve()  # resolves "..", and symlinks out of static/
        if not path.is_relative_to(self.root) or not path.is_file():
            return None
        return path


def pdf_write(
    context: ReportContext,
    target: BinaryIO,
    *,
    attachment: BinaryIO | None = None,
    fetcher: StaticFilesFetcher | None = None,
) -> None:
    """Write the report for ``context`` to ``target``; ``attachment`` (a CSV file) is embedded if given."""
    fetcher = fetcher or StaticFilesFetcher()
    with translation.override(context.language):
        html = render_to_string(TEMPLATE, context.as_template_context())
    attachments = []
    if attachment is not None:
        attachments.append(
            Attachment(
                file_obj=attachment,
                base_url=str(fetcher.root),  # else WeasyPrint reads the anonymous file's fd number as its name
                name=context.attachment_name,
                description="The full usage history (CSV, UTF-8)",
                url_fetcher=fetcher,
                relationship="Data",
            )
        )
    document = HTML(string=html, base_url=str(fetcher.root) + "/", url_fetcher=fetcher)
    document.write_pdf(target, attachments=attachments)


def pdf_export_write(job: ExportJob) -> tuple[BinaryIO, int]:
    """The registry's PDF writer: the report in an anonymous temporary file, and its number of ledger rows.

    Past the row budget the full history rides along as an attached CSV (``job.attachment_name``).
    """
    context = report_context(
        job.subject,
        job.period,
        attachment_name=job.attachment_name,
        now=job.now,
        record_id=job.record_id,
        language=job.language or "en",
    )
    out = tempfile.TemporaryFile()
    attachment = None
    try:
        if context.detail_mode != "rows":
            attachment = tempfile.TemporaryFile()
            chunks = usage_history_csv(job.subject, job.period, bom=True, header=job.header)
            try:
                for chunk in chunks:
                    attachment.write(chunk)
            finally:
                # A failed write (disk full) must end the COPY: the record is written through its connection.
                chunks.close()
            attachment.seek(0)
        pdf_write(context, out, attachment=attachment)
    except BaseException:
        out.close()
        raise
    finally:
        if attachment is not None:
            attachment.close()
    return out, context.row_count
