"""Validators on their own, with property tests for the parsers people type into."""

from __future__ import annotations

from datetime import date

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bot.core.flow import Invalid
from bot.i18n import use_locale
from bot.validators import (
    age_on,
    check_nik_matches,
    parse_date,
    parse_full_name,
    parse_nik,
    parse_passport_number,
    parse_phone,
    split_nik,
)
from storage.applications import REG_ALPHABET, new_reg_number, normalize_reg_number
from tests.transcript import make_nik

TODAY = date(2026, 11, 22)
births = st.dates(min_value=date(1920, 1, 1), max_value=TODAY)
ID_MONTHS = ["Januari", "Februari", "Maret", "April", "Mei", "Juni", "Juli", "Agustus",
             "September", "Oktober", "November", "Desember"]  # fmt: skip


@pytest.mark.parametrize(
    "typed",
    ["17-08-1990", "17/8/1990", "17.08.1990", "1990-08-17", "17 Agustus 1990", "17 agt 1990",
     "17 Agt. 1990", "17 august 1990", "17 Aug 1990", "17-agustus-1990", " 17  AGUSTUS  1990 "],
)  # fmt: skip
def test_birth_date_formats(typed: str) -> None:
    assert parse_date(typed, TODAY) == date(1990, 8, 17)


@given(births, st.sampled_from(["{d}-{m:02d}-{y}", "{d}/{m}/{y}", "{d} {name} {y}"]))
def test_any_written_date_reads_back(birth: date, pattern: str) -> None:
    typed = pattern.format(
        d=birth.day, m=birth.month, y=birth.year, name=ID_MONTHS[birth.month - 1]
    )
    with use_locale("id"):
        assert parse_date(typed, TODAY) == birth


@given(births, st.booleans(), st.integers(min_value=1, max_value=9999))
def test_generated_nik_is_valid_and_matches(birth: date, female: bool, serial: int) -> None:
    nik = make_nik(birth, female=female, serial=serial)
    with use_locale("id"):
        assert parse_nik(nik) == nik
        check_nik_matches(nik, birth, "F" if female else "M")
    parts = split_nik(nik)
    assert parts.female is female and parts.birth_day == birth.day


@given(births, births)
def test_nik_for_another_birth_date_is_refused(birth: date, other: date) -> None:
    nik = make_nik(birth)
    same_digits = (birth.day, birth.month, birth.year % 100) == (
        other.day, other.month, other.year % 100)  # fmt: skip
    with use_locale("id"):
        if same_digits:
            check_nik_matches(nik, other, "M")
        else:
            with pytest.raises(Invalid):
                check_nik_matches(nik, other, "M")


def test_nik_accepts_spaces_dots_and_dashes() -> None:
    with use_locale("id"):
        assert parse_nik("3273.0117.0890.0001") == "3273011708900001"
        assert parse_nik("3273-0117-0890-0001") == "3273011708900001"


@pytest.mark.parametrize("typed", ["081234567890", "6281234567890", "+62 812-3456-7890",
                                   "0812 3456 7890", "(0812) 3456-7890"])  # fmt: skip
def test_phone_forms_are_one_number(typed: str) -> None:
    with use_locale("id"):
        assert parse_phone(typed) == "+6281234567890"


def test_names_are_kept_as_on_the_ktp() -> None:
    with use_locale("id"):
        assert parse_full_name("  muh.  ali-akbar  ") == "MUH. ALI-AKBAR"
        assert parse_full_name("Ni Luh Putu Ayu'") == "NI LUH PUTU AYU'"


def test_passport_numbers() -> None:
    with use_locale("id"):
        assert parse_passport_number("c 1234567") == "C1234567"
        assert parse_passport_number("AB-123456") == "AB123456"
        with pytest.raises(Invalid):
            parse_passport_number("A123456")


def test_age_turns_on_the_birthday() -> None:
    assert age_on(date(2009, 11, 22), TODAY) == 17
    assert age_on(date(2009, 11, 23), TODAY) == 16


@given(st.integers(min_value=0, max_value=100))
def test_registration_numbers_read_back_however_typed(_seed: int) -> None:
    number = new_reg_number()
    assert normalize_reg_number(number) == number
    assert normalize_reg_number(number.lower().replace("-", " ")) == number
    body = number[3:].replace("-", "")
    assert all(ch in REG_ALPHABET for ch in body)
    assert normalize_reg_number(number.replace("0", "O").replace("1", "I")) == number


def test_not_a_registration_number() -> None:
    assert normalize_reg_number("LK-1234") is None
    assert normalize_reg_number("XX-1234-5678") is None
