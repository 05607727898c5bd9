"""Reading a fleet file as people really send them: CSV in UTF-8 (with or without BOM), cp1252 or latin-1,
`,` `;` or tab delimited, CRLF or LF, quoted fields with commas and newlines, headers in any case; or .xlsx."""

import csv
import io
from dataclasses import dataclass, field

from fleet.importing.columns import CANONICAL, COLUMNS, fold


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
        raise FleetFileError(f"Not a readable .xlsx workbook: {exc}") from exc
    sheet = workbook.worksheets[0]
    for values in sheet.iter_rows(values_only=True):
        yield [cell_text(v) for v in values]
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

    warnings = []
    positions: dict[str, int] = {}
    for index, raw in enumerate(header):
        name = CANONICAL.get(fold(raw or ""))
        if name is None:
            if (raw or "").strip():
                warnings.append(f"Column “{raw.strip()}” is not part of the fleet file and was ignored.")
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

    records, row_numbers = [], []
    row_number = 1
    try:
        for cells in rows:
            row_number += 1
            if not any((c or "").strip() for c in cells):
                continue  # blank rows (often trailing) carry nothing
            records.append({name: (cells[i] if i < len(cells) else "") or "" for name, i in positions.items()})
            row_numbers.append(row_number)
    except csv.Error as exc:
        raise FleetFileError(f"Row {row_number} cannot be read: {exc}") from exc
    if not records:
        raise FleetFileError("The file has a header row but no data rows.")
    return FleetFile(
        columns=[c for c in COLUMNS if c in positions],
        records=records,
        row_numbers=row_numbers,
        encoding=encoding,
        delimiter=delimiter,
        warnings=warnings,
    )
