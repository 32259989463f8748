"""Text search: every word in the title or the category path, `%` and `_` taken literally."""

from __future__ import annotations

import pytest

from catalog_ai.db import (
    unit_of_work,
)
from catalog_ai.index import SearchError
from catalog_ai.services.text_search import text_search


def test_text_search_matches_every_word_in_title_or_category(search_catalog):
    with unit_of_work() as session:

        def titles(text: str, **kw) -> list[str]:
            return [h.title for h in text_search(session, text, **kw)]

        assert set(titles("JUICE")) == {
            "Tropicana Orange Juice 1L",
            "God Morgon orange juice",
            "Bravo apple juice 100%",
        }
        assert set(titles("orange juice")) == {
            "Tropicana Orange Juice 1L",
            "God Morgon orange juice",
        }
        # "apple": two titles say so; the fruits only through their category "Fruit > Apple".
        apple = titles("apple")
        assert apple[0] == "Bravo apple juice 100%" and set(apple[1:]) == {
            "Granny Smith",
            "Pink Lady",
        }
        hits = text_search(session, "apple")
        assert hits[0].score == 1.0 and hits[1].score == 0.0
        assert titles("milk packages") == ["Arla standard milk"]
        assert titles("100%") == ["Bravo apple juice 100%"]
        assert titles("e_c") == ["Cheese_cake"]  # LIKE wildcards in the words are literal
        assert len(titles("juice", limit=2)) == 2
        with pytest.raises(SearchError, match="no words"):
            text_search(session, " -- ")


def test_the_ranking_is_over_the_newest_matches_only(search_catalog, monkeypatch):
    # "apple" matches three products: the title one is the oldest of them. Ranked over every
    # match it comes first; over the two newest only, the category matches are all there is.
    with unit_of_work() as session:
        best_two = [h.title for h in text_search(session, "apple", limit=2)]
        monkeypatch.setattr("catalog_ai.services.text_search.CANDIDATES", 2)
        newest_two = [h.title for h in text_search(session, "apple", limit=2)]
    assert best_two[0] == "Bravo apple juice 100%"
    assert set(newest_two) == {"Granny Smith", "Pink Lady"}
