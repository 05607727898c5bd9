"""Database expressions the ORM lacks, for both databases the portal runs on (PostgreSQL, SQLite)."""

import json

from django.db import NotSupportedError
from django.db.models import Func, JSONField


class JSONRemoveKey(Func):
    """A JSON object without one of its top-level keys, computed by the database (`jsonb - key` on
    PostgreSQL, `json_remove` on SQLite): an UPDATE drops the key without reading the rows, and leaves the
    other keys as they are at that moment."""

    output_field = JSONField()

    def __init__(self, expression, key: str):
        super().__init__(expression)
        self.key = key

    def as_sql(self, compiler, connection, **extra_context):
        raise NotSupportedError(f"JSONRemoveKey is not implemented for {connection.vendor}.")

    def as_postgresql(self, compiler, connection, **extra_context):
        sql, params = compiler.compile(self.source_expressions[0])
        return f"({sql} - %s::text)", (*params, self.key)

    def as_sqlite(self, compiler, connection, **extra_context):
        sql, params = compiler.compile(self.source_expressions[0])
        return f"json_remove({sql}, %s)", (*params, f"$.{json.dumps(self.key)}")
