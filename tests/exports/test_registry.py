"""The export registry is the one table the endpoint, the permission check, the admin and the docs follow."""

import re
from pathlib import Path

import pytest

from coaching.models import ExportRecord
from exports.admin_actions import UsageReportForm
from exports.registry import FORMATS, REGISTRY
from tests.exports.conftest import APRIL, set_plan

pytestmark = pytest.mark.django_db
URL = "/api/v1/usage-history/export"
DOCS = Path(__file__).resolve().parents[2] / "docs" / "exports.md"


def test_the_registry_names_the_formats_an_export_record_can_hold():
    assert FORMATS == tuple(ExportRecord.Format.values)
    for fmt in REGISTRY.values():
        assert callable(fmt.write_function())


@pytest.mark.parametrize("name", FORMATS)
def test_the_endpoint_answers_with_the_registrys_content_type_and_extension(api_for, coach, history, name):
    fmt = REGISTRY[name]
    response = api_for(coach).get(URL, {"format": name, **APRIL})

    assert response.status_code == 200
    assert response["Content-Type"] == fmt.content_type
    assert re.search(
        rf'filename="usage-history_alice_2026-04-01_2026-04-30\.{fmt.extension}"', response["Content-Disposition"]
    )
    assert ExportRecord.objects.get(pk=response["X-Export-Record"]).format == name


def test_the_permission_is_the_registrys_plan_permission(api_for, coach, history, monkeypatch):
    set_plan(coach, "student")  # csv and pdf
    assert [f.name for f in REGISTRY.values() if f.allowed(coach.plan)] == ["csv", "pdf"]
    assert api_for(coach).get(URL, {"format": "xlsx", **APRIL}).status_code == 403

    # A format whose permission code the plan lacks is refused, whatever its name.
    monkeypatch.setitem(
        REGISTRY, "pdf", REGISTRY["pdf"].__class__(**{**REGISTRY["pdf"].__dict__, "plan_permission": "pdf-extra"})
    )
    response = api_for(coach).get(URL, {"format": "pdf", **APRIL})
    assert response.status_code == 403
    assert "does not include PDF exports: it allows CSV." in response.json()["detail"]


def test_the_admin_offers_the_registrys_formats_by_label():
    assert UsageReportForm().fields["format"].choices == [(f.name, f.label) for f in REGISTRY.values()]


def test_the_docs_table_lists_every_format_with_its_content_type_and_extension():
    text = DOCS.read_text()
    for fmt in REGISTRY.values():
        assert f"| `{fmt.name}` | {fmt.label} | `{fmt.content_type}` | `.{fmt.extension}` |" in text
