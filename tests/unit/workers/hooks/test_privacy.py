"""Personal data found, masked and restored: a table per entity type, and round-trip
properties (hypothesis)."""

from __future__ import annotations

import pytest
from chatq.workers.hooks.privacy import (
    ID_CHECK,
    ID_WEIGHTS,
    Masker,
    StreamRestorer,
    find_personal_data,
    luhn_valid,
    valid_resident_id,
)
from hypothesis import given, settings
from hypothesis import strategies as st


def kinds(text: str) -> list[tuple[str, str]]:
    return [(kind, text[s:e]) for s, e, kind in find_personal_data(text)]


def with_check(first17: str) -> str:
    total = sum(int(d) * w for d, w in zip(first17, ID_WEIGHTS, strict=True))
    return first17 + ID_CHECK[total % 11]


VALID_ID = with_check("11010519491231002")  # the standard's own example: ...002X
VALID_CARD = "4111 1111 1111 1111"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        # e-mail
        ("write to ana.li+work@example.co.uk today", [("EMAIL", "ana.li+work@example.co.uk")]),
        ("not an email: ana@localhost", []),
        ("@handle is no address", []),
        # mainland China mobiles
        ("call 13812345678 now", [("PHONE", "13812345678")]),
        ("call +86 138 1234 5678", [("PHONE", "+86 138 1234 5678")]),
        ("12812345678 has no valid prefix", []),
        ("138123456789 is too long", []),
        # international numbers with a +
        ("ring +1 (415) 555-2671", [("PHONE", "+1 (415) 555-2671")]),
        ("ring +44 20 7946 0958", [("PHONE", "+44 20 7946 0958")]),
        # PRC resident identity numbers
        (f"ID {VALID_ID}", [("ID", VALID_ID)]),
        (f"ID {VALID_ID[:17]}{'0' if VALID_ID[17] != '0' else '1'}", []),  # wrong check char
        ("ID 110105194913310021", []),  # 13th month
        ("ID 110105" + "21990101" + "0011", []),  # born in the future
        # bank cards (Luhn)
        (f"card {VALID_CARD}", [("CARD", VALID_CARD)]),
        ("card 4111-1111-1111-1111", [("CARD", "4111-1111-1111-1111")]),
        ("card 5500005555555559", [("CARD", "5500005555555559")]),
        ("card 4111 1111 1111 1112", []),  # fails Luhn
        ("order 1234", []),
        # IP addresses
        ("from 192.168.1.20", [("IP", "192.168.1.20")]),
        ("from 2001:db8::8a2e:370:7334", [("IP", "2001:db8::8a2e:370:7334")]),
        ("version 256.1.1.1", []),
        ("version 1.2.3", []),
        ("at 12:30:45", []),
    ],
)
def test_entities_found_and_not_found(text, expected):
    assert kinds(text) == expected


def test_checksums():
    assert valid_resident_id(VALID_ID) and VALID_ID.endswith("X")
    assert valid_resident_id(VALID_ID.lower())
    assert not valid_resident_id(VALID_ID[:-1] + "1")
    assert luhn_valid("79927398713") and not luhn_valid("79927398710")


def test_the_same_value_gets_the_same_placeholder_and_comes_back():
    masker = Masker()
    text = "Mail ana@example.com or ana@example.com, card 4111 1111 1111 1111."
    masked = masker.mask(text)
    assert masked == "Mail [EMAIL_1] or [EMAIL_1], card [CARD_1]."
    assert masker.restore("Sent to [EMAIL_1].") == "Sent to ana@example.com."


def test_a_placeholder_already_in_the_text_is_never_reused():
    masker = Masker()
    text = "literal [EMAIL_1] and real bo@example.org"
    masked = masker.mask(text)
    assert masked == "literal [EMAIL_1] and real [EMAIL_2]"
    assert masker.restore(masked) == text


def test_a_placeholder_split_across_deltas_is_restored_whole():
    masker = Masker()
    masker.mask("my number is 13812345678")
    restorer = StreamRestorer(masker)
    pieces = ["Call ", "[PHO", "NE_", "1] or [", "x] now ["]
    out = "".join(restorer.feed(p) for p in pieces) + restorer.flush()
    assert out == "Call 13812345678 or [x] now ["


def id_numbers() -> st.SearchStrategy[str]:
    region = st.integers(110000, 659999).map(str)
    born = st.dates(min_value=__import__("datetime").date(1900, 1, 1)).filter(
        lambda d: d <= __import__("datetime").date.today()
    )
    seq = st.integers(0, 999).map(lambda n: f"{n:03d}")
    return st.builds(lambda r, b, s: with_check(f"{r}{b:%Y%m%d}{s}"), region, born, seq)


def card_numbers() -> st.SearchStrategy[str]:
    def luhn_complete(body: str) -> str:
        for digit in "0123456789":
            if luhn_valid(body + digit):
                return body + digit
        raise AssertionError

    return st.from_regex(r"[1-9][0-9]{14}", fullmatch=True).map(luhn_complete)


SENSITIVE = st.one_of(
    st.emails(),
    st.from_regex(r"1[3-9][0-9]{9}", fullmatch=True),
    id_numbers(),
    card_numbers(),
    st.ip_addresses().map(str),
)
FILLER = st.text(alphabet=st.characters(codec="utf-8", exclude_categories=["Cs"]), max_size=20)


@settings(max_examples=400, deadline=None)
@given(st.lists(st.one_of(FILLER, SENSITIVE), max_size=8))
def test_masking_then_restoring_gives_the_original_text(parts):
    text = " ".join(parts)
    masker = Masker()
    assert masker.restore(masker.mask(text)) == text


@settings(max_examples=200, deadline=None)
@given(st.lists(st.one_of(FILLER, SENSITIVE), max_size=8), st.data())
def test_streamed_restoring_matches_whole_restoring(parts, data):
    text = " ".join(parts)
    masker = Masker()
    masked = masker.mask(text)
    cuts = sorted(data.draw(st.lists(st.integers(0, len(masked)), max_size=6)))
    pieces = [masked[a:b] for a, b in zip([0, *cuts], [*cuts, len(masked)], strict=True)]
    restorer = StreamRestorer(masker)
    assert "".join(restorer.feed(p) for p in pieces) + restorer.flush() == text


@settings(max_examples=200, deadline=None)
@given(SENSITIVE, FILLER, FILLER)
def test_a_value_between_spaces_never_reaches_the_provider(value, before, after):
    masked = Masker().mask(f"{before} {value} {after}")
    assert value not in masked


def test_an_address_is_found_from_the_start_of_its_run_only():
    text = "contact: " + "a" * 5000 + "@example.com, or 4111 1111 1111 1111"
    found = find_personal_data(text)
    assert [(text[s:e][:3], kind) for s, e, kind in found] == [("aaa", "EMAIL"), ("411", "CARD")]
    assert found[0][1] - found[0][0] == 5000 + len("@example.com")
