"""Inserting many rows fast: PostgreSQL COPY where we run on PostgreSQL, `bulk_create` elsewhere; and
updating many loaded rows in one statement (`update_objects`).

Django's `bulk_create` builds a model instance per row and, on PostgreSQL, quotes every value into the SQL
in Python; for a 100k-row import that is most of the time. COPY streams the rows instead. Ids are drawn
from the table's sequence first, so the caller can link rows (contacts → sites → devices) before writing.
Runs inside the caller's transaction.

`RowStream` goes one step further for the largest writes (an import): the COPYs run on a background thread
while the caller formats the next rows, so PostgreSQL stores and checks one batch while Python prepares the
next one instead of each waiting for the other.
"""

import datetime
import queue
import threading

import orjson
from django.db import connection, models

_ESCAPES = str.maketrans({"\\": "\\\\", "\t": "\\t", "\n": "\\n", "\r": "\\r"})


def copy_text(value) -> str:
    """One value in COPY's text format (NULL is \\N; backslash, tab, newline and CR escaped)."""
    if value is None:
        return "\\N"
    if isinstance(value, bool):
        return "t" if value else "f"
    if isinstance(value, str):
        return value.translate(_ESCAPES)
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, datetime.datetime | datetime.date):
        return value.isoformat()
    if isinstance(value, dict | list):
        return _json(value)
    return str(value).translate(_ESCAPES)


NULL = "\\N"


def _text(value) -> str:
    text = str(value)
    # most values need no escaping: four scans in C cost less than building a translated copy of each
    if "\\" in text or "\t" in text or "\n" in text or "\r" in text:
        return text.translate(_ESCAPES)
    return text


def _json(value) -> str:
    # orjson: 5-10× json.dumps on the events' payloads. Its output holds no raw tab, newline or CR (JSON
    # escapes them inside strings), so only its backslashes need COPY's escaping.
    text = orjson.dumps(value, option=orjson.OPT_NON_STR_KEYS).decode()
    return text.replace("\\", "\\\\") if "\\" in text else text


def _bool(value) -> str:
    return "t" if value else "f"


def _iso(value) -> str:
    return value.isoformat()


def _formatter(field):
    """The COPY text formatter of one column's values (not NULL), chosen once per column."""
    if isinstance(field, models.JSONField):
        return _json
    if isinstance(field, models.BooleanField):
        return _bool
    if isinstance(field, models.DateTimeField | models.DateField):
        return _iso
    if isinstance(field, models.ForeignKey | models.IntegerField):
        return str
    if isinstance(field, models.FloatField):
        return repr
    return _text


def _format_column(values: list, fmt) -> list[str]:
    first = values[0]
    # the same object on every row (the workspace, the import's timestamp, a state): formatted once. Identity,
    # not equality: 1 == True == 1.0 would write one of them for all.
    if all(value is first for value in values):
        return [NULL if first is None else fmt(first)] * len(values)
    return [NULL if value is None else fmt(value) for value in values]


def _fields(model: type[models.Model]):
    return [f for f in model._meta.concrete_fields if not f.primary_key]


def allocate_ids(model: type[models.Model], count: int) -> list[int]:
    """`count` new ids from the table's sequence (PostgreSQL), in one round trip."""
    if count <= 0:
        return []
    table, pk = model._meta.db_table, model._meta.pk.column
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT array_agg(nextval(pg_get_serial_sequence(%s, %s))) FROM generate_series(1, %s)",
            [table, pk, count],
        )
        return cursor.fetchone()[0]


def _copy_statement(model: type[models.Model], rows: list[dict], new_ids: list[int] | None) -> tuple[str, list[str]]:
    """The COPY statement for `rows` and its data, in blocks of text (COPY's text format)."""
    fields = _fields(model)
    columns = ([model._meta.pk.column] if new_ids is not None else []) + [f.column for f in fields]
    quote = connection.ops.quote_name
    sql = f"COPY {quote(model._meta.db_table)} ({', '.join(quote(c) for c in columns)}) FROM STDIN"
    # Formatted column by column (one formatter per column, a constant column once) and written as text:
    # adapting each value through psycopg's write_row was the larger part of the time of a large import.
    texts = [] if new_ids is None else [[str(pk) for pk in new_ids]]
    for field in fields:
        name, default = field.attname, field.get_default()
        texts.append(_format_column([row.get(name, default) for row in rows], _formatter(field)))
    lines = list(map("\t".join, zip(*texts, strict=True)))
    return sql, ["\n".join(lines[at : at + 5000]) + "\n" for at in range(0, len(lines), 5000)]


def _copy(raw_connection, sql: str, blocks: list[str]) -> None:
    with raw_connection.cursor() as cursor, cursor.copy(sql) as copy:
        for block in blocks:
            copy.write(block)


def _bulk_create(model: type[models.Model], rows: list[dict], *, ids: bool) -> list[int]:
    defaults = {f.attname: f.get_default() for f in _fields(model)}
    objs = [model(**{**defaults, **row}) for row in rows]
    model.objects.bulk_create(objs, batch_size=2000)
    return [obj.pk for obj in objs] if ids else []


