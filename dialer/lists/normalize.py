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
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import lru_cache
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import phonenumbers
from phonenumbers import COUNTRY_CODE_TO_REGION_CODE as _COUNTRY_REGIONS
from phonenumbers import NumberParseException, PhoneMetadata, PhoneNumberFormat, PhoneNumberType
from phonenumbers import phonenumberutil as _pnu
from phonenumbers import timezone as _pntz
from phonenumbers.tzdata import TIMEZONE_DATA, TIMEZONE_LONGEST_PREFIX

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


_country_level_zones = getattr(_pntz, "_country_level_time_zones_for_number", None)

# The number type, exactly as phonenumbers' _number_type_helper decides it (same descs, same
# order, same possible-length filter, same full-match test), with the patterns compiled once
# per (region, national number length) instead of looked up in the regex cache on every test.
# tests/unit/test_import_normalize_fast.py checks it against number_type() for every region.
_Matcher = Callable[[str], object]
_SPECIAL_TYPES = (
    ("premium_rate", PhoneNumberType.PREMIUM_RATE),
    ("toll_free", PhoneNumberType.TOLL_FREE),
    ("shared_cost", PhoneNumberType.SHARED_COST),
    ("voip", PhoneNumberType.VOIP),
    ("personal_number", PhoneNumberType.PERSONAL_NUMBER),
    ("pager", PhoneNumberType.PAGER),
    ("uan", PhoneNumberType.UAN),
    ("voicemail", PhoneNumberType.VOICEMAIL),
)
_UNKNOWN = PhoneNumberType.UNKNOWN
_FIXED_LINE = PhoneNumberType.FIXED_LINE
_FIXED_LINE_OR_MOBILE = PhoneNumberType.FIXED_LINE_OR_MOBILE
_MOBILE = PhoneNumberType.MOBILE


@lru_cache(maxsize=4096)
def _compiled(pattern: str) -> re.Pattern[str]:
    return re.compile(pattern)


def _desc_matcher(desc: Any, length: int) -> _Matcher | None:
    """The full-match test of ``desc`` for numbers of ``length`` digits; None where
    phonenumbers' _is_number_matching_desc is False for every such number."""
    if desc is None:
        return None
    lengths = desc.possible_length
    if len(lengths) > 0 and length not in lengths:
        return None
    pattern = desc.national_number_pattern
    if pattern is None or len(pattern) == 0:
        return None
    # phonenumbers tests pattern.match() and then fullmatch(): fullmatch alone is the same.
    return _compiled(pattern).fullmatch


@dataclass(frozen=True, slots=True)
class _TypePlan:
    """The tests _number_type_helper makes for numbers of one length against one metadata."""

    general: _Matcher | None
    specials: tuple[tuple[_Matcher, int], ...]
    fixed_line: _Matcher | None
    mobile: _Matcher | None
    same_mobile_and_fixed_line: bool

    @classmethod
    def build(cls, metadata: Any, length: int) -> _TypePlan:
        specials = []
        for name, ntype in _SPECIAL_TYPES:
            matcher = _desc_matcher(getattr(metadata, name), length)
            if matcher is not None:
                specials.append((matcher, ntype))
        return cls(
            general=_desc_matcher(metadata.general_desc, length),
            specials=tuple(specials),
            fixed_line=_desc_matcher(metadata.fixed_line, length),
            mobile=_desc_matcher(metadata.mobile, length),
            same_mobile_and_fixed_line=bool(metadata.same_mobile_and_fixed_line_pattern),
        )

    def type_of(self, nsn: str) -> int:
        if self.general is None or not self.general(nsn):
            return _UNKNOWN
        for matcher, ntype in self.specials:
            if matcher(nsn):
                return ntype
        if self.fixed_line is not None and self.fixed_line(nsn):
            if self.same_mobile_and_fixed_line or (self.mobile is not None and self.mobile(nsn)):
                return _FIXED_LINE_OR_MOBILE
            return _FIXED_LINE
        if not self.same_mobile_and_fixed_line and self.mobile is not None and self.mobile(nsn):
            return _MOBILE
        return _UNKNOWN


