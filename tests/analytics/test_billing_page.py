"""The staff billing overview page: who may see it, what it shows, and its states."""

from __future__ import annotations

import html as html_module
import json
import re

import pytest
import time_machine
from django.urls import reverse

from tests.analytics import billing_world as world
from tests.analytics.billing_world import NOW

URL = reverse("analytics:billing-overview")
MARCH = {"from": "2026-03-01", "to": "2026-03-31"}

pytestmark = pytest.mark.django_db


@pytest.fixture
def people():
    return world.build()


def page(client, user, params=None):
    client.force_login(user)
    with time_machine.travel(NOW, tick=False):
        return client.get(URL, params or {})


def metric(html: str, key: str) -> str:
    match = re.search(rf'data-metric="{key}">\s*<dt>[^<]*</dt>\s*<dd><span class="value">([^<]*)</span>', html)
    assert match, f"no card for {key}"
    return match.group(1)


def test_anonymous_is_sent_to_log_in(client):
    response = client.get(URL)
    assert response.status_code == 302
    assert response["Location"].startswith(reverse("login"))


def test_a_coach_gets_403(client, coach):
    client.force_login(coach)
    assert client.get(URL).status_code == 403


def test_staff_see_the_numbers_of_the_summary(client, staff, people):
    response = page(client, staff, MARCH)
    assert response.status_code == 200
    html = response.content.decode()
    assert (metric(html, "new_signups"), metric(html, "churned_users"), metric(html, "churn_rate")) == (
        "2",
        "2",
        "40.00 %",
    )
    assert (metric(html, "total_revenue"), metric(html, "mrr"), metric(html, "arpu")) == (
        "1,798.00",
        "2,733.79",
        "683.45",
    )
    assert (metric(html, "paying_users"), metric(html, "mrr_past_due")) == ("4", "899.00")
    # The table behind the trend chart and the breakdowns print the same figures.
    assert re.search(r'<th scope="row">2026-03</th><td class="num">1,798.00</td><td class="num">2,733.79</td>', html)
    pro = r'data-plan="pro"><th scope="row">Pro</th>' + r'<td class="num">3</td>' * 2 + r'<td class="num">2,434.79</td>'
    assert re.search(pro, html)
    assert 'data-country="HK"' in html and 'data-country="JP"' in html
    assert "Asia/Taipei" in html


def test_the_charts_get_their_data_from_the_summary_and_chart_js_from_static(client, staff, people):
    html = page(client, staff, MARCH).content.decode()
    specs = json.loads(
        re.search(r'<script id="billing-chart-specs" type="application/json">(.*?)</script>', html).group(1)
    )
    revenue, signups, movements = specs
    assert revenue["id"] == "billing-revenue-mrr" and revenue["labels"] == ["2026-03"]
    assert revenue["datasets"] == [
        {"label": "Net revenue", "data": [1798.0], "type": "bar"},
        {"label": "MRR at month end", "data": [2733.79], "type": "line"},
    ]
    assert [d["data"] for d in signups["datasets"]] == [[2], [2]]
    assert '<script src="/static/vendor/chart.js/chart.umd.min.js">' in html
    assert "cdn" not in html.lower()
    # Every chart has its table.
    assert 'aria-describedby="table-billing-revenue-mrr"' in html and 'id="table-billing-revenue-mrr"' in html
    assert 'aria-describedby="table-billing-signups-churn"' in html and 'id="table-billing-signups-churn"' in html


def test_the_period_selector_defaults_to_twelve_months(client, staff, people):
    html = page(client, staff).content.decode()
    assert '<option value="12m" selected>' in html
    specs = json.loads(re.search(r'id="billing-chart-specs" type="application/json">(.*?)</script>', html).group(1))
    # The 12 months ending today (15 April 2026): 16 April 2025 to 15 April 2026, not the year to date.
    assert specs[0]["labels"][0] == "2025-04" and specs[0]["labels"][-1] == "2026-04"
    assert "2025-04-16" in html and "2026-04-15" in html


