"""Cursor pagination: a page deep in a 100k-row result costs what the first page costs (no COUNT, no
OFFSET scan). The ordering must be unique and indexed; the default is the primary key, newest first."""

import datetime

from django.core.exceptions import ValidationError as DjangoValidationError
from rest_framework import exceptions, pagination
from rest_framework.response import Response

from texture_portal.filters import MAX_ID

INVALID_CURSOR = "Invalid cursor: use the `next` or `previous` link of a page as it was given."


class CursorPagination(pagination.CursorPagination):
    ordering = "-id"
    page_size = 50
    page_size_query_param = "perPage"
    max_page_size = 500
    cursor_query_param = "cursor"

    def paginate_queryset(self, queryset, request, view=None):
        self.model = queryset.model  # the cursor's position is checked against the ordering field
        return super().paginate_queryset(queryset, request, view)

    def decode_cursor(self, request):
        try:
            cursor = super().decode_cursor(request)
        except exceptions.NotFound as exc:  # DRF answers a bad cursor with 404; it is a bad parameter
            raise self.invalid_cursor() from exc
        if cursor is not None and cursor.position is not None:
            self.check_position(cursor.position)
        return cursor

    def check_position(self, position: str) -> None:
        """DRF hands the position to the queryset as it finds it in the (client-held) cursor: one that is no
        value of the ordering field (text for an id, a NUL, SQL) would be a database error, not a 400."""
        field = self.model._meta.get_field(self.ordering_field_name())
        try:
            value = field.to_python(position)
        except (DjangoValidationError, ValueError, TypeError, OverflowError) as exc:
            raise self.invalid_cursor() from exc
        if value is None or "\x00" in position or (isinstance(value, int) and not 0 <= value <= MAX_ID):
            raise self.invalid_cursor()
        if isinstance(value, datetime.datetime):
            if value.tzinfo is None:  # a naive time: not one this API's links carry
                raise self.invalid_cursor()
            try:
                value.astimezone(datetime.UTC)  # what the database driver will do with it
            except (OverflowError, ValueError) as exc:
                raise self.invalid_cursor() from exc

    def ordering_field_name(self) -> str:
        ordering = self.ordering if isinstance(self.ordering, str) else self.ordering[0]
        return ordering.lstrip("-")

    def invalid_cursor(self) -> exceptions.ValidationError:
        return exceptions.ValidationError({self.cursor_query_param: [INVALID_CURSOR]})

    def get_paginated_response(self, data):
        return Response(
            {
                "data": data,
                "perPage": self.page_size,
                "next": self.get_next_link(),
                "previous": self.get_previous_link(),
            }
        )

    def get_paginated_response_schema(self, schema):
        link = {"type": "string", "nullable": True, "format": "uri"}
        return {
            "type": "object",
            "required": ["data", "perPage", "next", "previous"],
            "properties": {
                "data": schema,
                "perPage": {"type": "integer", "example": self.page_size},
                "next": {**link, "description": "The next page, or null on the last page."},
                "previous": {**link, "description": "The previous page, or null on the first page."},
            },
        }

    def get_schema_operation_parameters(self, view):
        return [
            {
                "name": self.cursor_query_param,
                "required": False,
                "in": "query",
                "description": "Opaque position from a previous page's `next` / `previous` link.",
                "schema": {"type": "string"},
            },
            {
                "name": self.page_size_query_param,
                "required": False,
                "in": "query",
                "description": f"Rows per page (default {self.page_size}, at most {self.max_page_size}).",
                "schema": {"type": "integer", "minimum": 1, "maximum": self.max_page_size},
            },
        ]


class TimeCursorPagination(CursorPagination):
    """For per-device histories ordered by measurement time (unique per device)."""

    ordering = "-measured_at"