class _Typer:
    """_number_type_helper(nsn, metadata) for one metadata, with a plan per number length."""

    __slots__ = ("metadata", "plans")

    def __init__(self, metadata: Any) -> None:
        self.metadata = metadata
        self.plans: dict[int, _TypePlan] = {}

    def __call__(self, nsn: str) -> int:
        plan = self.plans.get(len(nsn))
        if plan is None:
            plan = self.plans[len(nsn)] = _TypePlan.build(self.metadata, len(nsn))
        return plan.type_of(nsn)


_TYPERS: dict[int, _Typer] = {}  # id(metadata) -> its typer (which keeps the metadata alive)


def _typer(metadata: Any) -> _Typer | None:
    if metadata is None:
        return None
    typer = _TYPERS.get(id(metadata))
    if typer is None:
        typer = _TYPERS[id(metadata)] = _Typer(metadata)
    return typer


@dataclass(frozen=True, slots=True)
class _Candidate:
    """One region of a calling code shared by several (+1, +7, +44 ...)."""

    region: str
    leading_digits: Callable[[str], object] | None  # metadata.leading_digits, compiled
    lookup: _Typer | None  # metadata_for_region(region): what region_code_for_number types with
    final: _Typer | None  # metadata_for_region_or_calling_code(code, region): what number_type uses


# calling code -> its only region and typer, or its candidate regions in phonenumbers' order
_SINGLE: dict[int, tuple[str, _Typer | None]] = {}
_SHARED: dict[int, tuple[_Candidate, ...]] = {}


def _learn_code(code: int) -> bool:
    """Fill _SINGLE or _SHARED for ``code``; False for a calling code phonenumbers does not know."""
    regions = _COUNTRY_REGIONS.get(code)
    if regions is None:
        return False
    if len(regions) == 1:
        _SINGLE[code] = (regions[0], _typer(PhoneMetadata.metadata_for_region_or_calling_code(code, regions[0])))
        return True
    candidates = []
    for region in regions:
        lookup = PhoneMetadata.metadata_for_region(region.upper(), None)
        final = PhoneMetadata.metadata_for_region_or_calling_code(code, region)
        leading = None
        if lookup is not None and lookup.leading_digits is not None:
            leading = _compiled(lookup.leading_digits).match
        candidates.append(_Candidate(region, leading, _typer(lookup), _typer(final)))
    _SHARED[code] = tuple(candidates)
    return True


def _classify(country_code: int | None, nsn: str) -> tuple[int, str | None]:
    """(number_type, region_code_for_number) of the number ``+country_code nsn``.

    ``nsn`` is its national significant number (leading zeros included). The same answers as
    phonenumbers.number_type() and region_code_for_number(), computed with one typing of
    the number: for a calling code shared by several regions, the type found while looking
    for the region (phonenumbers' _region_code_for_number_from_list) is reused.
    """
    if country_code is None:
        return _UNKNOWN, None
    single = _SINGLE.get(country_code)
    if single is not None:
        return (_UNKNOWN if single[1] is None else single[1](nsn)), single[0]
    candidates = _SHARED.get(country_code)
    if candidates is None:
        if not _learn_code(country_code):
            return _UNKNOWN, None
        return _classify(country_code, nsn)
    for candidate in candidates:
        if candidate.lookup is None:
            continue
        if candidate.leading_digits is not None:
            if not candidate.leading_digits(nsn):
                continue
        else:
            ntype = candidate.lookup(nsn)
            if ntype == _UNKNOWN:
                continue
            if candidate.final is candidate.lookup:
                return ntype, candidate.region
        return (_UNKNOWN if candidate.final is None else candidate.final(nsn)), candidate.region
    return _UNKNOWN, None


