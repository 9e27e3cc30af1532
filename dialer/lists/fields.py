"""Which column of a call list holds which contact field.

Headers in English or Chinese are recognised after light normalisation (case, width,
spaces, ``_`` and ``-`` ignored), e.g. 电话/手机/手机号/联系电话 -> phone, 姓名/客户姓名 ->
name, 时区 -> timezone, 地区/省份 -> region. A field claimed by two columns is ambiguous and
is not mapped automatically: both columns stay attributes, and for the phone number (which
is required) the user is told which ``--map`` to pass. ``--map COLUMN=FIELD`` always wins.
Every column not mapped to a field is kept as a JSON attribute under its header (备注 and
other notes included); ``FIELD`` may be ``attributes`` (explicitly) or ``ignore`` (drop).
Columns named ``lead_*`` (written by ``dialer leads export``) are ignored, so an export can
be imported again.

A file without a header row (the first row holds a phone number and no known header) gets
columns named ``column 1``, ``column 2`` ... and its first phone-like column is the phone.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from dialer.lists.reader import ListFileError

__all__ = ["FIELDS", "ColumnMapping", "normalise_header", "parse_map_options", "resolve_columns"]

FIELDS: tuple[str, ...] = (
    "phone",
    "phone2",
    "phone3",
    "phone4",
    "name",
    "timezone",
    "region",
    "segment",
    "vip",
    "external_id",
)
PSEUDO_FIELDS = ("attributes", "ignore")

_ALIASES: dict[str, tuple[str, ...]] = {
    "phone": (
        "phone", "phonenumber", "phoneno", "telephone", "tel", "mobile", "mobilephone", "mobilenumber", "cell",
        "cellphone", "number", "msisdn", "电话", "手机", "手机号", "手机号码", "联系电话", "电话号码", "号码",
        "联系方式", "移动电话", "客户电话", "客户手机",
    ),
    "phone2": (
        "phone2", "altphone", "alternatephone", "alternativephone", "otherphone", "secondphone", "phone_2",
        "电话2", "手机2", "备用电话", "备用号码", "备用手机", "其他电话", "其它电话", "座机", "固定电话",
        "办公电话", "家庭电话",
    ),
    "phone3": ("phone3", "电话3", "手机3", "备用电话2"),
    "phone4": ("phone4", "电话4", "手机4", "备用电话3"),
    "name": (
        "name", "fullname", "customername", "contactname", "customer", "contact", "姓名", "客户姓名", "客户名称",
        "客户名", "名字", "联系人", "称呼", "客户",
    ),
    "timezone": ("timezone", "timezones", "tz", "时区"),
    "region": ("region", "province", "state", "area", "地区", "省份", "区域", "省", "所在地区", "所在地", "归属地"),
    "segment": ("segment", "group", "category", "tier", "分组", "客户分类", "类别", "分类", "客户类型", "客户等级"),
    "vip": ("vip", "isvip", "贵宾", "vip客户", "是否vip", "重要客户"),
    "external_id": (
        "externalid", "id", "customerid", "crmid", "clientid", "客户编号", "客户id", "编号", "客户号", "会员号",
    ),
}  # fmt: skip

_SPACES = re.compile(r"[\s_\-./·]+")


def normalise_header(text: str) -> str:
    """'Phone Number' -> 'phonenumber'; full-width '手机号　' -> '手机号'."""
    return _SPACES.sub("", unicodedata.normalize("NFKC", text).strip().lower())


ALIASES: dict[str, str] = {normalise_header(a): f for f, names in _ALIASES.items() for a in names}
_PHONE_LIKE = re.compile(r"^\+?[\d\s().\-]{6,20}$")


@dataclass(frozen=True)
class ColumnMapping:
    """The resolved layout of one file."""

    headers: tuple[str, ...]
    has_header: bool
    fields: Mapping[str, int]  # field -> column index
    attributes: tuple[tuple[int, str], ...]  # (column index, attribute key)
    warnings: tuple[str, ...] = field(default=())

    def describe(self) -> dict[str, str]:
        return {name: self.headers[i] for name, i in self.fields.items()}


def parse_map_options(options: Sequence[str]) -> dict[str, str]:
    """['电话=phone', 'Notes=attributes'] -> {'电话': 'phone', 'Notes': 'attributes'}."""
    out: dict[str, str] = {}
    for option in options:
        column, sep, target = option.rpartition("=")
        column, target = column.strip(), target.strip().lower()
        if not sep or not column or not target:
            raise ValueError(f"--map {option!r}: write COLUMN=FIELD, e.g. --map 手机=phone")
        if target not in FIELDS and target not in PSEUDO_FIELDS:
            allowed = ", ".join(FIELDS + PSEUDO_FIELDS)
            raise ValueError(f"--map {option!r}: unknown field {target!r}; fields are {allowed}")
        out[column] = target
    return out


def _unique_headers(cells: Sequence[str]) -> list[str]:
    seen: dict[str, int] = {}
    out: list[str] = []
    for index, cell in enumerate(cells, start=1):
        name = cell.strip() or f"column {index}"
        if name in seen:
            seen[name] += 1
            name = f"{name} ({seen[name]})"
        else:
            seen[name] = 1
        out.append(name)
    return out


def resolve_columns(path: Path, first_row: Sequence[str], explicit: Mapping[str, str]) -> ColumnMapping:
    """Map the file's columns to fields; :class:`ListFileError` when no phone column is found."""
    known = [ALIASES.get(normalise_header(c)) for c in first_row]
    phone_like = [bool(_PHONE_LIKE.match(c.strip())) and sum(ch.isdigit() for ch in c) >= 6 for c in first_row]
    has_header = any(known) or not any(phone_like) or bool(set(explicit) & {c.strip() for c in first_row})
    headers = _unique_headers(first_row) if has_header else [f"column {i}" for i in range(1, len(first_row) + 1)]

    by_name = {h: i for i, h in enumerate(headers)}
    by_norm: dict[str, int] = {}
    for i, h in enumerate(headers):
        by_norm.setdefault(normalise_header(h), i)
    fields: dict[str, int] = {}
    ignored: set[int] = set()
    explicit_columns: set[int] = set()
    for column, target in explicit.items():
        index = by_name.get(column, by_norm.get(normalise_header(column)))
        if index is None:
            raise ListFileError(
                f"{path}: --map {column}={target}: no column {column!r}; columns are {', '.join(headers)}"
            )
        explicit_columns.add(index)
        if target == "ignore":
            ignored.add(index)
        elif target in FIELDS:
            if target in fields:
                raise ListFileError(f"{path}: --map gives two columns for {target}; map one column per field")
            fields[target] = index

    warnings: list[str] = []
    if has_header:
        claims: dict[str, list[int]] = {}
        for i, f in enumerate(known):
            if f is not None and i not in explicit_columns and f not in fields:
                claims.setdefault(f, []).append(i)
            elif f is None and headers[i].lower().startswith("lead_") and i not in explicit_columns:
                ignored.add(i)
        for f, columns in claims.items():
            if len(columns) == 1:
                fields[f] = columns[0]
            elif f == "phone" and "phone" not in fields:
                names = [headers[i] for i in columns]
                raise ListFileError(
                    f"{path}: columns {' and '.join(repr(n) for n in names)} both look like the phone number; "
                    f"say which one to dial first, e.g. --map {names[0]}=phone --map {names[1]}=phone2"
                )
            else:
                listed = ", ".join(repr(headers[i]) for i in columns)
                warnings.append(f"columns {listed} all look like {f}: kept as attributes; choose one with --map")
    elif "phone" not in fields:
        fields["phone"] = phone_like.index(True)

    if "phone" not in fields:
        raise ListFileError(
            f"{path}: no phone column among {', '.join(headers)}; name one 'phone' or '电话', "
            f"or pass --map COLUMN=phone"
        )
    mapped = set(fields.values()) | ignored
    attributes = tuple((i, headers[i]) for i in range(len(headers)) if i not in mapped)
    return ColumnMapping(
        headers=tuple(headers), has_header=has_header, fields=fields, attributes=attributes, warnings=tuple(warnings)
    )
