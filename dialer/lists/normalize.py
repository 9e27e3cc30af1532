"""Turning one row of a call list into a contact record, or a rejection with its reason.

Numbers become E.164 with phonenumbers, using the default region when a number has no
+country code. The time zones come from the file when it has a column for them, else from
phonenumbers' time-zone data: all candidate zones are kept (a +1 number of an unknown area
has several), and the dialer only calls in the overlap of their windows.

Two cases keep the row but change it, with a warning for the rejects/warnings file
(:attr:`ContactRecord.warnings`):

- an invalid *alternate* number (phone2..phone4) is dropped; the main number decides
  whether the row is usable;
- candidate zones whose calling windows can never overlap (their UTC offsets span more than
  the campaign's daily window, e.g. +1 800 toll-free numbers, candidates from Guam to Pago
  Pago) would make the number uncallable forever. A call centre expects such a number to be
  called on the campaign's own clock, so it gets the campaign's ``timezone``; without one,
  the row is rejected with the reason and the fix (a timezone column or the campaign's
  timezone). Zones written in the file are always kept as written.

This is the hot loop of an import, so the number is typed once and the result reused for
validity, region and time zones instead of calling the public helpers that each type it
again.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import lru_cache
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import phonenumbers
from phonenumbers import NumberParseException, PhoneNumberFormat, PhoneNumberType
from phonenumbers import phonenumberutil as _pnu
from phonenumbers import timezone as _pntz

from dialer.lists.fields import ColumnMapping

__all__ = [
    "ContactRecord",
    "NumberInfo",
    "RowError",
    "RowNormalizer",
    "merge_records",
    "normalize_number",
    "zone_span_seconds",
]

MAX_ALT_PHONES = 3
UNKNOWN_ZONE = "Etc/Unknown"
# Kinds of ContactRecord.warnings, counted separately in the import summary.
DROPPED_ALTERNATE = "dropped_alternate"
TIMEZONE_FALLBACK = "timezone_fallback"
DEFAULT_WINDOW_SECONDS = 12 * 3600  # 09:00-21:00
# Offsets are compared in winter and in summer, so daylight saving never hides a gap.
_OFFSET_INSTANTS = (datetime(2025, 1, 15, 12, tzinfo=UTC), datetime(2025, 7, 15, 12, tzinfo=UTC))

_TRUE = frozenset({"1", "y", "yes", "true", "t", "vip", "是", "是的", "有", "✓", "√", "x", "对"})
_FALSE = frozenset({"", "0", "n", "no", "false", "f", "否", "不是", "无", "-"})
_ZONE_SPLIT = re.compile(r"[,;|\s]+")
_UTC_OFFSET = re.compile(r"^(?:utc|gmt)\s*([+-])\s*(\d{1,2})(?::?00)?$", re.IGNORECASE)
_ZONE_ALIASES = {
    "北京时间": "Asia/Shanghai",
    "中国标准时间": "Asia/Shanghai",
    "cst": "Asia/Shanghai",
    "china": "Asia/Shanghai",
    "香港时间": "Asia/Hong_Kong",
    "台北时间": "Asia/Taipei",
    "utc": "UTC",
    "gmt": "UTC",
}


class RowError(Exception):
    """Why a row is rejected, in words a campaign manager can act on."""


@dataclass(slots=True)
class NumberInfo:
    e164: str
    country: str | None
    timezones: list[str]


@dataclass(slots=True)
class ContactRecord:
    phone: str
    alt_phones: list[str] = field(default_factory=list)
    name: str | None = None
    timezones: list[str] = field(default_factory=list)
    country: str | None = None
    region: str | None = None
    segment: str | None = None
    vip: bool = False
    external_id: str | None = None
    attributes: dict[str, Any] = field(default_factory=dict)
    # (kind, message) for what was changed to keep the row; not stored, not merged.
    warnings: list[tuple[str, str]] = field(default_factory=list)

    @property
    def numbers(self) -> list[str]:
        return [self.phone, *self.alt_phones]


_number_type_helper = getattr(_pnu, "_number_type_helper", None)
_country_level_zones = getattr(_pntz, "_country_level_time_zones_for_number", None)


def _type_and_region(number: phonenumbers.PhoneNumber) -> tuple[int, str | None]:
    region = phonenumbers.region_code_for_number(number)
    if _number_type_helper is None:
        return phonenumbers.number_type(number), region
    if region is None or number.country_code is None:
        return PhoneNumberType.UNKNOWN, region
    metadata = phonenumbers.PhoneMetadata.metadata_for_region_or_calling_code(number.country_code, region)
    if metadata is None:
        return PhoneNumberType.UNKNOWN, region
    return _number_type_helper(phonenumbers.national_significant_number(number), metadata), region


def normalize_number(raw: str, region: str | None, what: str = "phone") -> NumberInfo:
    """Parse ``raw`` into E.164 with its country and candidate zones; :class:`RowError` if invalid."""
    text = raw.strip()
    if text.endswith(".0") and text[:-2].isdigit():
        text = text[:-2]  # a number that went through a spreadsheet as a float
    if text.startswith("00") and text[2:3].isdigit() and region is None:
        text = "+" + text[2:]
    fast = _fast_parse(text, region)
    if fast is not None:
        ntype, country = _type_and_region(fast)
        if ntype != PhoneNumberType.UNKNOWN:
            return _info(fast, ntype, country)
    try:
        number = phonenumbers.parse(text, region)
    except NumberParseException as exc:
        if exc.error_type == NumberParseException.INVALID_COUNTRY_CODE:
            if region is None:
                raise RowError(
                    f"{what} {raw!r}: no country code; write it as +<country code><number> "
                    "or pass --region (or set the campaign's region)"
                ) from None
            raise RowError(f"{what} {raw!r}: unknown country code") from None
        raise RowError(f"{what} {raw!r}: not a phone number ({_parse_reason(exc)})") from None
    ntype, country = _type_and_region(number)
    if ntype == PhoneNumberType.UNKNOWN:
        raise RowError(f"{what} {raw!r}: not a valid number{_length_hint(number, country)}")
    return _info(number, ntype, country)


def _info(number: phonenumbers.PhoneNumber, ntype: int, country: str | None) -> NumberInfo:
    e164 = phonenumbers.format_number(number, PhoneNumberFormat.E164)
    if _pnu.is_number_type_geographical(ntype, number.country_code or 0):
        zones = _pntz.time_zones_for_geographical_number(number)
    elif _country_level_zones is not None:
        zones = _country_level_zones(number)
    else:
        zones = _pntz.time_zones_for_number(number)
    zone_list = [z for z in zones if z != UNKNOWN_ZONE]
    return NumberInfo(e164, country if country and country != "001" else None, zone_list)


_SEPARATORS = str.maketrans("", "", " -().\u00a0\t/")


@lru_cache(maxsize=512)
def _national_rules(region: str) -> tuple[int, str | None, re.Pattern[str] | None] | None:
    metadata = phonenumbers.PhoneMetadata.metadata_for_region(region)
    if metadata is None or metadata.national_prefix_transform_rule:
        return None
    pattern = metadata.national_prefix_for_parsing
    return (
        phonenumbers.country_code_for_region(region),
        metadata.national_prefix,
        re.compile(pattern) if pattern else None,
    )


def _fast_parse(text: str, region: str | None) -> phonenumbers.PhoneNumber | None:
    """The plain spellings of a number (digits, separators, optional +), without parse().

    phonenumbers.parse() is most of an import's time. This handles only the unambiguous
    cases and returns None for anything else (letters, extensions, carrier codes, a
    possible country code written without +, numbers starting with 0 after the prefix),
    which then go through parse(). The result is used only when it is a valid number;
    tests/unit/test_import_normalize_fast.py checks it agrees with parse().
    """
    s = text.translate(_SEPARATORS)
    if s.startswith("+"):
        digits = s[1:]
        if not (digits.isascii() and digits.isdigit()) or len(digits) < 4:
            return None
        for size in (1, 2, 3):
            code = int(digits[:size])
            regions = phonenumbers.COUNTRY_CODE_TO_REGION_CODE.get(code)
            if regions:
                break
        else:
            return None
        national = digits[size:]
        rules = _national_rules(regions[0])
        if rules is None or (rules[2] is not None and rules[2].match(national)):
            return None
    elif region is not None:
        if not (s.isascii() and s.isdigit()):
            return None
        rules = _national_rules(region)
        if rules is None:
            return None
        code, trunk_prefix, prefix_pattern = rules
        national = s
        if prefix_pattern is not None and prefix_pattern.match(national):
            if not trunk_prefix or not national.startswith(trunk_prefix):
                return None
            matched = prefix_pattern.match(national)
            if matched is None or matched.group(0) != trunk_prefix:
                return None
            national = national[len(trunk_prefix) :]
        if national.startswith(str(code)):
            return None
    else:
        return None
    if not national or national[0] == "0" or len(national) > 17:
        return None
    return phonenumbers.PhoneNumber(country_code=code, national_number=int(national))


def _parse_reason(exc: NumberParseException) -> str:
    reasons = {
        NumberParseException.NOT_A_NUMBER: "no digits in it",
        NumberParseException.TOO_SHORT_NSN: "too short",
        NumberParseException.TOO_SHORT_AFTER_IDD: "too short",
        NumberParseException.TOO_LONG: "too long",
    }
    return reasons.get(exc.error_type, str(exc))


def _length_hint(number: phonenumbers.PhoneNumber, country: str | None) -> str:
    """Why the number is invalid, for the country its country code says (not the default region)."""
    reason = phonenumbers.is_possible_number_with_reason(number)
    code = number.country_code or 0
    if country is None or country == "001":
        main = phonenumbers.region_code_for_country_code(code)
        country = main if main not in (None, "ZZ", "001") else None
    where = f" for {country} (+{code})" if country else (f" for +{code}" if code else "")
    hints = {
        phonenumbers.ValidationResult.TOO_SHORT: f": too short{where}",
        phonenumbers.ValidationResult.TOO_LONG: f": too long{where}",
        phonenumbers.ValidationResult.INVALID_LENGTH: f": wrong length{where}",
        phonenumbers.ValidationResult.INVALID_COUNTRY_CODE: ": unknown country code",
    }
    return hints.get(reason, f"{where} (no such prefix)")


@lru_cache(maxsize=4096)
def parse_timezones(text: str) -> tuple[str, ...]:
    """'Asia/Shanghai', 'UTC+8', '北京时间', 'America/New_York, America/Chicago' -> IANA zones."""
    out: list[str] = []
    whole = text.strip()
    parts = [whole] if _UTC_OFFSET.match(whole) else _ZONE_SPLIT.split(whole)
    for part in parts:
        token = part.strip()
        if not token:
            continue
        alias = _ZONE_ALIASES.get(token.lower()) or _ZONE_ALIASES.get(token)
        if alias:
            out.append(alias)
            continue
        m = _UTC_OFFSET.match(token)
        if m:
            hours = int(m.group(2))
            if hours > 14:
                raise RowError(f"timezone {text!r}: UTC offsets go from -12 to +14")
            # The Etc/GMT zones have inverted signs by POSIX convention: UTC+8 is Etc/GMT-8.
            out.append("UTC" if hours == 0 else f"Etc/GMT{'-' if m.group(1) == '+' else '+'}{hours}")
            continue
        try:
            ZoneInfo(token)
        except (ZoneInfoNotFoundError, ValueError):
            raise RowError(
                f"timezone {text!r}: not a time zone; write an IANA name such as Asia/Shanghai or America/New_York"
            ) from None
        out.append(token)
    return tuple(dict.fromkeys(out))


@lru_cache(maxsize=1024)
def zone_span_seconds(zones: tuple[str, ...]) -> int:
    """How far apart the zones' UTC offsets are, at most (winter or summer), in seconds.

    A calling window of ``W`` local hours is open somewhere in all of the zones at once
    only if this span is below ``W``.
    """
    spans = []
    for instant in _OFFSET_INSTANTS:
        offsets = []
        for name in zones:
            try:
                offset = instant.astimezone(ZoneInfo(name)).utcoffset()
            except (ZoneInfoNotFoundError, ValueError):
                continue
            if offset is not None:
                offsets.append(int(offset.total_seconds()))
        spans.append(max(offsets) - min(offsets) if offsets else 0)
    return max(spans)


def parse_vip(text: str) -> bool:
    value = text.strip().lower()
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    raise RowError(f"vip {text!r}: write yes/no, 1/0 or 是/否")


class RowNormalizer:
    """Callable turning a row's cells into a :class:`ContactRecord` (or raising :class:`RowError`)."""

    def __init__(
        self,
        mapping: ColumnMapping,
        region: str | None,
        default_timezone: str | None,
        window_seconds: int = DEFAULT_WINDOW_SECONDS,
    ) -> None:
        self.region = region
        self.default_timezone = default_timezone
        self.window_seconds = window_seconds
        f = mapping.fields
        self._phone = f["phone"]
        self._alts = [(f[name], name) for name in ("phone2", "phone3", "phone4") if name in f]
        self._simple = [(f[name], name) for name in ("name", "region", "segment", "external_id") if name in f]
        self._timezone = f.get("timezone")
        self._vip = f.get("vip")
        self._attributes = mapping.attributes

    def __call__(self, cells: Sequence[str]) -> ContactRecord:
        width = len(cells)

        def cell(index: int) -> str:
            return cells[index].strip() if index < width else ""

        raw_phone = cell(self._phone)
        if not raw_phone:
            raise RowError("phone is empty")
        info = normalize_number(raw_phone, self.region)
        record = ContactRecord(phone=info.e164, country=info.country)
        for index, name in self._alts:
            raw = cell(index)
            if raw:
                try:
                    alt = normalize_number(raw, self.region, what=name)
                except RowError as exc:
                    record.warnings.append((DROPPED_ALTERNATE, f"{exc}; that number was dropped"))
                    continue
                if alt.e164 != record.phone and alt.e164 not in record.alt_phones:
                    record.alt_phones.append(alt.e164)
        for index, name in self._simple:
            value = cell(index)
            if value:
                setattr(record, name, value)
        if self._vip is not None:
            record.vip = parse_vip(cell(self._vip))
        zone_text = cell(self._timezone) if self._timezone is not None else ""
        if zone_text:
            record.timezones = list(parse_timezones(zone_text))
        elif info.timezones:
            record.timezones = info.timezones
            if len(info.timezones) > 1:
                self._check_overlap(raw_phone, record)
        elif self.default_timezone:
            record.timezones = [self.default_timezone]
        else:
            raise RowError(
                f"phone {raw_phone!r}: no time zone known for this number; "
                "add a timezone column or set the campaign's timezone"
            )
        for index, key in self._attributes:
            value = cell(index)
            if value:
                record.attributes[key] = value
        return record

    def _check_overlap(self, raw_phone: str, record: ContactRecord) -> None:
        span = zone_span_seconds(tuple(record.timezones))
        if span < self.window_seconds:
            return
        count = len(record.timezones)
        hours = f"{span / 3600:g}"
        window = f"{self.window_seconds / 3600:g}"
        if self.default_timezone is None:
            raise RowError(
                f"phone {raw_phone!r}: its {count} candidate time zones span {hours} h, more than the "
                f"{window} h calling window, so it could never be called; add a timezone column "
                "or set the campaign's timezone"
            )
        record.timezones = [self.default_timezone]
        record.warnings.append(
            (
                TIMEZONE_FALLBACK,
                f"phone {raw_phone!r}: its {count} candidate time zones span {hours} h (their "
                f"{window} h windows never overlap); called on the campaign's time zone "
                f"{self.default_timezone} instead",
            )
        )


def merge_records(old: ContactRecord, new: ContactRecord) -> ContactRecord:
    """Merge a duplicate into what is known: known values win, gaps are filled, numbers unite.

    Merging is idempotent (merging the same data again changes nothing), which is what
    makes re-importing a file a no-op.
    """
    numbers = old.numbers
    extra = [n for n in new.numbers if n not in numbers]
    alts = [*old.alt_phones, *extra][:MAX_ALT_PHONES]
    overflow = [*old.alt_phones, *extra][MAX_ALT_PHONES:]
    attributes = {**new.attributes, **old.attributes}
    if overflow:
        known = attributes.get("extra_phones", "")
        more = [n for n in overflow if n not in known.split()]
        if more:
            attributes["extra_phones"] = " ".join(filter(None, [known, *more]))
    return ContactRecord(
        phone=old.phone,
        alt_phones=alts,
        name=old.name or new.name,
        timezones=old.timezones or new.timezones,
        country=old.country or new.country,
        region=old.region or new.region,
        segment=old.segment or new.segment,
        vip=old.vip or new.vip,
        external_id=old.external_id or new.external_id,
        attributes=attributes,
    )
