"""The category tree the API lists: every category in tree order, with its id, the id its own
tree gave it (Google's here) and its branch's figures."""

from __future__ import annotations

from catalog_ai.db import dispose_engines, migrate, unit_of_work
from catalog_ai.services.catalog_import import sync_taxonomy
from catalog_ai.services.category_tree import category_tree
from catalog_ai.taxonomy.formats import parse_google

GOOGLE = """\
# Google_Product_Taxonomy_Version: 2021-09-21
1 - Animals & Pet Supplies
3237 - Animals & Pet Supplies > Live Animals
412 - Food, Beverages & Tobacco
"""


def test_categories_come_in_tree_order_with_their_external_ids(catalog_home):
    migrate.upgrade()
    try:
        with unit_of_work() as session:
            sync_taxonomy(session, parse_google(GOOGLE), source="import:google")
        with unit_of_work() as session:
            nodes = category_tree(session)
        assert [(n.stats.path, n.external_id) for n in nodes] == [
            ("Animals & Pet Supplies", "1"),
            ("Animals & Pet Supplies > Live Animals", "3237"),
            ("Food, Beverages & Tobacco", "412"),
        ]
        assert len({n.id for n in nodes}) == 3
        assert [n.stats.products for n in nodes] == [0, 0, 0]
    finally:
        dispose_engines()
