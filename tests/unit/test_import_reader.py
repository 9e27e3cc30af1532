"""Reading call-list files and mapping their columns (no database)."""

from __future__ import annotations

from pathlib import Path

import pytest

from dialer.lists.fields import parse_map_options, resolve_columns
from dialer.lists.normalize import RowError, RowNormalizer, merge_records, normalize_number, parse_timezones
from dialer.lists.reader import ListFileError, open_table

DATA = Path(__file__).resolve().parent.parent / "data"


def read_all(path: Path) -> tuple[list[str], list[list[str]], str | None, str | None]:
    with open_table(path) as source:
        return source.first_row, [cells for _, cells in source.rows()], source.encoding, source.delimiter


def test_gb18030_file_with_chinese_headers_is_detected_and_mapped() -> None:
    first, rows, encoding, delimiter = read_all(DATA / "gb18030_chinese.csv")
    assert encoding == "gb18030"
    assert delimiter == ","
    assert first == ["客户姓名", "手机号", "地区", "备注"]
    assert rows[0] == ["张伟", "13800138001", "北京", "老客户，喜欢下午联系"]
    mapping = resolve_columns(DATA / "gb18030_chinese.csv", first, {})
    assert mapping.describe() == {"name": "客户姓名", "phone": "手机号", "region": "地区"}
    assert mapping.attributes == ((3, "备注"),)


def test_utf8_bom_semicolon_file() -> None:
    first, rows, encoding, delimiter = read_all(DATA / "utf8_bom_semicolon.csv")
    assert encoding == "utf-8-sig"
    assert delimiter == ";"
    assert first[0] == "姓名"  # the BOM is not part of the first header
    assert rows[1][1] == "+1 212 555 0111"
    mapping = resolve_columns(DATA / "utf8_bom_semicolon.csv", first, {})
    assert set(mapping.fields) == {"name", "phone", "timezone", "vip", "external_id"}


@pytest.mark.parametrize("delimiter", ["\t", "|", ";", ","])
def test_delimiters_are_sniffed(tmp_path: Path, delimiter: str) -> None:
    path = tmp_path / "list.csv"
    lines = [delimiter.join(["phone", "name", "note"]), delimiter.join(["+8613800138000", "A", "x, y"])]
    path.write_text("\n".join(lines) + "\n")
    _first, rows, _enc, found = read_all(path)
    assert found == delimiter
    assert rows[0][0] == "+8613800138000"


def test_utf16_excel_unicode_text(tmp_path: Path) -> None:
    path = tmp_path / "unicode.txt"
    path.write_bytes("电话\t姓名\r\n13800138000\t张三\r\n".encode("utf-16"))
    first, rows, encoding, delimiter = read_all(path)
    assert (encoding, delimiter, first, rows) == ("utf-16", "\t", ["电话", "姓名"], [["13800138000", "张三"]])


def test_binary_file_is_refused_with_one_line(tmp_path: Path) -> None:
    path = tmp_path / "list.csv"
    path.write_bytes(bytes(range(256)) * 4)
    with pytest.raises(ListFileError) as err:
        open_table(path)
    message = str(err.value)
    assert str(path) in message and "\n" not in message
    assert "CSV UTF-8" in message  # the fix


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        (b"", "empty"),
        (b"\n\n  \n", "empty"),
        (b"%PDF-1.7 something", "PDF"),
        (b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + b"\x00" * 100, ".xls"),
        (b"PK\x03\x04 not really a zip", "xlsx"),
    ],
)
def test_unreadable_files(tmp_path: Path, content: bytes, expected: str) -> None:
    path = tmp_path / "list.csv"
    path.write_bytes(content)
    with pytest.raises(ListFileError, match=expected):
        open_table(path)


def test_western_single_byte_file_is_not_taken_for_gb18030(tmp_path: Path) -> None:
    path = tmp_path / "latin.csv"
    text = "name,phone,note\n" + "".join(f"Müller{i},+4930123456{i},Straße grün café\n" for i in range(30))
    path.write_bytes(text.encode("cp1252"))
    with pytest.raises(ListFileError, match="UTF-8"):
        open_table(path)


