"""Inserting many rows fast: PostgreSQL COPY where we run on PostgreSQL, `bulk_create` elsewhere.

Django's `bulk_create` builds a model instance per row and, on PostgreSQL, quotes every value into the SQL
in Python; for a 100k-row import that is most of the time. COPY streams the rows instead. Ids are drawn
from the table's sequence first, so the caller can link rows (contacts → sites → devices) before writing.
Runs inside the caller's transaction.
"""

from django.db import connection, models
from psycopg.types.json import Jsonb


def _fields(model: type[models.Model]):
    return [f for f in model._meta.concrete_fields if not f.primary_key]


def allocate_ids(model: type[models.Model], count: int) -> list[int]:
    table, pk = model._meta.db_table, model._meta.pk.column
    with connection.cursor() as cursor:
        cursor.execute("SELECT nextval(pg_get_serial_sequence(%s, %s)) FROM generate_series(1, %s)", [table, pk, count])
        return [row[0] for row in cursor.fetchall()]


def insert_rows(model: type[models.Model], rows: list[dict], *, ids: bool = True) -> list[int]:
    """Insert `rows` ({attname: value}; absent fields take their model default). Returns the new ids in
    order when `ids` is true."""
    if not rows:
        return []
    fields = _fields(model)
    defaults = {f.attname: f.get_default() for f in fields}
    if connection.vendor != "postgresql":
        objs = [model(**{**defaults, **row}) for row in rows]
        model.objects.bulk_create(objs, batch_size=2000)
        return [obj.pk for obj in objs] if ids else []

    new_ids = allocate_ids(model, len(rows)) if ids else []
    json_fields = {f.attname for f in fields if isinstance(f, models.JSONField)}
    names = [f.attname for f in fields]
    columns = ([model._meta.pk.column] if ids else []) + [f.column for f in fields]
    quote = connection.ops.quote_name
    sql = f"COPY {quote(model._meta.db_table)} ({', '.join(quote(c) for c in columns)}) FROM STDIN"
    with connection.cursor() as cursor, cursor.connection.cursor() as raw, raw.copy(sql) as copy:
        for index, row in enumerate(rows):
            values = []
            for name in names:
                value = row[name] if name in row else defaults[name]
                values.append(Jsonb(value) if name in json_fields and value is not None else value)
            copy.write_row([new_ids[index], *values] if ids else values)
    return new_ids
