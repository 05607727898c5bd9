"""Cursor pagination: a page deep in a 100k-row result costs what the first page costs (no COUNT, no
OFFSET scan). The ordering must be unique and indexed; the default is the primary key, newest first."""

from rest_framework import exceptions, pagination
from rest_framework.response import Response


class CursorPagination(pagination.CursorPagination):
    ordering = "-id"
    page_size = 50
    page_size_query_param = "perPage"
    max_page_size = 500
    cursor_query_param = "cursor"

    def decode_cursor(self, request):
        try:
            return super().decode_cursor(request)
        except exceptions.NotFound as exc:  # DRF answers a bad cursor with 404; it is a bad parameter
            raise exceptions.ValidationError({self.cursor_query_param: ["Invalid cursor."]}) from exc

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
