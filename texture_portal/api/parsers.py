"""The API's JSON parser: every `/v1` body goes through it (REST_FRAMEWORK's DEFAULT_PARSER_CLASSES).

On top of DRF's parser it refuses what no operation accepts and what would otherwise reach the database or a
recursive walk: nesting deeper than API_JSON_MAX_DEPTH (100,000 `[` would exhaust the interpreter's stack), and
a NUL character in any string or key (PostgreSQL's text and jsonb cannot hold one).

The standard library's decoder has no depth option (nor has DRF's), so the limit is checked on what it
returns, walking it without recursion; a body deep enough to exhaust the decoder's own recursion first is
refused with the same message."""

from django.conf import settings
from rest_framework import parsers
from rest_framework.exceptions import ParseError


def json_depth_and_nul_check(data, *, max_depth: int) -> None:
    """Raise ParseError when `data` nests deeper than `max_depth` or holds a NUL in a string or key."""
    stack = [(data, 1)]
    while stack:
        value, depth = stack.pop()
        if isinstance(value, str):
            if "\x00" in value:
                raise ParseError("JSON strings may not contain NUL characters (\\u0000).")
        elif isinstance(value, dict | list):
            if depth > max_depth:
                raise ParseError(f"JSON nested deeper than {max_depth} levels.")
            items = value.items() if isinstance(value, dict) else ((None, item) for item in value)
            for key, item in items:
                if key is not None and "\x00" in key:
                    raise ParseError("JSON keys may not contain NUL characters (\\u0000).")
                stack.append((item, depth + 1))


class JSONParser(parsers.JSONParser):
    def parse(self, stream, media_type=None, parser_context=None):
        max_depth = settings.API_JSON_MAX_DEPTH
        try:
            data = super().parse(stream, media_type, parser_context)
        except RecursionError:
            raise ParseError(f"JSON nested deeper than {max_depth} levels.") from None
        json_depth_and_nul_check(data, max_depth=max_depth)
        return data
