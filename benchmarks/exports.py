"""Exports: CSV throughput next to PostgreSQL's own COPY, and the PDF report's time and memory.

Creates its own PostgreSQL database (``bench_exports`` by default; never the dev database),
migrates it and seeds one coach per size with that many usage-ledger rows (``INSERT … SELECT
generate_series``: sessions with Chinese and English titles, clients named in both, a few
formula-looking titles, free retries and negative adjustments). Then, each figure in a fresh
subprocess so its peak memory is its own:

  csv   the product's CSV export (``exports.services.usage_export``: the ORM query over a
        server-side cursor, local-time ISO dates, formula neutralisation, the csv module, 64 KiB
        chunks) consumed to the end, as the HTTP response would be;
  copy  the baseline: ``COPY (<the same SELECT the ORM runs>) TO STDOUT WITH (FORMAT csv, HEADER)``
        with the session time zone set to the coach's, read to the end through psycopg;
  pdf   the PDF report (past 500 rows: daily aggregates plus the full CSV attached), and, for
        sizes up to ``--detail-max``, the same report forced to list every row (no budget).

Peak memory is the subprocess's peak RSS (``getrusage``), Django and all; "base" is its RSS just
before the export started. Goals (issue 5): CSV ≥ 50 % of COPY's rows/s, peak < 150 MB.

    .venv/bin/python benchmarks/exports.py              # CSV 10k, 100k, 1M; PDF 1k, 10k
    .venv/bin/python benchmarks/exports.py --quick      # CSV 2k, 20k; PDF 200, 1k
    .venv/bin/python benchmarks/exports.py --csv-sizes 50000 --pdf-sizes 2000 --reuse
Environment: DATABASE_URL names the server (its database name is replaced); default
postgres://postgres@127.0.0.1:5432/.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
import zoneinfo
from pathlib import Path

from _common import ROOT, prepare_database, setup_django

GOAL_RATIO = 0.5
GOAL_PEAK_MB = 150
TZ = "Asia/Taipei"
# Django's environment, in this process and in each measuring subprocess: forced, then unless set.
DJANGO_ENV = {"DB_CONN_MAX_AGE": "0"}
DJANGO_ENV_DEFAULTS = {"LOG_LEVEL": "WARNING"}


def sizes(text: str) -> list[int]:
    try:
        values = [int(v.replace("_", "")) for v in text.split(",") if v.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a comma-separated list of row counts") from None
    if any(v < 1 for v in values):
        raise argparse.ArgumentTypeError("row counts must be positive")
    return values


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--csv-sizes", type=sizes, default=[10_000, 100_000, 1_000_000], help="default 10k,100k,1M")
    parser.add_argument("--pdf-sizes", type=sizes, default=[1_000, 10_000], help="default 1k,10k")
    parser.add_argument("--detail-max", type=int, default=1_000, help="Also time an every-row PDF up to this size.")
    parser.add_argument(
        "--quick", action="store_true", help="CSV 2k and 20k rows, PDF 200 and 1k: well under a minute."
    )
    parser.add_argument("--database", default="bench_exports", help="Database to create (default bench_exports).")
    parser.add_argument("--reuse", action="store_true", help="Keep the database and coaches already seeded.")
    parser.add_argument("--repeat", type=int, default=3, help="Runs per CSV figure, fastest kept (default 3).")
    parser.add_argument(
        "--orm-max", type=int, default=100_000, help="Also time the portable ORM engine up to this size."
    )
    parser.add_argument(
        "--measure", choices=("csv-speed", "csv", "csv-orm", "copy", "pdf", "pdf-detail"), help=argparse.SUPPRESS
    )
    parser.add_argument("--rows", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.quick:
        args.csv_sizes, args.pdf_sizes = [2_000, 20_000], [200, 1_000]
    return args


def coach_email(rows: int) -> str:
    return f"bench-{rows}@example.com"


SESSIONS_SQL = """
    INSERT INTO coaching_coachingsession (coach_id, client_id, title, session_date, audio_filename, audio_size_bytes,
        duration_seconds, language, stt_provider, provider_cost_usd, status, processing_started_at,
        processing_finished_at, error_message, fee_amount, fee_currency, created_at)
    SELECT %(coach)s, c.id,
           (ARRAY['目標設定','職涯探索','Leadership check-in','Follow-up','=SUM(A1:A9)','Values work'])[1 + mod(i, 6)]
               || ' #' || i,
           (%(now)s - make_interval(days => mod(i, 365)))::date, 'session.m4a', 30000000, 1800 + mod(i, 1800),
           'cmn-Hant-TW', CASE WHEN mod(i, 3) = 0 THEN 'assemblyai' ELSE 'google' END, 0.48,
           CASE WHEN mod(i, 25) = 0 THEN 'failed' ELSE 'completed' END,
           %(now)s - make_interval(days => mod(i, 365), mins => 20), %(now)s - make_interval(days => mod(i, 365)),
           '', CASE WHEN mod(i, 2) = 0 THEN 2000 END, CASE WHEN mod(i, 2) = 0 THEN 'TWD' ELSE '' END,
           %(now)s - make_interval(days => mod(i, 365), mins => 30)
    FROM generate_series(1, %(sessions)s) AS i
    JOIN LATERAL (SELECT id FROM coaching_client WHERE coach_id = %(coach)s ORDER BY id
                  OFFSET mod(i, %(clients)s) LIMIT 1) c ON true
