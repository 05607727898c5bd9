"""Reading a fleet file as people really send them: CSV in UTF-8 (with or without BOM), cp1252 or latin-1,
`,` `;` or tab delimited, CRLF or LF, quoted fields with commas and newlines, headers in any case; or .xlsx.

Every cell passes `cell_problem` on its way in (README "Limits"): one holding a NUL character (which PostgreSQL
cannot store) or longer than IMPORT_CELL_MAX_LENGTH is a row error naming its row and column, quoting only its
start, and the record holds "" in its place — nothing downstream (checks, row statuses, the job's errors)
ever sees it whole. A file of more than IMPORT_MAX_ROWS data rows or IMPORT_MAX_COLUMNS columns is refused."""

import csv
import io
from dataclasses import dataclass, field

from django.conf import settings

from fleet.importing.columns import CANONICAL, COLUMNS, fold
from fleet.importing.rows import RowError

QUOTED_MAX = 80  # characters of a cell quoted in an error or warning


class FleetFileError(Exception):
    """The file as a whole cannot be read (empty, no header, not a spreadsheet). Row errors are not this."""


@dataclass
class FleetFile:
    """Records keyed by canonical column name; `row_numbers[i]` is the spreadsheet row of `records[i]`
    (the header is row 1)."""

    columns: list[str]
    records: list[dict[str, str]]
    row_numbers: list[int]
    encoding: str = "utf-8"
    delimiter: str = ","
    warnings: list[str] = field(default_factory=list)
    # cells refused on reading (NUL, too long, too many): their records hold "" instead
    cell_errors: list[RowError] = field(default_factory=list)


def quoted(text: str) -> str:
    """A cell as an error may quote it: cut to its start, a NUL shown as ␀ (storable and visible)."""
    text = text[: QUOTED_MAX + 1].replace("\x00", "\u2400")
    return text if len(text) <= QUOTED_MAX else text[: QUOTED_MAX - 1] + "…"


def cell_problem(text: str) -> str | None:
    """Why a cell cannot be read as it is, or None."""
    if len(text) > settings.IMPORT_CELL_MAX_LENGTH:
        return f"the cell is {len(text):,} characters long; the limit is {settings.IMPORT_CELL_MAX_LENGTH:,}"
    if "\x00" in text:
        return "the cell holds a NUL character (\\0), which no field can store; remove it"
    return None


def used_width(cells) -> int:
    """How many cells of a row count: up to its last non-empty one (spreadsheets pad rows with empty cells)."""
    width = len(cells)
    while width and not (cells[width - 1] or "").strip():
        width -= 1
    return width


def decode(data: bytes) -> tuple[str, str]:
    if data.startswith(b"\xef\xbb\xbf"):
        return data[3:].decode("utf-8"), "utf-8 (BOM)"
    try:
        return data.decode("utf-8"), "utf-8"
    except UnicodeDecodeError:
        pass
    try:
        return data.decode("cp1252"), "cp1252"
    except UnicodeDecodeError:
        return data.decode("latin-1"), "latin-1"


def pick_delimiter(text: str) -> str:
    """The delimiter under which the header line names the most known columns."""
    header_line = next((line for line in text.splitlines() if line.strip()), "")
    best, best_known = ",", -1
    for delimiter in (",", ";", "\t", "|"):
        cells = next(csv.reader([header_line], delimiter=delimiter), [])
        known = sum(1 for cell in cells if fold(cell) in CANONICAL)
        if known > best_known:
            best, best_known = delimiter, known
    return best


def cell_text(value) -> str:
    """A spreadsheet cell as the text a person typed (ints without `.0`)."""
    if value is None:
        return ""
    if isinstance(value, int | float) and not isinstance(value, bool):
        if abs(value) >= 1e15:
            # Past 15 significant digits a spreadsheet number has already lost digits: show it the way the
            # spreadsheet does, so the serial check refuses it instead of importing a wrong serial.
            return f"{value:.6G}"
        if isinstance(value, float) and value.is_integer():
            return str(int(value))
    if hasattr(value, "isoformat"):
        return value.isoformat()
    return str(value)


