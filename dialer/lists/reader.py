"""Reading call-list files: CSV with any delimiter and XLSX, streamed row by row.

Encodings: UTF-16 is taken from its BOM; otherwise the whole file must decode strictly as
UTF-8 (with or without BOM), else as GB18030. GB18030 decodes many Western single-byte
files too (into nonsense), so when only GB18030 fits, charset-normalizer breaks the tie: if
it sees no Chinese encoding at all, the file is refused with its best guess. Binary files
(NUL bytes, PDF, old .xls, images) and files without data rows are refused. Every refusal
is a :class:`ListFileError` whose message is one line naming the file and the fix, raised
before anything touches the database.

The delimiter is sniffed with :class:`csv.Sniffer` on the first 64 KiB among , ; TAB and |,
falling back to the most frequent of those in the first line. Memory stays flat: CSV is
read through the csv module's iterator and XLSX through openpyxl's read-only mode.
"""

from __future__ import annotations

import codecs
import csv
import datetime as dt
import io
import warnings
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from charset_normalizer import from_bytes

__all__ = ["ListFileError", "TableSource", "detect_encoding", "open_table"]

SAMPLE_BYTES = 64 * 1024
DELIMITERS = ",;\t|"
CHINESE_ENCODINGS = frozenset({"gb18030", "gbk", "gb2312", "cp936", "hz", "big5", "big5hkscs", "cp950"})
_XLSX_MAGIC = b"PK\x03\x04"
_OLE_MAGIC = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"
_BINARY_MAGIC = {
    b"%PDF": "a PDF document",
    b"\x89PNG": "a PNG image",
    b"\xff\xd8\xff": "a JPEG image",
    b"GIF8": "a GIF image",
    b"\x1f\x8b": "a gzip archive",
    b"7z\xbc\xaf": "a 7-Zip archive",
    b"Rar!": "a RAR archive",
    b"SQLite format 3": "an SQLite database",
}
HOW_TO_SAVE = "save it from Excel as 'CSV UTF-8' or .xlsx"


class ListFileError(Exception):
    """A call-list file that cannot be read at all; the message names the file and the fix."""


def _safe_csv_field_limit() -> None:
    # Some exports put whole notes in one cell; 16 MiB is generous without being unbounded.
    csv.field_size_limit(16 * 1024 * 1024)


_safe_csv_field_limit()


def _decodes(path: Path, encoding: str) -> tuple[bool, int]:
    """Does the whole file decode strictly? Returns (ok, byte offset of the first error)."""
    decoder = codecs.getincrementaldecoder(encoding)(errors="strict")
    offset = 0
    with path.open("rb") as f:
        while chunk := f.read(1 << 20):
            try:
                decoder.decode(chunk)
            except UnicodeDecodeError as exc:
                return False, offset + exc.start
            offset += len(chunk)
        try:
            decoder.decode(b"", final=True)
        except UnicodeDecodeError:
            return False, offset
    return True, -1


def detect_encoding(path: Path, head: bytes) -> str:
    """The file's text encoding, or :class:`ListFileError` when it is not text we read."""
    if head.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        return "utf-16"
    for magic, what in _BINARY_MAGIC.items():
        if head.startswith(magic):
            raise ListFileError(f"{path}: this is {what}, not a call list; {HOW_TO_SAVE}")
    if b"\x00" in head:
        raise ListFileError(f"{path}: binary data (NUL bytes), not a CSV text file; {HOW_TO_SAVE}")
    ok, utf8_error_at = _decodes(path, "utf-8-sig")
    if ok:
        return "utf-8-sig"
    ok, _ = _decodes(path, "gb18030")
    guesses = list(from_bytes(head))
    if ok:
        if not guesses:
            return "gb18030"
        best = guesses[0]
        chinese = [g for g in guesses if g.encoding in CHINESE_ENCODINGS]
        if chinese and chinese[0].chaos <= best.chaos + 0.05:
            return "gb18030"
        raise ListFileError(
            f"{path}: text looks like {best.encoding}, not UTF-8 or GB18030 (Chinese); "
            f"re-save it as UTF-8 ({HOW_TO_SAVE})"
        )
    guess = f" (it looks like {guesses[0].encoding})" if guesses else ""
    raise ListFileError(
        f"{path}: cannot decode as UTF-8 (bad byte at offset {utf8_error_at}) nor GB18030{guess}; "
        f"re-save it as UTF-8 ({HOW_TO_SAVE})"
    )


def _sniff_delimiter(sample: str) -> str:
    lines = sample.splitlines()
    # Only whole lines: a cut last line would mislead the sniffer.
    body = "\n".join(lines[:-1] if len(lines) > 1 else lines)
    try:
        dialect = csv.Sniffer().sniff(body, delimiters=DELIMITERS)
        delimiter = str(dialect.delimiter)
    except csv.Error:
        delimiter = ""
    first = lines[0] if lines else ""
    counts = {d: first.count(d) for d in DELIMITERS}
    if delimiter and counts.get(delimiter, 0) > 0:
        return delimiter
    best = max(counts, key=lambda d: counts[d])
    return best if counts[best] > 0 else ","