def test_xlsx_is_read_streaming(tmp_path: Path) -> None:
    from openpyxl import Workbook

    wb = Workbook()
    ws = wb.active
    assert ws is not None
    ws.append(["电话", "姓名"])
    ws.append([13800138000, "张三"])
    ws.append(["+1 212 555 0100", None])
    path = tmp_path / "list.xlsx"
    wb.save(path)
    first, rows, encoding, _ = read_all(path)
    assert first == ["电话", "姓名"]
    assert rows == [["13800138000", "张三"], ["+1 212 555 0100", ""]]
    assert encoding is None


def test_ambiguous_phone_columns_ask_for_map(tmp_path: Path) -> None:
    with pytest.raises(ListFileError, match="--map 手机=phone --map 电话=phone2"):
        resolve_columns(tmp_path / "x.csv", ["手机", "电话", "姓名"], {})
    explicit = parse_map_options(["手机=phone", "电话=phone2"])
    mapping = resolve_columns(tmp_path / "x.csv", ["手机", "电话", "姓名"], explicit)
    assert mapping.fields == {"phone": 0, "phone2": 1, "name": 2}


def test_no_phone_column_names_the_columns_and_fix(tmp_path: Path) -> None:
    with pytest.raises(ListFileError) as err:
        resolve_columns(tmp_path / "x.csv", ["姓名", "备注"], {})
    assert "no phone column among 姓名, 备注" in str(err.value)
    assert "--map COLUMN=phone" in str(err.value)


def test_map_option_errors() -> None:
    with pytest.raises(ValueError, match="unknown field"):
        parse_map_options(["a=telephone"])
    with pytest.raises(ValueError, match="COLUMN=FIELD"):
        parse_map_options(["nonsense"])


def test_headerless_file_uses_first_phone_like_column(tmp_path: Path) -> None:
    mapping = resolve_columns(tmp_path / "x.csv", ["张三", "138 0013 8000"], {})
    assert not mapping.has_header
    assert mapping.fields == {"phone": 1}
    assert mapping.headers == ("column 1", "column 2")


def test_numbers_to_e164_with_region_and_reasons() -> None:
    assert normalize_number("138 0013 8000", "CN").e164 == "+8613800138000"
    assert normalize_number("13800138000.0", "CN").e164 == "+8613800138000"
    assert normalize_number("0086 138 0013 8000", None).e164 == "+8613800138000"
    info = normalize_number("010-6552 9988", "CN")
    assert (info.e164, info.country, info.timezones) == ("+861065529988", "CN", ["Asia/Shanghai"])
    with pytest.raises(RowError, match="no country code"):
        normalize_number("13800138000", None)
    with pytest.raises(RowError, match="not a valid number"):
        normalize_number("12345", "CN")
    with pytest.raises(RowError, match="not a phone number"):
        normalize_number("call me", "CN")


def test_numbers_with_several_time_zones_keep_them_all() -> None:
    toll_free = normalize_number("+1 800 555 0100", None)
    assert len(toll_free.timezones) > 3
    assert "America/New_York" in toll_free.timezones and "America/Los_Angeles" in toll_free.timezones
    russian_mobile = normalize_number("+7 912 345 67 89", None)
    assert len(russian_mobile.timezones) > 1
    assert normalize_number("+1 212 555 0123", None).timezones == ["America/New_York"]


def test_timezone_column_forms() -> None:
    assert parse_timezones("UTC+8") == ("Etc/GMT-8",)
    assert parse_timezones("北京时间") == ("Asia/Shanghai",)
    assert parse_timezones("America/New_York, America/Chicago") == ("America/New_York", "America/Chicago")
    with pytest.raises(RowError, match="IANA"):
        parse_timezones("Mars/Olympus")


def test_row_normalizer_and_merge_are_idempotent(tmp_path: Path) -> None:
    headers = ["phone", "phone2", "name", "vip", "备注"]
    mapping = resolve_columns(tmp_path / "x.csv", headers, {})
    normalize = RowNormalizer(mapping, "CN", None)
    a = normalize(["13800138000", "", "张三", "是", "老客户"])
    b = normalize(["+86 138 0013 8000", "13900139000", "", "", "新"])
    assert a.vip is True and a.attributes == {"备注": "老客户"}
    merged = merge_records(a, b)
    assert merged.name == "张三"
    assert merged.alt_phones == ["+8613900139000"]
    assert merged.attributes == {"备注": "老客户"}  # known values win
    assert merge_records(merged, b) == merged
    assert merge_records(merged, a) == merged
    with pytest.raises(RowError, match="vip"):
        normalize(["13800138000", "", "x", "maybe", ""])
