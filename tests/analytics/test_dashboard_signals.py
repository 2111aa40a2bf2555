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


def test_the_language_switch_is_remembered_per_user_over_the_browsers_language(coach):
    client = logged_in(coach)
    assert coach.language == ""  # never chosen: the browser decides
    page = client.get("/dashboard/usage", HTTP_ACCEPT_LANGUAGE="zh-TW")
    assert '<html lang="zh-hant">' in page.content.decode()
    assert '<option value="zh-hant" lang="zh-hant" selected>繁體中文</option>' in page.content.decode()

    switched = client.post("/accounts/language", {"language": "en", "next": "/dashboard/usage?period=7d"})
    assert (switched.status_code, switched.url) == (302, "/dashboard/usage?period=7d")
    coach.refresh_from_db()
    assert (coach.language, coach.preferred_language) == ("en", "en")

    # Another device, another browser language: the profile wins.
    elsewhere = logged_in(coach).get("/dashboard/usage", HTTP_ACCEPT_LANGUAGE="zh-TW")
    html = elsewhere.content.decode()
    assert '<html lang="en">' in html
    assert "<h1>Your usage</h1>" in html
    assert elsewhere["Content-Language"] == "en"


def test_the_language_switch_refuses_what_it_does_not_know_and_foreign_redirects(coach, client):
    bad = logged_in(coach).post("/accounts/language", {"language": "fr"})
    assert bad.status_code == 400
    assert bad.content.decode() == "Unknown language 'fr': choose one of en, zh-hant."
    away = client.post("/accounts/language", {"language": "zh-hant", "next": "https://evil.example/"})
    assert (away.status_code, away.url) == (302, "/")
    assert away.cookies["django_language"].value == "zh-hant"  # before logging in: the cookie carries it
    login = client.get("/accounts/login/", HTTP_ACCEPT_LANGUAGE="en")
    assert '<html lang="zh-hant">' in login.content.decode()
