"""The import's fast number path agrees with phonenumbers.parse() wherever it answers."""

from __future__ import annotations

import random

import phonenumbers
import pytest

from dialer.lists.normalize import RowError, _fast_parse, normalize_number

REGIONS = ["CN", "US", "GB", "DE", "FR", "RU", "AU", "BR", "IN", "JP", "HK", "IT", "MX", "AR"]


def spellings(rnd: random.Random, region: str) -> list[str]:
    example = phonenumbers.example_number_for_type(region, phonenumbers.PhoneNumberType.MOBILE) or (
        phonenumbers.example_number(region)
    )
    assert example is not None
    nsn = str(example.national_number)
    digits = "".join(d if rnd.random() < 0.6 else str(rnd.randrange(10)) for d in nsn)
    digits = digits[: max(4, len(digits) + rnd.choice([-2, -1, 0, 0, 0, 1]))]
    cc = example.country_code
    return [
        digits,
        f"0{digits}",
        f"+{cc}{digits}",
        f"+{cc} {digits[:3]} {digits[3:]}",
        f"{cc}{digits}",
        f"({digits[:3]}) {digits[3:6]}-{digits[6:]}",
        f"00{cc}{digits}",
        f"1{digits}",
        f"+{cc} 0{digits}",
    ]


def full(text: str, region: str) -> str | None:
    try:
        number = phonenumbers.parse(text, region)
    except phonenumbers.NumberParseException:
        return None
    if not phonenumbers.is_valid_number(number):
        return None
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


@pytest.mark.parametrize("region", REGIONS)
def test_fast_path_agrees_with_parse(region: str) -> None:
    rnd = random.Random(region)
    answered = 0
    for _ in range(300):
        for text in spellings(rnd, region):
            expected = full(text, region)
            try:
                got: str | None = normalize_number(text, region).e164
            except RowError:
                got = None
            assert got == expected, (text, region)
            fast = _fast_parse(text, region)
            if fast is not None and phonenumbers.is_valid_number(fast):
                answered += 1
                assert phonenumbers.format_number(fast, phonenumbers.PhoneNumberFormat.E164) == expected, text
    if region in {"CN", "US", "GB", "DE", "FR", "IN", "HK"}:
        assert answered > 100  # the fast path really is used where lists mostly come from
