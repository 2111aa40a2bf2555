"""Writes to the domain records. Admin, API, tasks and commands all call these."""

from __future__ import annotations

import datetime
import functools
from decimal import Decimal

from django.db import transaction
from django.utils import timezone

from . import live, rollups
from .models import Client, CoachingSession, MonthlyUsage, MonthlyUsageArchive, UsageLog, User, minutes_from_seconds
from .models.usage import month_start


def monthly_usage_add(
    user: User,
    *,
    minutes: Decimal = Decimal("0"),
    sessions: int = 0,
    transcriptions: int = 0,
    at: datetime.datetime | None = None,
) -> MonthlyUsage:
    """Add to the user's counters for the month containing ``at`` (in the user's time zone).

    Counters left over from an earlier month are archived first (automatic rollover, no
    operation) and restarted at zero, so nothing used is lost even if no reset ever ran.
    """
    at = at or timezone.now()
    period = month_start(at, user.tzinfo)
    with transaction.atomic():
        counter, _ = MonthlyUsage.objects.select_for_update().get_or_create(user=user, defaults={"period": period})
        if counter.period < period:
            if counter.minutes or counter.sessions or counter.transcriptions:
                MonthlyUsageArchive.objects.get_or_create(
                    user=user,
                    period=counter.period,
                    bulk_operation=None,
                    defaults={
                        "minutes": counter.minutes,
                        "sessions": counter.sessions,
                        "transcriptions": counter.transcriptions,
                        "archived_at": at,
                    },
                )
            counter.period, counter.minutes, counter.sessions, counter.transcriptions = period, Decimal("0"), 0, 0
        if counter.period == period:
            counter.minutes += minutes
            counter.sessions += sessions
            counter.transcriptions += transcriptions
            counter.save()
        # A late write for an earlier month than the counter's lives in the ledger only.
        return counter


def session_create(
    *,
    coach: User,
    title: str,
    session_date: datetime.date,
    client: Client | None = None,
    audio_filename: str = "",
    audio_size_bytes: int = 0,
    duration_seconds: int = 0,
    language: str = "cmn-Hant-TW",
    stt_provider: str = CoachingSession.Provider.GOOGLE,
    fee_amount: Decimal | None = None,
    fee_currency: str = "",
    at: datetime.datetime | None = None,
) -> CoachingSession:
    """A coach uploads a recording; it counts once its first transcription succeeds."""
    at = at or timezone.now()
    with transaction.atomic():
        session = CoachingSession.objects.create(
            coach=coach,
            client=client,
            title=title,
            session_date=session_date,
            audio_filename=audio_filename,
            audio_size_bytes=audio_size_bytes,
            duration_seconds=duration_seconds,
            language=language,
            stt_provider=stt_provider,
            fee_amount=fee_amount,
            fee_currency=fee_currency,
            status=CoachingSession.Status.PENDING,
            created_at=at,
        )
        rollups.session_changed(session, None, coach)
    return session


class SessionStateError(ValueError):
    """A step of a session's life its current state does not allow (it is left unchanged); says why."""


def _session_locked(session: CoachingSession) -> None:
    """Reload ``session`` and lock its row until the transaction ends: two reports of one job queue up."""
    session.refresh_from_db(from_queryset=CoachingSession.objects.select_for_update())


def session_processing_start(session: CoachingSession, *, at: datetime.datetime | None = None) -> None:
    """Record when transcription started, so overlapping processing can be measured.

    An uploaded session (``uploading`` or ``pending``) starts; a ``failed`` one may start again (the free
    retry, finished with ``kind="retry_failed"``). A deleted session cannot.
    """
    Status = CoachingSession.Status
    with transaction.atomic():
        _session_locked(session)
        before = rollups.SessionState.stored(session.pk)
        if session.deleted_at is not None:
            raise SessionStateError(f"Session {session.pk} was deleted: its audio is gone.")
        if session.status not in (Status.UPLOADING, Status.PENDING, Status.FAILED):
            raise SessionStateError(
                f"Session {session.pk} is {session.status}: only an uploaded or failed session can start."
            )
        session.status = Status.PROCESSING
        session.processing_started_at = at or timezone.now()
        session.processing_finished_at = None
        session.error_message = ""
        session.save(update_fields=["status", "processing_started_at", "processing_finished_at", "error_message"])
        rollups.session_changed(session, before)


