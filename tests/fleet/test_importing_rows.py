"""Row checks of the fleet importer (`fleet/importing/rows.py`)."""

import random

import phonenumbers
import pytest

from fleet.importing.rows import phone_e164


def reference_e164(value: str, country: str) -> str | None:
    """What phonenumbers itself says: parse, validate, format."""
    try:
        number = phonenumbers.parse(value, country)
    except phonenumbers.NumberParseException:
        return None
    if not phonenumbers.is_valid_number(number):
        return None
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


def phone_samples():
    rnd = random.Random(20261122)
    samples = [
        "+15415550101",
        "541-555-0101",
        "(541) 555-0101",
        "1 541 555 0101",
        "+1 (416) 555-0123",  # Toronto: valid in CA, not in US
        "+18765550123",  # Jamaica (NANP, +1 876)
        "8765550123",
        "+18005550199",  # toll free
        "+11415550101",  # area code starting with 1
        "+10415550101",
        "15415550101",
        "115415550101",
        "+1541555010",  # too short
        "+154155501011",  # too long
        "5415550101 x12",
        "+44 20 7946 0958",
        "020 7946 0958",
        "+33 1 23 45 67 89",
        "+390612345678",  # Italy, leading zero kept
        "+2125550123",
        "not a phone",
        "+",
        "1-800-FLOWERS",
        "212555\uff10\uff11\uff12\uff13",  # full-width digits
        "+1 212 555 \u0660\u0661\u0662\u0663",  # Arabic-Indic digits
    ]
    for _ in range(3000):
        area = rnd.randint(200, 999)
        exchange = rnd.randint(100, 999)
        line = rnd.randint(0, 9999)
        digits = f"{area}{exchange}{line:04d}"
        samples.append(rnd.choice([f"+1{digits}", digits, f"({area}) {exchange}-{line:04d}", f"1{digits}"]))
    return samples


@pytest.mark.parametrize("country", ["US", "CA", "JM", "GB", "IT"])
def test_phone_e164_agrees_with_phonenumbers_everywhere(country):
    disagreements = [
        (value, phone_e164(value, country), reference_e164(value, country))
        for value in phone_samples()
        if phone_e164(value, country) != reference_e164(value, country)
    ]
    assert disagreements == []


def test_phone_e164_normalizes_and_refuses():
    assert phone_e164("(541) 555-0101", "US") == "+15415550101"
    assert phone_e164("+1 416 555 0123", "US") == "+14165550123"  # a Canadian customer in a US file
    assert phone_e164("+11415550101", "US") is None
    assert phone_e164("555-0101", "US") is None


def django_accepts(value: str) -> bool:
    from django.core.exceptions import ValidationError
    from django.core.validators import validate_email

    try:
        validate_email(value)
    except ValidationError:
        return False
    return True


def email_samples():
    rnd = random.Random(7)
    samples = [
        "ana.chen@example.com",
        "ANA@EXAMPLE.COM",
        "a..b@example.com",
        ".a@example.com",
        "a.@example.com",
        "a@-example.com",
        "a@example-.com",
        "a@example.c",
        "a@example.com-",
        "a@localhost",
        "a@[127.0.0.1]",
        "o'brien@example.ie",
        "ünïcode@exämple.de",
        "a b@example.com",
        "a@b@example.com",
        "@example.com",
        "a@",
        "x" * 65 + "@example.com",
        "a@" + "b" * 64 + ".com",
        "a@" + ".".join(["abcdefghij"] * 30) + ".com",
        "a+tag@sub.example.co.uk",
        "a_b%c@example.travel",
    ]
    alphabet = "abcxyz019._%+-@'! "
    for _ in range(3000):
        local = "".join(rnd.choice(alphabet[:-3]) for _ in range(rnd.randint(0, 8)))
        domain = "".join(rnd.choice("abz09-.") for _ in range(rnd.randint(0, 10)))
        samples.append(f"{local}@{domain}.{rnd.choice(['com', 'io', 'c', 'x-', 'de'])}")
        samples.append("".join(rnd.choice(alphabet) for _ in range(rnd.randint(1, 20))))
    return samples


def test_email_is_valid_agrees_with_django_everywhere():
    from fleet.importing.rows import email_is_valid

    assert [v for v in email_samples() if email_is_valid(v) != django_accepts(v)] == []
