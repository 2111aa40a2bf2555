"""Set-based statements that stay fast at a thousand users a chunk, on PostgreSQL and SQLite alike.

On PostgreSQL a chunk's ids travel as ONE array parameter (``IN (SELECT unnest(%s::uuid[]))``) not a
thousand bound values, and rows computed in Python (results, admin-log entries) are written with
``COPY``: both keep per-value work in Python out of the hot path. Elsewhere the same calls fall
back to ``IN (…)`` and ``bulk_create``.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence

from django.db import connection
from django.db.models import BooleanField, Model, Q
from django.db.models.expressions import RawSQL

# Above this many ids, scanning the table beats probing its index once per id.
HASHED_ABOVE = 10_000


def _postgres() -> bool:
    return connection.vendor == "postgresql"


def ids_in(model: type[Model], field: str, ids: Sequence[str | uuid.UUID]) -> Q | RawSQL:
    """A filter: ``model.field`` is one of ``ids`` (a UUID column, or a foreign key to a UUID)."""
    if not _postgres():
        return Q(**{f"{field}__in": list(ids)})
    column = model._meta.get_field(field).column
    array = "{" + ",".join(str(i) for i in ids) + "}"
    target = f'"{model._meta.db_table}"."{column}"'
    if len(ids) > HASHED_ABOVE:
        # Most of a table: one pass over it, each row looked up in the hashed array.
        return RawSQL(f"{target} = ANY(%s::uuid[])", [array], output_field=BooleanField())
    # A chunk's worth: one index probe per id ("= ANY" would tend to scan the whole table for it).
    return RawSQL(f"{target} IN (SELECT unnest(%s::uuid[]))", [array], output_field=BooleanField())


def insert_select(model: type[Model], columns: Sequence[str], queryset) -> int:
    """``INSERT INTO model (columns) SELECT …``: rows copied inside the database, none through Python.

    ``queryset`` must be a ``values_list`` whose columns line up with ``columns`` (field names of ``model``).
    """
    sql, params = queryset.query.sql_with_params()
    names = ", ".join(f'"{model._meta.get_field(c).column}"' for c in columns)
    with connection.cursor() as cursor:
        cursor.execute(f'INSERT INTO "{model._meta.db_table}" ({names}) {sql}', params)
        return cursor.rowcount


def insert_rows(model: type[Model], fields: Sequence[str], rows: list[tuple]) -> None:
    """Insert rows of plain values (UUIDs, strings, datetimes, dicts for JSON) in one go."""
    if not rows:
        return
    if not _postgres():
        model.objects.bulk_create([model(**dict(zip(fields, row, strict=True))) for row in rows], batch_size=1000)
        return
    from psycopg.types.json import Jsonb

    json_at = [i for i, f in enumerate(fields) if model._meta.get_field(f).get_internal_type() == "JSONField"]
    names = ", ".join(f'"{model._meta.get_field(f).column}"' for f in fields)
    statement = f'COPY "{model._meta.db_table}" ({names}) FROM STDIN'
    with connection.cursor() as cursor, cursor.cursor.copy(statement) as copy:
        for row in rows:
            if json_at:
                row = tuple(Jsonb(v) if i in json_at else v for i, v in enumerate(row))
            copy.write_row(row)
