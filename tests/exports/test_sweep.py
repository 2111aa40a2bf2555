"""The exports sweep: a record left "running" by a server process that died is failed, nothing else is touched."""

import datetime
import io

import pytest
import time_machine
from django.conf import settings
from django.core.management import CommandError, call_command

from coaching import celery_app
from coaching.models import ExportRecord
from exports import services, tasks
from tests.exports.conftest import APRIL, NOW
from tests.factories import ExportRecordFactory

pytestmark = pytest.mark.django_db

MESSAGE = "Interrupted: the export did not finish (server stopped mid-stream)"


def minutes_ago(minutes: int) -> datetime.datetime:
    return NOW - datetime.timedelta(minutes=minutes)


@pytest.fixture
def records(coach, frozen):
    """One record of each kind the sweep must tell apart, by name."""

    def make(status, started, **extra):
        return ExportRecordFactory(
            requested_by=coach, status=status, started_at=started, created_at=started or minutes_ago(20), **extra
        )

    done_at = minutes_ago(119)
    return {
        "fresh": make("running", minutes_ago(14), rows=0, bytes=0),
        "on_the_bound": make("running", minutes_ago(15), rows=0, bytes=0),
        "abandoned": make("running", minutes_ago(16), rows=0, bytes=0),
        "never_started": make("pending", None, rows=0, bytes=0),
        "succeeded": make("succeeded", minutes_ago(120), finished_at=done_at),
        "failed": make("failed", minutes_ago(120), finished_at=done_at, error="Unknown format 'docx'"),
    }


def state(record: ExportRecord) -> tuple:
    record.refresh_from_db()
    return record.status, record.error, record.finished_at


def test_only_exports_running_past_the_bound_are_failed(records):
    assert settings.EXPORT_STALE_MINUTES == 15
    assert services.stale_exports_fail() == 2

    assert state(records["abandoned"]) == ("failed", MESSAGE, NOW)
    assert state(records["never_started"]) == ("failed", MESSAGE, NOW)  # pending since created 20 minutes ago
    assert state(records["fresh"]) == ("running", "", None)
    assert state(records["on_the_bound"]) == ("running", "", None)  # strictly older than the bound
    assert state(records["succeeded"]) == ("succeeded", "", minutes_ago(119))
    assert state(records["failed"]) == ("failed", "Unknown format 'docx'", minutes_ago(119))
    assert ExportRecord.objects.filter(status="succeeded").count() == 1

    assert services.stale_exports_fail() == 0  # again: nothing left to fail, nothing failed twice


def test_the_bound_comes_from_the_setting_or_the_caller(records, settings):
    settings.EXPORT_STALE_MINUTES = 60
    assert services.stale_exports_fail() == 0
    assert services.stale_exports_fail(older_than=datetime.timedelta(minutes=14, seconds=59)) == 3
    assert state(records["on_the_bound"])[0] == "failed"
    assert state(records["fresh"])[0] == "running"


def test_a_csv_stream_never_closed_is_failed_once_stale(coach, history):
    # A server process killed mid-download never closes its stream: the record stays running.
    export = services.usage_export(coach, fmt="csv", params=APRIL)
    next(iter(export.content))
    record = ExportRecord.objects.get(pk=export.record_id)
    assert record.status == "running"

    assert services.stale_exports_fail() == 0  # it may still be downloading
    later = NOW + datetime.timedelta(minutes=15, seconds=1)
    with time_machine.travel(later, tick=False):
        assert services.stale_exports_fail() == 1
    record.refresh_from_db()
    assert (record.status, record.error, record.finished_at, record.rows) == ("failed", MESSAGE, later, 0)


def test_the_command_reports_the_count(records):
    out = io.StringIO()
    call_command("exports_sweep", stdout=out)
    assert out.getvalue() == "Marked 2 abandoned exports failed.\n"

    out = io.StringIO()
    call_command("exports_sweep", "--older-than-minutes", "14", stdout=out)
    assert out.getvalue() == "Marked 1 abandoned export failed.\n"
    assert state(records["on_the_bound"])[:2] == ("failed", MESSAGE)
    assert state(records["fresh"])[:2] == ("running", "")  # started exactly 14 minutes ago


def test_the_command_refuses_a_negative_bound(records):
    with pytest.raises(CommandError, match="--older-than-minutes must be 0 or more, not -5"):
        call_command("exports_sweep", "--older-than-minutes", "-5")
    assert ExportRecord.objects.filter(status="running").count() == 3


def test_beat_runs_the_sweep_task_every_five_minutes(records):
    entry = settings.CELERY_BEAT_SCHEDULE["exports-sweep"]
    assert entry["schedule"] == datetime.timedelta(minutes=5)
    task = celery_app.tasks[entry["task"]]  # a typo in the schedule would be a KeyError here
    assert task.name == tasks.exports_sweep.name == "exports.tasks.exports_sweep"

    assert task.apply().get() == 2
    assert state(records["abandoned"])[:2] == ("failed", MESSAGE)