def _type_and_region(number: phonenumbers.PhoneNumber) -> tuple[int, str | None]:
    return _classify(number.country_code, phonenumbers.national_significant_number(number))


def normalize_number(raw: str, region: str | None, what: str = "phone") -> NumberInfo:
    """Parse ``raw`` into E.164 with its country and candidate zones; :class:`RowError` if invalid."""
    text = raw.strip()
    if text.endswith(".0") and text[:-2].isdigit():
        text = text[:-2]  # a number that went through a spreadsheet as a float
    if text.startswith("00") and text[2:3].isdigit() and region is None:
        text = "+" + text[2:]
    fast = _fast_split(text, region)
    if fast is not None:
        code, nsn = fast
        ntype, country = _classify(code, nsn)
        if ntype != _UNKNOWN:
            return _info(code, f"+{code}{nsn}", ntype, country)
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
    if ntype == _UNKNOWN:
        raise RowError(f"{what} {raw!r}: not a valid number{_length_hint(number, country)}")
    return _info(number.country_code or 0, phonenumbers.format_number(number, PhoneNumberFormat.E164), ntype, country)


# Time zones: phonenumbers' prefix map (TIMEZONE_DATA) decides by the longest key that
# prefixes the E.164 digits. _TZ_STEMS holds every prefix of every key, so walking the
# digits forward while they still lead to a key finds that same longest key, usually in
# three or four lookups instead of nine.
_TZ_STEMS = frozenset(key[:i] for key in TIMEZONE_DATA for i in range(1, len(key) + 1))
_UNKNOWN_ZONES: tuple[str, ...] = (UNKNOWN_ZONE,)


def _geographical_zones(digits: str) -> tuple[str, ...]:
    """time_zones_for_geographical_number() of the number whose E.164 form is '+' + digits."""
    found = _UNKNOWN_ZONES
    stems = _TZ_STEMS
    for length in range(1, min(len(digits), TIMEZONE_LONGEST_PREFIX) + 1):
        prefix = digits[:length]
        if prefix not in stems:
            break
        zones = TIMEZONE_DATA.get(prefix)
        if zones is not None:
            found = zones
    return found


@lru_cache(maxsize=1024)
def _country_zones(country_code: int) -> tuple[str, ...]:
    """_country_level_time_zones_for_number() (it reads only the calling code), less Etc/Unknown."""
    assert _country_level_zones is not None
    return _known_zones(tuple(_country_level_zones(phonenumbers.PhoneNumber(country_code=country_code))))


@lru_cache(maxsize=4096)
def _known_zones(zones: tuple[str, ...]) -> tuple[str, ...]:
    return tuple(z for z in zones if z != UNKNOWN_ZONE)


@lru_cache(maxsize=1024)
def _zone_key_length(country_code: int) -> int:
    """The longest key of the prefix map that a number of this calling code can match.

    Its digits start with the code, so every key that prefixes them either prefixes the
    code or starts with it: the zones depend on no digit past this length.
    """
    code = str(country_code)
    return max((len(key) for key in TIMEZONE_DATA if key.startswith(code) or code.startswith(key)), default=0)


_MEMO_KEY_MAX = 5  # memoise zones by leading digits only where that bounds the memo (<= 10**4 keys a code)
_ZONE_MEMO: dict[str, tuple[str, ...]] = {}


def _zones_for(code: int, e164: str, ntype: int) -> tuple[str, ...]:
    """The number's candidate zones as phonenumbers gives them, less Etc/Unknown."""
    if not _pnu.is_number_type_geographical(ntype, code):
        if _country_level_zones is not None:
            return _country_zones(code)
        return _known_zones(tuple(_pntz.time_zones_for_number(phonenumbers.parse(e164, None))))
    digits = e164[1:]
    length = _zone_key_length(code)
    if length > _MEMO_KEY_MAX:
        return _known_zones(_geographical_zones(digits))
    key = digits[:length]  # exact: see _zone_key_length
    zones = _ZONE_MEMO.get(key)
    if zones is None:
        zones = _ZONE_MEMO[key] = _known_zones(_geographical_zones(digits))
    return zones


