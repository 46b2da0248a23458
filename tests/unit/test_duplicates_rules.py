"""The pure parts of duplicate detection: name and company normalisation, name similarity."""

from __future__ import annotations

import pytest

from crm_core.services.duplicates import (
    NAME_SIMILARITY,
    name_similarity,
    normalize_company,
    normalize_name,
)


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("Ada Lovelace", "ada lovelace"),
        ("  ADA   lovelace\t", "ada lovelace"),
        ("Lovelace, Ada", "lovelace ada"),
        ("O'Brien-Smith, Pat.", "o brien smith pat"),
        ("José Núñez", "josé núñez"),
        ("", ""),
        (None, ""),
        ("---", ""),
    ],
)
def test_normalize_name(raw: str | None, expected: str) -> None:
    assert normalize_name(raw) == expected


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("Acme", "acme"),
        ("ACME", "acme"),
        ("Acme Inc", "acme"),
        ("Acme, Inc.", "acme"),
        ("acme inc.", "acme"),
        ("Acme Ltd", "acme"),
        ("Acme LLC", "acme"),
        ("Acme GmbH", "acme"),
        ("Acme S.A.S.", "acme s a s"),  # dotted initials are not the word "sas"
        ("Acme SAS", "acme"),
        ("Acme Corp.", "acme"),
        ("Acme & Co.", "acme"),
        ("Acme Co. Ltd", "acme"),  # stacked legal forms
        ("Acme Holdings PLC", "acme holdings"),
        ("Société Générale SA", "société générale"),
        # A legal-form word that is part of the name itself stays.
        ("AG Barr", "ag barr"),
        ("Co-operative Bank", "co operative bank"),
        ("Inc", "inc"),
        ("Acme Incorporated", "acme incorporated"),
        ("", ""),
        (None, ""),
    ],
)
def test_normalize_company(raw: str | None, expected: str) -> None:
    assert normalize_company(raw) == expected


def test_company_suffix_variants_compare_equal() -> None:
    variants = ["Acme Inc", "ACME", "Acme, Inc.", "acme ltd", "Acme Corp"]
    assert {normalize_company(v) for v in variants} == {"acme"}
    assert normalize_company("Acme Inc") != normalize_company("Acme Widgets Inc")


@pytest.mark.parametrize(
    ("a", "b"),
    [
        ("Ada Lovelace", "Ada Lovelace"),
        ("Ada Lovelace", "ADA LOVELACE"),
        ("Ada Lovelace", "Lovelace, Ada"),
        ("Ada  Lovelace.", "ada lovelace"),
    ],
)
def test_same_words_score_one(a: str, b: str) -> None:
    assert name_similarity(a, b) == 1.0


def test_a_typo_is_similar_enough() -> None:
    score = name_similarity("John Smith", "Jon Smith")
    assert NAME_SIMILARITY <= score < 1.0


@pytest.mark.parametrize(
    ("a", "b"),
    [
        ("John Smith", "Jane Doe"),
        ("Ada Lovelace", "Ada Byron"),
        ("John Smith", "John Smithers-Jones"),
    ],
)
def test_different_names_are_below_the_threshold(a: str, b: str) -> None:
    assert name_similarity(a, b) < NAME_SIMILARITY


@pytest.mark.parametrize(("a", "b"), [("", "Ada"), ("Ada", ""), ("", ""), ("...", "Ada"), ("!!", "??")])
def test_empty_names_are_never_similar(a: str, b: str) -> None:
    assert name_similarity(a, b) == 0.0


def test_similarity_is_symmetric() -> None:
    pairs = [("John Smith", "Jon Smith"), ("Ada Lovelace", "Ada Byron"), ("Grace Hopper", "Grace M. Hopper")]
    for a, b in pairs:
        assert name_similarity(a, b) == pytest.approx(name_similarity(b, a))
