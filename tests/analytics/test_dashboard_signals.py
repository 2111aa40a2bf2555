"""What a person notices on the pages beyond the numbers: the refused page, the language, the wording."""

import logging

import pytest
from django.test import Client

pytestmark = pytest.mark.django_db


def logged_in(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


def test_a_coach_on_a_staff_page_gets_a_friendly_403_and_one_warning_line(coach, caplog):
    with caplog.at_level(logging.INFO):
        response = logged_in(coach).get("/dashboard/billing")

    assert response.status_code == 403
    html = response.content.decode()
    assert "This page is not available to you" in html
    assert 'href="/dashboard/usage">Go to your usage</a>' in html
    assert 'class="site-header"' in html  # the site's own page, with its navigation
    warnings = [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert [r.getMessage() for r in warnings] == [
        "Forbidden: GET /dashboard/billing for alice@example.com: The billing overview is for staff."
    ]
    assert all(r.exc_info is None for r in caplog.records)