def _info(code: int, e164: str, ntype: int, country: str | None) -> NumberInfo:
    return NumberInfo(e164, country if country and country != "001" else None, list(_zones_for(code, e164, ntype)))


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
    """:func:`_fast_split` as the PhoneNumber that parse() would give (when valid)."""
    split = _fast_split(text, region)
    if split is None:
        return None
    return phonenumbers.PhoneNumber(country_code=split[0], national_number=int(split[1]))


def _fast_split(text: str, region: str | None) -> tuple[int, str] | None:
    """The plain spellings of a number (digits, separators, optional +), without parse().

    phonenumbers.parse() is most of an import's time. This handles only the unambiguous
    cases and returns None for anything else (letters, extensions, carrier codes, a
    possible country code written without +, numbers starting with 0 after the prefix),
    which then go through parse(). Returns (calling code, national significant number);
    the result is used only when it is a valid number;
    tests/unit/test_import_normalize_fast.py checks it agrees with parse().
    """
    s = text.translate(_SEPARATORS)
    if s.startswith("+"):
        digits = s[1:]
        if not (digits.isascii() and digits.isdigit()) or len(digits) < 4:
            return None
        for size in (1, 2, 3):
            code = int(digits[:size])
            regions = _COUNTRY_REGIONS.get(code)
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
    return code, national


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
        # Absent fields get an index no row reaches, so the loop needs no None checks.
        absent = 1 << 30
        self._name, self._region, self._segment, self._external_id = (
            f.get(name, absent) for name in ("name", "region", "segment", "external_id")
        )
        self._timezone = f.get("timezone")
        self._vip = f.get("vip")
        self._attributes = mapping.attributes

    def __call__(self, cells: Sequence[str]) -> ContactRecord:
        # The hot loop of an import: cells are read inline, and the record is built once.
        width = len(cells)
        index = self._phone
        raw_phone = cells[index].strip() if index < width else ""
        if not raw_phone:
            raise RowError("phone is empty")
        info = normalize_number(raw_phone, self.region)
        phone = info.e164
        alt_phones: list[str] = []
        warnings: list[tuple[str, str]] = []
        for index, label in self._alts:
            raw = cells[index].strip() if index < width else ""
            if raw:
                try:
                    alt = normalize_number(raw, self.region, what=label)
                except RowError as exc:
                    warnings.append((DROPPED_ALTERNATE, f"{exc}; that number was dropped"))
                    continue
                if alt.e164 != phone and alt.e164 not in alt_phones:
                    alt_phones.append(alt.e164)
        index = self._name
        name = (cells[index].strip() or None) if index < width else None
        index = self._region
        region = (cells[index].strip() or None) if index < width else None
        index = self._segment
        segment = (cells[index].strip() or None) if index < width else None
        index = self._external_id
        external_id = (cells[index].strip() or None) if index < width else None
        vip = False
        if self._vip is not None:
            vip = parse_vip(cells[self._vip].strip() if self._vip < width else "")
        zone_text = cells[self._timezone].strip() if self._timezone is not None and self._timezone < width else ""
        check_overlap = False
        if zone_text:
            timezones = list(parse_timezones(zone_text))
        elif info.timezones:
            timezones = info.timezones
            check_overlap = len(timezones) > 1
        elif self.default_timezone:
            timezones = [self.default_timezone]
        else:
            raise RowError(
                f"phone {raw_phone!r}: no time zone known for this number; "
                "add a timezone column or set the campaign's timezone"
            )
        attributes: dict[str, Any] = {}
        for index, key in self._attributes:
            if index < width:
                value = cells[index].strip()
                if value:
                    attributes[key] = value
        record = ContactRecord(
            phone, alt_phones, name, timezones, info.country, region, segment, vip, external_id, attributes, warnings
        )
        if check_overlap:
            self._check_overlap(raw_phone, record)
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