def session_processing_finish(
    session: CoachingSession,
    *,
    error: str = "",
    kind: str = UsageLog.Kind.ORIGINAL,
    duration_seconds: int | None = None,
    provider_cost_usd: Decimal | None = None,
    at: datetime.datetime | None = None,
) -> UsageLog | None:
    """Record the end of processing when it happens, and on success its usage.

    ``kind`` says what the run was: ``original``, ``retry_failed`` (a free retry after a
    failure: in the ledger, not in the quota) or ``retry_success`` (a paid
    re-transcription: counts). A failure records its time and error and no usage.
    ``duration_seconds``, when given, is the recording's length as transcribed (what is used).
    Only a ``processing`` session can finish, once: a second report raises ``SessionStateError``
    and writes nothing, so usage is never counted twice.
    """
    at = at or timezone.now()
    with transaction.atomic():
        _session_locked(session)
        before = rollups.SessionState.stored(session.pk)
        if session.status != CoachingSession.Status.PROCESSING or session.processing_started_at is None:
            raise SessionStateError(
                f"Session {session.pk} is {session.status}: a session must be processing before it can finish."
            )
        if duration_seconds is not None:
            session.duration_seconds = duration_seconds
        session.status = CoachingSession.Status.FAILED if error else CoachingSession.Status.COMPLETED
        session.error_message = error
        session.processing_finished_at = at
        if provider_cost_usd is not None:
            session.provider_cost_usd = provider_cost_usd
        session.save(
            update_fields=["status", "error_message", "processing_finished_at", "provider_cost_usd", "duration_seconds"]
        )
        rollups.session_changed(session, before)
        if error:
            return None
        return usage_record(session.coach, session=session, kind=kind, seconds=session.duration_seconds, at=at)


def usage_log_build(
    user: User, *, session: CoachingSession | None, kind: str, seconds: int, at: datetime.datetime
) -> UsageLog:
    """One ledger row, not yet saved: minutes by the one rounding rule, billable for quota kinds only,
    provider and cost from the session, the user's plan at the time. The demo builds its rows with it too."""
    return UsageLog(
        user=user,
        session=session,
        client=session.client if session else None,
        kind=kind,
        seconds=seconds,
        minutes=minutes_from_seconds(seconds),
        provider=session.stt_provider if session else "",
        provider_cost_usd=session.provider_cost_usd if session else Decimal("0"),
        billable=kind in UsageLog.QUOTA_KINDS,
        plan_code=user.plan_id,
        created_at=at,
    )


def usage_record(
    user: User,
    *,
    session: CoachingSession | None,
    kind: str,
    seconds: int,
    at: datetime.datetime | None = None,
) -> UsageLog:
    """Append one ledger row and count it in the month's counters, as analytics count the ledger.

    minutes: quota kinds only (``original``, ``retry_success``); sessions: ``original`` rows;
    transcriptions: every kind but ``adjustment``.
    """
    at = at or timezone.now()
    counts = kind in UsageLog.QUOTA_KINDS
    with transaction.atomic():
        log = usage_log_build(user, session=session, kind=kind, seconds=seconds, at=at)
        log.save()
        rollups.usage_logged(log, user)
        monthly_usage_add(
            user,
            minutes=log.minutes if counts else Decimal("0"),
            sessions=1 if kind == UsageLog.Kind.ORIGINAL else 0,
            transcriptions=0 if kind == UsageLog.Kind.ADJUSTMENT else 1,
            at=at,
        )
        transaction.on_commit(functools.partial(live.usage_recorded, user.pk))  # open pages update (SSE)
    return log


def session_soft_delete(session: CoachingSession, *, at: datetime.datetime | None = None) -> None:
    """Delete a session's audio from storage; its usage stays in the ledger. Not while it is processing."""
    with transaction.atomic():
        _session_locked(session)
        before = rollups.SessionState.stored(session.pk)
        if session.deleted_at is not None:
            raise SessionStateError(f"Session {session.pk} was already deleted.")
        if session.status == CoachingSession.Status.PROCESSING:
            raise SessionStateError(f"Session {session.pk} is processing: report it finished or failed first.")
        session.deleted_at = at or timezone.now()
        session.save(update_fields=["deleted_at"])
        rollups.session_changed(session, before)