def xlsx_rows(data: bytes):
    from openpyxl import load_workbook

    try:
        workbook = load_workbook(io.BytesIO(data), read_only=True, data_only=True)
    except Exception as exc:  # openpyxl raises several types for a file that is not a workbook
        raise FleetFileError(f"Not a readable .xlsx workbook: {quoted(str(exc))}") from exc
    try:
        for values in workbook.worksheets[0].iter_rows(values_only=True):
            yield [cell_text(v) for v in values]
    except Exception as exc:  # the sheet's XML is read as the rows are: broken or hostile XML shows up here
        raise FleetFileError(f"The workbook's first sheet cannot be read: {quoted(str(exc))}") from exc
    finally:
        workbook.close()


def read_fleet_file(data: bytes, *, filename: str = "") -> FleetFile:
    """Parse a fleet file. Raises FleetFileError for a file that has no usable header or no data rows."""
    if not data or not data.strip():
        raise FleetFileError("The file is empty: expected a header row and one row per device.")
    if filename.lower().endswith(".xlsx") or data[:4] == b"PK\x03\x04":
        rows = xlsx_rows(data)
        encoding, delimiter = "xlsx", ""
    else:
        text, encoding = decode(data)
        delimiter = pick_delimiter(text)
        rows = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter)
    try:
        header = next(rows)
    except StopIteration:
        raise FleetFileError("The file is empty: expected a header row and one row per device.") from None
    except csv.Error as exc:
        raise FleetFileError(f"The header row cannot be read: {exc}") from exc

    max_columns = settings.IMPORT_MAX_COLUMNS
    if used_width(header) > max_columns:
        raise FleetFileError(
            f"The header row has {used_width(header):,} columns; the limit is {max_columns:,} "
            f"(the fleet file has {len(COLUMNS)})."
        )
    warnings = []
    positions: dict[str, int] = {}
    for index, raw in enumerate(header):
        name = CANONICAL.get(fold(raw or "")) if len(raw or "") <= QUOTED_MAX else None
        if name is None:
            if (raw or "").strip():
                warnings.append(f"Column “{quoted(raw.strip())}” is not part of the fleet file and was ignored.")
            continue
        if name in positions:
            raise FleetFileError(
                f"Column {name} appears twice in the header (columns {positions[name] + 1} and {index + 1})."
            )
        positions[name] = index
    if not positions:
        raise FleetFileError(
            "No header row found: the first row should name the columns, e.g. " + ", ".join(COLUMNS[:5]) + ", …"
        )

    records, row_numbers, cell_errors = [], [], []
    max_rows = settings.IMPORT_MAX_ROWS
    row_number = 1
    try:
        for cells in rows:
            row_number += 1
            if not any((c or "").strip() for c in cells):
                continue  # blank rows (often trailing) carry nothing
            if len(records) == max_rows:
                raise FleetFileError(
                    f"The file has more than {max_rows:,} data rows, the limit; split it into several files."
                )
            record = {name: (cells[i] if i < len(cells) else "") or "" for name, i in positions.items()}
            for name, text in record.items():
                problem = cell_problem(text)
                if problem:
                    cell_errors.append(RowError(row_number, name, quoted(text), problem))
                    record[name] = ""
            if used_width(cells) > max_columns:
                cell_errors.append(
                    RowError(
                        row_number, "", "", f"the row has {used_width(cells):,} cells; the limit is {max_columns:,}"
                    )
                )
            records.append(record)
            row_numbers.append(row_number)
    except csv.Error as exc:
        # (the reader failed on the row after the last one counted)
        raise FleetFileError(f"Row {row_number + 1} cannot be read: {quoted(str(exc))}") from exc
    if not records:
        raise FleetFileError("The file has a header row but no data rows.")
    return FleetFile(
        columns=[c for c in COLUMNS if c in positions],
        records=records,
        row_numbers=row_numbers,
        encoding=encoding,
        delimiter=delimiter,
        warnings=warnings,
        cell_errors=cell_errors,
    )