"""
LOGS_SQL = """
    INSERT INTO coaching_usagelog (user_id, session_id, client_id, kind, seconds, minutes, provider,
        provider_cost_usd, billable, plan_code, created_at)
    SELECT %(coach)s, s.id, s.client_id, k.kind, k.seconds, round(k.seconds / 60.0, 2), s.stt_provider,
           0.0160 * k.seconds / 60, k.kind <> 'retry_failed', 'pro',
           %(now)s - make_interval(secs => (i * 31536000.0 / %(rows)s))
    FROM generate_series(1, %(rows)s) AS i
    JOIN (SELECT id, client_id, stt_provider, row_number() OVER (ORDER BY id) - 1 AS k
          FROM coaching_coachingsession WHERE coach_id = %(coach)s) s ON s.k = mod(i, %(sessions)s)
    CROSS JOIN LATERAL (SELECT CASE WHEN mod(i, 50) = 0 THEN 'adjustment'
                                    WHEN mod(i, 20) = 0 THEN 'retry_failed' ELSE 'original' END AS kind,
                               CASE WHEN mod(i, 50) = 0 THEN -120 ELSE 600 + mod(i, 3000) END AS seconds) k
"""


def seed_coach(rows: int) -> tuple[bool, float]:
    """A coach with exactly ``rows`` ledger rows; (created?, seconds)."""
    import datetime

    from django.db import connection, transaction

    from coaching.models import Client, UsageLog, User

    email = coach_email(rows)
    coach = User.objects.filter(email=email).first()
    if coach and UsageLog.objects.filter(user=coach).count() == rows:
        return False, 0.0
    started = time.perf_counter()
    with transaction.atomic():
        User.objects.filter(email=email).delete()
        coach = User.objects.create_user(email=email, name=f"王小明 bench {rows}", plan_id="pro", timezone=TZ)
        names = ["王小明", "李美玲", "張志豪", "陳怡君", "Grace Lin", "Henry Wu", "-Ivy", "@Jack"]
        Client.objects.bulk_create(Client(coach=coach, name=f"{names[i % 8]} {i}") for i in range(40))
        params = {
            "coach": coach.pk,
            "now": datetime.datetime.now(datetime.UTC),
            "rows": rows,
            "sessions": max(1, min(rows // 2, 5000)),
            "clients": 40,
        }
        with connection.cursor() as cursor:
            cursor.execute(SESSIONS_SQL, params)
            cursor.execute(LOGS_SQL, params)
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE coaching_usagelog; ANALYZE coaching_coachingsession")
    return True, time.perf_counter() - started


def rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def whole_range() -> dict:
    """Every seeded row (the CSV figures)."""
    return {"from": "2020-01-01"}


def year_range() -> dict:
    """The last 365 local days, where the seeded rows are (the PDF figures)."""
    import datetime

    today = datetime.datetime.now(zoneinfo.ZoneInfo(TZ)).date()
    return {"from": (today - datetime.timedelta(days=365)).isoformat(), "to": today.isoformat()}


def measure(args: argparse.Namespace) -> dict:
    """Runs in the subprocess: one figure, printed as JSON."""
    setup_django(args.database, env=DJANGO_ENV, defaults=DJANGO_ENV_DEFAULTS)
    from coaching.models import User

    coach = User.objects.select_related("plan").get(email=coach_email(args.rows))
    if args.measure.startswith("pdf"):
        import exports.pdf_export  # noqa: F401  (WeasyPrint's import is not the export's memory)
    from analytics.periods import parse_period
    from exports import report, services
    from exports.csv_export import usage_history_csv

    period = parse_period(whole_range(), tz=coach.tzinfo)

    def export_csv() -> int:
        export = services.usage_export(coach, fmt="csv", params=whole_range())
        size = sum(len(chunk) for chunk in export.content)
        export.content.close()
        return size

    def orm_csv() -> int:
        return sum(len(chunk) for chunk in usage_history_csv(coach, period, engine="orm"))

    runs = {"csv": export_csv, "csv-orm": orm_csv, "copy": lambda: copy_baseline(coach)}
    if args.measure == "csv-speed":
        return interleaved(coach, runs, with_orm=args.rows <= args.orm_max, repeat=args.repeat)
    if not args.measure.startswith("pdf"):
        warm_up(coach, args.measure)
    base = rss_mb()
    started = time.perf_counter()
    if args.measure in runs:
        size = runs[args.measure]()
    else:
        if args.measure == "pdf-detail":
            report.ROW_BUDGET = args.rows  # list every row, as if there were no budget
        cold = None
        for _run in range(2):  # the first render also loads fonts; a server's later ones do not
            export = services.usage_export(coach, fmt="pdf", params=year_range())
            size = export.size
            export.content.close()
            if cold is None:
                cold, started = time.perf_counter() - started, time.perf_counter()
        return {
            "seconds": time.perf_counter() - started,
            "cold": cold,
            "bytes": size,
            "base_mb": base,
            "peak_mb": peak_mb(),
        }
    seconds = time.perf_counter() - started
    return {"seconds": seconds, "bytes": size, "base_mb": base, "peak_mb": peak_mb()}


def interleaved(coach, runs: dict, *, with_orm: bool, repeat: int) -> dict:
    """Time COPY and the export(s) in turns, ``repeat`` rounds, keeping each one's fastest.

    Taking turns in one process puts both under the same load (the machine is shared); the
    fastest run is the one least disturbed.
    """
    names = ["copy", "csv"] + (["csv-orm"] if with_orm else [])
    for name in names:
        warm_up(coach, name)
    best: dict[str, dict] = {}
    for _round in range(repeat):
        for name in names:
            started = time.perf_counter()
            size = runs[name]()
            seconds = time.perf_counter() - started
            if name not in best or seconds < best[name]["seconds"]:
                best[name] = {"seconds": seconds, "bytes": size}
    return best


def warm_up(coach, what: str) -> None:
    """One tiny run first (a day with no rows), as a server process would have done long before.

    Keeps first-call costs (imports, compiled queries, template loading) out of the figure; the
    per-request costs (permission and plan checks, the export record's two commits) stay in.
    """
    from exports import services

    day = {"from": "2020-01-01", "to": "2020-01-01"}
    if what == "copy":
        copy_baseline(coach, params=day)
    elif what == "csv-orm":
        from analytics.periods import parse_period
        from exports.csv_export import usage_history_csv

        for _chunk in usage_history_csv(coach, parse_period(day, tz=coach.tzinfo), engine="orm"):
            pass
    elif what in ("csv", "pdf", "pdf-detail"):
        export = services.usage_export(coach, fmt="csv" if what == "csv" else "pdf", params=day)
        for _chunk in export.content if export.size is None else ():
            pass
        export.content.close()


def copy_baseline(coach, params: dict | None = None) -> int:
    """COPY the same SELECT the export's ORM query runs (same joins, columns, order), in the coach's zone."""
    from django.db import connection

    from analytics.periods import parse_period
    from exports.rows import _FIELDS, usage_history_queryset

    period = parse_period(params or whole_range(), tz=coach.tzinfo)
    qs = usage_history_queryset(coach, period).values_list(*_FIELDS)
    sql, sql_params = qs.query.get_compiler(using="default").as_sql()
    size = 0
    with connection.cursor() as cursor:
        raw = cursor.cursor  # psycopg's own cursor; it merges the parameters client-side for COPY
        raw.execute(f"SET TIME ZONE '{TZ}'")
        with raw.copy(f"COPY ({sql}) TO STDOUT WITH (FORMAT csv, HEADER)", sql_params) as copy:
            for block in copy:
                size += len(block)
    return size


def run_child(args: argparse.Namespace, what: str, rows: int) -> dict:
    command = [sys.executable, __file__, "--measure", what, "--rows", str(rows), "--database", args.database]
    command += ["--repeat", str(args.repeat), "--orm-max", str(args.orm_max)]
    done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, env=os.environ.copy(), check=False)
    if done.returncode != 0:
        raise SystemExit(f"{what} {rows} failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def report_csv(args: argparse.Namespace) -> bool:
    ok = True
    print("\nCSV export vs PostgreSQL COPY of the same rows")
    print("  export: the API's export service (COPY engine on PostgreSQL), consumed to the end")
    print("  orm:    the portable engine (ORM .iterator() + csv module; what SQLite uses)")
    print("  COPY:   COPY (<the ORM's SELECT of the same rows>) TO STDOUT WITH (FORMAT csv, HEADER)")
    print(f"  seconds: fastest of {args.repeat} rounds taking turns in one process; peak RSS: a process of its own")
    print(
        f"{'rows':>9} {'engine':>7} | {'seconds':>8} {'rows/s':>10} {'MB':>7} | {'peak MB':>8} {'base MB':>8} | vs COPY"
    )
    for rows in args.csv_sizes:
        speed = run_child(args, "csv-speed", rows)
        names = [("export", "csv"), ("orm", "csv-orm"), ("COPY", "copy")]
        for label, name in names:
            if name not in speed:
                continue
            fig, memory = speed[name], run_child(args, name, rows)
            ratio = speed["copy"]["seconds"] / fig["seconds"]
            print(
                f"{rows:>9,} {label:>7} | {fig['seconds']:>8.2f} {rows / fig['seconds']:>10,.0f} "
                f"{fig['bytes'] / 1e6:>7.1f} | {memory['peak_mb']:>8.1f} {memory['base_mb']:>8.1f} | {ratio:>7.0%}"
            )
            if name == "csv":
                ok &= ratio >= GOAL_RATIO and memory["peak_mb"] < GOAL_PEAK_MB
    verdict = "met" if ok else "NOT met"
    print(f"goal: export >= {GOAL_RATIO:.0%} of COPY's rows/s and peak RSS < {GOAL_PEAK_MB} MB -> {verdict}")
    return ok


def report_pdf(args: argparse.Namespace) -> None:
    print("\nPDF report of the last 365 days (A4; past 500 rows: a line per month + the full CSV attached)")
    print("  cold: the process's first report (WeasyPrint loads fonts); warm: the next one; peak: the process")
    print(f"{'rows':>9} {'table':>12} | {'cold s':>7} {'warm s':>7} {'KB':>6} {'peak MB':>8} {'base MB':>8}")
    for rows in args.pdf_sizes:
        modes = ["pdf"] + (["pdf-detail"] if 500 < rows <= args.detail_max else [])
        for mode in modes:
            fig = run_child(args, mode, rows)
            label = "every row" if mode == "pdf-detail" or rows <= 500 else "per month"
            print(
                f"{rows:>9,} {label:>12} | {fig['cold']:>7.2f} {fig['seconds']:>7.2f} {fig['bytes'] / 1024:>6.0f} "
                f"{fig['peak_mb']:>8.1f} {fig['base_mb']:>8.1f}"
            )


def main() -> None:
    args = parse_args()
    if args.measure:
        print(json.dumps(measure(args)))
        return
    prepare_database(args.database, reuse=args.reuse, env=DJANGO_ENV, defaults=DJANGO_ENV_DEFAULTS)
    for rows in sorted(set(args.csv_sizes) | set(args.pdf_sizes)):
        created, seconds = seed_coach(rows)
        print(f"seeded {rows:,} ledger rows in {seconds:.1f} s" if created else f"reusing {rows:,} ledger rows")
    ok = report_csv(args) if args.csv_sizes else True
    if args.pdf_sizes:
        report_pdf(args)
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
