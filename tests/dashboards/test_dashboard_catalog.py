"""The catalog page (AppTest): tree figures, product grid, product history."""

from __future__ import annotations

from catalog_ai.db import unit_of_work
from catalog_ai.services.review import accept, correct
from conftest import frame


def test_tree_counts_grid_and_history(catalog, open_app):
    with unit_of_work() as s:
        accept(s, catalog["q-red"], reviewer="bob")
        correct(s, catalog["q-green"], reviewer="alice", category_path="Fruit > Banana")
    at = open_app("catalog")
    tree = frame(at, "products", "acceptance rate", "accuracy").set_index("path")
    assert tree.loc["Fruit", "products"] == 8  # 6 imported + 2 reviewed
    assert tree.loc["Fruit > Apple", "products"] == 5
    assert tree.loc["Fruit > Banana", "products"] == 3
    assert tree.loc["Veg", "products"] == 2
    # Fruit: 4 suggestions (q-red, q-odd, q-banana, q-green), 2 decided, 1 accepted as
    # suggested; 2 reviewed, 1 exactly right.
    assert tuple(tree.loc["Fruit", ["classified", "decided", "acceptance rate", "reviewed", "accuracy"]]) == (
        4, 2, "50 %", 2, "50 %")
    assert tree.loc["Veg > Carrot", "acceptance rate"] == "–"  # nothing decided yet
    assert tree.loc["Fruit > Apple > Green", "category"].endswith("Green")

    at.selectbox(key="grid-category").set_value("Fruit > Banana").run()
    captions = [c.value for c in at.caption]
    assert any(c.startswith("3 products in Fruit > Banana") for c in captions)
    assert sum(" · Fruit > Banana" in c for c in captions) == 3

    at.button(key=f"grid-open-{catalog['q-green']}").click().run()
    assert at.number_input(key="product-id").value == catalog["q-green"]
    reviews = frame(at, "reviewer", "action")
    assert list(zip(reviews["reviewer"], reviews["action"], reviews["category"], strict=True)) == [
        ("alice", "correct", "Fruit > Banana")]
    suggestions = frame(at, "model version", "suggested")
    assert list(suggestions["suggested"]) == ["Fruit > Apple > Green"]
    assert any("status **accepted**" in m.value for m in at.markdown)

    at.number_input(key="product-id").set_value(99_999).run()
    assert any("does not exist" in e.value for e in at.error)