def test_an_empty_period_says_so(client, staff):
    html = page(client, staff, {"from": "2021-01-01", "to": "2021-01-31"}).content.decode()
    assert "No billing activity in this period" in html
    assert metric(html, "arpu") == "—"


def test_a_bad_period_is_400_with_the_reason(client, staff):
    response = page(client, staff, {"from": "2026-03-10", "to": "2026-03-01"})
    assert response.status_code == 400
    assert "is before &#x27;from&#x27;" in response.content.decode()


def test_the_staff_navigation_links_here(client, staff):
    html = page(client, staff).content.decode()
    assert f'<a href="{URL}" aria-current="page">' in html


def test_churn_shows_the_numbers_behind_it_and_warns_about_a_tiny_base(client, staff, people):
    html = page(client, staff, MARCH).content.decode()
    assert metric(html, "churn_rate") == "40.00 %"
    assert "2 of 5 customers paying at the start" in html
    assert "Only 5 customers were paying at the start (fewer than 20)" in html
    assert metric(html, "net_revenue_retention") == "82.05 %"


def test_every_headline_shows_its_change_against_the_previous_period(client, staff, people):
    html = page(client, staff, MARCH).content.decode()
    change = lambda key: re.search(rf'data-change="{key}">([^<]*)</dd>', html).group(1).strip()  # noqa: E731
    assert change("mrr") == "-598.00 vs previous period"  # 2,733.79 now, 3,331.79 at 1 March
    assert change("new_signups") == "±0 vs previous period"
    assert change("churned_users") == "+2 vs previous period"
    assert change("churn_rate") == "+40.00 pp vs previous period"
    assert "2026-01-29 – 2026-02-28" in html


def test_the_movements_chart_table_and_csv_link(client, staff, people):
    html = page(client, staff, {"from": "2026-02-01", "to": "2026-03-31"}).content.decode()
    specs = json.loads(re.search(r'id="billing-chart-specs" type="application/json">(.*?)</script>', html).group(1))
    movements = next(spec for spec in specs if spec["id"] == "billing-mrr-movements")
    assert movements["labels"] == ["2026-02", "2026-03"]
    assert [d["label"] for d in movements["datasets"]] == [
        "New",
        "Expansion",
        "Contraction",
        "Churned",
        "Reactivation",
        "Net change",
    ]
    assert movements["datasets"][3]["data"] == [0.0, -1198.0]
    row = re.search(r'<tr class="total" data-movements="period">(.*?)</tr>', html).group(1)
    assert re.findall(r'<td class="num">([^<]*)</td>', row) == [
        "2,434.79",  # B, D, E at 1 February
        "1,497.00",  # C, H, A
        "299.00",
        "-299.00",
        "-1,198.00",
        "0.00",
        "2,733.79",
    ]
    assert "/api/v1/billing-analytics/movements.csv?from=2026-02-01&amp;to=2026-03-31" in html


def test_definitions_are_plain_words(client, staff, people):
    html = page(client, staff, MARCH).content.decode()
    section = html[html.index('id="definitions-heading"') :]
    assert "<code>" not in section and "started_at" not in section and "paying_users" not in section
    assert "Customers lost in the period divided by customers paying at its start" in section


def test_the_date_fields_are_the_sites_own_and_a_bad_date_is_a_400(client, staff, people):
    html = page(client, staff, MARCH).content.decode()
    assert 'type="date"' not in html  # the browser would draw it in its own language
    assert re.search(r'<input type="text" name="from" id="period-from" value="2026-03-01"[^>]* data-date-field', html)
    assert re.search(r'<input type="text" name="to" id="period-to" value="2026-03-31"[^>]* data-date-field', html)
    assert "js/date_field.js" in html
    bad = page(client, staff, {"from": "1 March 2026", "to": "2026-03-31"})
    assert bad.status_code == 400
    assert "'from' must be a date as YYYY-MM-DD" in html_module.unescape(bad.content.decode())
    assert "js/date_field.js" in bad.content.decode()  # the form to correct it keeps its date fields