def _cell_text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer() and abs(value) < 1e17:
        return str(int(value))
    if isinstance(value, dt.datetime | dt.date | dt.time):
        return value.isoformat()
    return str(value).strip()


@dataclass
class TableSource:
    """An opened call-list file: its first row and an iterator over the rest."""

    path: Path
    kind: str  # "csv" | "xlsx"
    first_row: list[str]
    encoding: str | None = None
    delimiter: str | None = None
    total: int = 0  # bytes (csv) or rows (xlsx), for progress
    _rows: Iterator[tuple[int, list[str]]] | None = field(default=None, repr=False)
    _position: Any = field(default=None, repr=False)
    _closer: Any = field(default=None, repr=False)

    def rows(self) -> Iterator[tuple[int, list[str]]]:
        """(line number, cells) for every row after the first, blank rows included."""
        assert self._rows is not None
        return self._rows

    def position(self) -> int:
        return int(self._position()) if self._position is not None else 0

    def close(self) -> None:
        if self._closer is not None:
            self._closer()
            self._closer = None

    def __enter__(self) -> TableSource:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()


def open_table(path: Path) -> TableSource:
    """Open a CSV or XLSX call list; raises :class:`ListFileError` when it cannot be read."""
    path = Path(path)
    if not path.exists():
        raise ListFileError(f"{path}: no such file; check the path")
    if path.is_dir():
        raise ListFileError(f"{path}: is a directory; give the call-list file inside it")
    try:
        with path.open("rb") as f:
            head = f.read(SAMPLE_BYTES)
    except OSError as exc:
        raise ListFileError(f"{path}: cannot read ({exc.strerror}); check its permissions") from None
    if not head.strip():
        raise ListFileError(f"{path}: the file is empty; export the list again with a header row and numbers")
    if head.startswith(_OLE_MAGIC):
        raise ListFileError(f"{path}: an old Excel .xls workbook; open it in Excel and save as .xlsx or CSV UTF-8")
    if head.startswith(_XLSX_MAGIC):
        return _open_xlsx(path)
    return _open_csv(path, head)


def _open_csv(path: Path, head: bytes) -> TableSource:
    encoding = detect_encoding(path, head)
    raw = path.open("rb")
    text: IO[str] = io.TextIOWrapper(raw, encoding=encoding, newline="", errors="strict")
    sample = text.read(SAMPLE_BYTES)
    text.seek(0)
    delimiter = _sniff_delimiter(sample.lstrip("\ufeff"))
    reader = csv.reader(text, delimiter=delimiter, quotechar='"', doublequote=True, strict=False)

    def rows() -> Iterator[tuple[int, list[str]]]:
        try:
            for cells in reader:
                yield reader.line_num, cells
        except csv.Error as exc:
            raise ListFileError(f"{path}: line {reader.line_num}: {exc}; fix that line or {HOW_TO_SAVE}") from None
        except UnicodeDecodeError as exc:
            raise ListFileError(f"{path}: cannot decode as {encoding} ({exc.reason}); re-save it as UTF-8") from None

    iterator = rows()
    first: list[str] | None = None
    for _line, cells in iterator:
        if any(c.strip() for c in cells):
            first = [c.strip().lstrip("\ufeff") for c in cells]
            break
    if first is None:
        text.close()
        raise ListFileError(f"{path}: the file is empty; export the list again with a header row and numbers")
    return TableSource(
        path=path,
        kind="csv",
        first_row=first,
        encoding=encoding,
        delimiter=delimiter,
        total=path.stat().st_size,
        _rows=iterator,
        _position=raw.tell,
        _closer=text.close,
    )


def _open_xlsx(path: Path) -> TableSource:
    import zipfile

    from openpyxl import load_workbook
    from openpyxl.utils.exceptions import InvalidFileException

    # A file object, so a workbook saved with another extension (list.csv) still opens.
    handle = path.open("rb")
    try:
        with warnings.catch_warnings():
            # openpyxl warns about styles and data validation it ignores; none of it matters here.
            warnings.simplefilter("ignore")
            workbook = load_workbook(handle, read_only=True, data_only=True)
    except (zipfile.BadZipFile, InvalidFileException, KeyError, OSError, ValueError) as exc:
        handle.close()
        raise ListFileError(f"{path}: not a readable .xlsx workbook ({exc}); open and re-save it in Excel") from None

    def close() -> None:
        workbook.close()
        handle.close()

    sheet = workbook.active
    if sheet is None:
        close()
        raise ListFileError(f"{path}: the workbook has no sheet; put the list on the first sheet")
    counter = {"rows": 0}

    def rows() -> Iterator[tuple[int, list[str]]]:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            for index, values in enumerate(sheet.iter_rows(values_only=True), start=1):
                counter["rows"] = index
                yield index, [_cell_text(v) for v in values]

    iterator = rows()
    first: list[str] | None = None
    for _line, cells in iterator:
        if any(cells):
            first = cells
            break
    if first is None:
        close()
        raise ListFileError(f"{path}: the first sheet is empty; put a header row and numbers on it")
    total = int(getattr(sheet, "max_row", 0) or 0)
    return TableSource(
        path=path,
        kind="xlsx",
        first_row=first,
        total=total,
        _rows=iterator,
        _position=lambda: counter["rows"],
        _closer=close,
    )
