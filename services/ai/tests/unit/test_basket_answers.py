"""Reading the model's basket answer and its tool arguments: junk never becomes a crash."""

from __future__ import annotations

import pytest

from yummi_ai.domain.suggestions import (
    MAX_SUGGESTIONS,
    UnusableAnswer,
    clamp_quantity,
    parse_answer,
    parse_search_args,
    validate_request_text,
)
from yummi_common.errors import InvalidArgument


def test_a_well_formed_answer_is_read():
    items, dropped = parse_answer(
        '{"items": [{"product_id": "WW1", "quantity": 3, "reason": "for the sauce"}]}'
    )
    assert [(i.product_id, i.quantity, i.reason) for i in items] == [("WW1", 3, "for the sauce")]
    assert dropped == []


@pytest.mark.parametrize(
    "content", [None, "", "   ", "Sure, here you go", '{"items": "x"}', '"items"', "[1, 2"]
)
def test_an_answer_that_is_not_the_asked_json_is_unusable(content):
    with pytest.raises(UnusableAnswer):
        parse_answer(content)


def test_malformed_and_repeated_items_are_dropped_not_fatal():
    items, dropped = parse_answer(
        '[{"product_id": "A"}, {"product_id": ""}, {"quantity": 2}, 7, {"product_id": "A"},'
        ' {"product_id": 42}]'
    )
    assert [i.product_id for i in items] == ["A", "42"]
    assert len(dropped) == 4


def test_at_most_thirty_suggestions_are_kept():
    items, dropped = parse_answer(str([{"product_id": str(n)} for n in range(40)]).replace("'", '"'))
    assert len(items) == MAX_SUGGESTIONS and len(dropped) == 10


@pytest.mark.parametrize(
    ("raw", "quantity"),
    [
        (0, 1),
        (-5, 1),
        (500, 99),
        (2.6, 3),
        ("4", 4),
        ("lots", 1),
        (True, 1),
        (None, 1),
        (float("nan"), 1),
        (float("inf"), 99),
    ],
)
def test_quantities_are_clamped_to_one_to_ninety_nine(raw, quantity):
    assert clamp_quantity(raw) == quantity


def test_search_arguments_are_bounded_and_junk_is_explained():
    args = parse_search_args('{"query": "  beef mince  ", "limit": 500}')
    assert (args.query, args.limit) == ("beef mince", 20)
    assert parse_search_args('{"query": "x", "limit": "many"}').limit == 8
    assert len(parse_search_args('{"query": "' + "y" * 500 + '"}').query) == 100
    for junk in ("{nope", "[]", '{"limit": 3}', '{"query": ""}'):
        with pytest.raises(ValueError):
            parse_search_args(junk)


def test_the_users_description_must_have_text():
    assert validate_request_text("  dinner for 4 ") == "dinner for 4"
    for bad in ("", "   ", "x" * 2001):
        with pytest.raises(InvalidArgument):
            validate_request_text(bad)
