"""Each metric the usage API returns comes from the one function the registry names for it."""

import dataclasses
import datetime

import pytest
import time_machine

from analytics import usage
from analytics.periods import period_for
from analytics.usage import DEFINITIONS, METRIC_FUNCTIONS, METRIC_KINDS, UsageSummary
from coaching.services import session_create, session_processing_finish, session_processing_start, usage_record
from tests.factories import ApiUsageFactory, ExportRecordFactory

URL = "/api/v1/usage/analytics"
NOW = datetime.datetime(2026, 4, 20, 4, 0, tzinfo=datetime.UTC)


@pytest.fixture
def history(coach):
    at = NOW - datetime.timedelta(days=3)
    session = session_create(coach=coach, title="s", session_date=at.date(), audio_size_bytes=3 * 1_048_576,
                             duration_seconds=1800, at=at)
    session_processing_start(session, at=at)
    session_processing_finish(session, at=at + datetime.timedelta(minutes=7))
    usage_record(coach, session=None, kind="retry_success", seconds=90, at=at)
    ExportRecordFactory(requested_by=coach, format="pdf", created_at=at)
    ApiUsageFactory(user=coach, day=at.date(), count=4)


def test_the_registry_names_every_metric_of_the_summary():
    assert set(METRIC_FUNCTIONS) == set(UsageSummary.METRICS) | {"exports_by_format"}
    # Each has its kind (how the API serves it), its definition and its field on the summary.
    assert list(METRIC_KINDS) == list(METRIC_FUNCTIONS)
    assert set(METRIC_FUNCTIONS) <= set(DEFINITIONS)
    assert set(METRIC_FUNCTIONS) <= {field.name for field in dataclasses.fields(UsageSummary)}
    assert all(callable(fn) and fn.__module__ == "analytics.usage" for fn in METRIC_FUNCTIONS.values())


@pytest.mark.django_db
def test_each_api_metric_is_its_registered_functions_value(coach, history, api_for, monkeypatch):
    returned: dict[str, list] = {name: [] for name in METRIC_FUNCTIONS}

    def spy(name, fn):
        def wrapper(*args, **kwargs):
            value = fn(*args, **kwargs)
            returned[name].append(value)
            return value

        return wrapper

    for name, fn in list(METRIC_FUNCTIONS.items()):
        monkeypatch.setitem(usage.METRIC_FUNCTIONS, name, spy(name, fn))
    with time_machine.travel(NOW, tick=False):
        body = api_for(coach).get(URL, {"period": "30d"}).json()
    # One call per metric for the period and one for the previous period, in that order.
    assert all(len(values) == 2 for values in returned.values()), returned
    period = period_for("30d", tz=coach.tzinfo, now=NOW)
    current = UsageSummary(period=period, data_through=NOW, **{n: v[0] for n, v in returned.items()})
    previous = UsageSummary(period=period.previous(), data_through=NOW, **{n: v[1] for n, v in returned.items()})
    for summary, answer in ((current, body), (previous, body["previous"])):
        expected = {k: v for k, v in summary.as_dict().items() if k in METRIC_FUNCTIONS}
        assert {name: answer[name] for name in METRIC_FUNCTIONS} == expected
    # And the numbers are the history's, not placeholders.
    assert (body["minutes_used"], body["sessions"], body["storage_used_mb"]) == (31.5, 1, 3.0)
    assert (body["exports_by_format"]["pdf"], body["api_calls_made"], body["completed_transcriptions"]) == (1, 4, 1)