def update_objects(objs: list[models.Model], fields: list[str]) -> None:
    """Write `fields` of many loaded instances of one model in one statement: `UPDATE … FROM (VALUES …)` through
    django-pgbulk on PostgreSQL, Django's `bulk_update` elsewhere (one CASE per row and field: compiling it
    costs about 15× the CPU at 20 rows, which is why PostgreSQL does not get it)."""
    if not objs:
        return
    if connection.vendor != "postgresql":
        type(objs[0]).objects.bulk_update(objs, fields)
        return
    import pgbulk

    per = max(1, 30_000 // (len(fields) + 1))  # PostgreSQL takes at most 65,535 parameters a statement
    for at in range(0, len(objs), per):
        pgbulk.update(type(objs[0]), objs[at : at + per], fields)


def insert_rows(model: type[models.Model], rows: list[dict], *, ids: bool = True) -> list[int]:
    """Insert `rows` ({attname: value}; absent fields take their model default). Returns the new ids in
    order when `ids` is true."""
    if not rows:
        return []
    if connection.vendor != "postgresql":
        return _bulk_create(model, rows, ids=ids)
    new_ids = allocate_ids(model, len(rows)) if ids else None
    sql, blocks = _copy_statement(model, rows, new_ids)
    with connection.cursor() as cursor:
        _copy(cursor.connection, sql, blocks)
    return new_ids or []


class RowStream:
    """`insert_rows` whose COPYs run in order on a background thread, inside the caller's transaction.

        with RowStream() as stream:
            stream.reserve(Contact, 1000)            # ids up front: no round trip while a COPY runs
            ids = stream.insert(Contact, rows)       # returns at once with the new ids
            stream.drain()                           # before reading or updating what was inserted

    The caller formats the next rows while PostgreSQL stores the last ones. PostgreSQL serializes the
    connection (psycopg locks it per COPY), so a query the caller runs meanwhile waits its turn; one that
    depends on queued rows must `drain()` first. Leaving the block waits for every COPY and raises the first
    one's error, if any. Elsewhere than PostgreSQL, `insert` writes at once (`bulk_create`).
    """

    QUEUED_BATCHES = 2  # formatted batches waiting at most: bounds the memory the text takes

    def __init__(self):
        self.streaming = connection.vendor == "postgresql"
        self._ids: dict[type[models.Model], list[int]] = {}
        self._queue: queue.Queue = queue.Queue(maxsize=self.QUEUED_BATCHES)
        self._error: BaseException | None = None
        self._cancelled = False
        self._thread: threading.Thread | None = None

    def __enter__(self):
        # outside a transaction each COPY would commit on its own and a failure would leave half an import
        if not connection.in_atomic_block:
            raise RuntimeError("RowStream needs the caller's transaction (transaction.atomic)")
        if self.streaming:
            connection.ensure_connection()
            raw = connection.connection
            self._thread = threading.Thread(target=self._run, args=(raw,), name="row-stream", daemon=True)
            self._thread.start()
        return self

    def __exit__(self, exc_type, exc, tb):
        self._cancelled = exc is not None  # the transaction is lost anyway: skip the COPYs still queued
        self._stop()
        if self._error is not None and self._error is not exc:
            # the COPY's own error (a constraint, a bad value) says more than what followed it
            raise self._error from exc

    def reserve(self, model: type[models.Model], count: int) -> None:
        if self.streaming and count > 0:
            self._ids.setdefault(model, []).extend(allocate_ids(model, count))

    def insert(self, model: type[models.Model], rows: list[dict], *, ids: bool = True) -> list[int]:
        if not rows:
            return []
        if not self.streaming:
            return _bulk_create(model, rows, ids=ids)
        if self._thread is None:
            raise RuntimeError("RowStream.insert outside its `with` block")
        self._raise_if_failed()
        new_ids = self._take_ids(model, len(rows)) if ids else None
        self._queue.put(_copy_statement(model, rows, new_ids))
        return new_ids or []

    def drain(self) -> None:
        if self.streaming:
            self._queue.join()
            self._raise_if_failed()

    def _take_ids(self, model, count: int) -> list[int]:
        pool = self._ids.get(model, [])
        if len(pool) < count:
            pool.extend(allocate_ids(model, count - len(pool)))
        taken, self._ids[model] = pool[:count], pool[count:]
        return taken

    def _raise_if_failed(self) -> None:
        if self._error is not None:
            raise self._error

    def _run(self, raw_connection) -> None:
        while True:
            item = self._queue.get()
            try:
                if item is None:
                    return
                if self._error is None and not self._cancelled:
                    _copy(raw_connection, *item)
            except BaseException as exc:  # handed to the caller's thread
                self._error = exc
            finally:
                self._queue.task_done()

    def _stop(self) -> None:
        if self._thread is not None:
            self._queue.put(None)
            self._thread.join()
            self._thread = None
