"""Short texts about values a request sent: an error quotes at most the start of the value, never all of it."""

QUOTE_MAX_CHARS = 40


def cut(value, limit: int = QUOTE_MAX_CHARS) -> str:
    """`value` as text, cut to `limit` characters with "…" when longer (a 100,000-character search or a 32 MB
    cell is named by its start), control characters shown as "?" (a NUL byte echoed back is no help)."""
    text = "".join(ch if ch.isprintable() or ch == " " else "?" for ch in str(value)[: limit + 1])
    return text if len(text) <= limit else text[:limit] + "…"


def quoting_cut(message: str, values) -> str:
    """`message` (a form's error, which may quote what was sent: "Select a valid choice. … is not one of the
    available choices.") with each of `values` it quotes cut to its start."""
    for value in sorted({str(v) for v in values if v}, key=len, reverse=True):
        if len(value) > QUOTE_MAX_CHARS:
            message = message.replace(value, cut(value))
    return cut(message, 300)
