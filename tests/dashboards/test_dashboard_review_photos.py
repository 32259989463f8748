"""The review card shows every photo of a product, in the shop's order (AppTest)."""

from __future__ import annotations

from catalog_builder import add_photos


def _images(at) -> int:
    """The image elements on the page (AppTest has no accessor for them)."""

    def count(node) -> int:
        own = int(getattr(node, "type", None) == "image")
        return own + sum(count(c) for c in getattr(node, "children", {}).values())

    return count(at._tree)


def test_the_card_shows_every_photo_of_a_multi_photo_product(catalog, open_app):
    at = open_app()
    assert at.subheader[0].value == "q-none"  # the first card
    alone = _images(at)
    assert alone == 1  # a one-photo product: its photo, no thumbnails
    assert not any("photos; the suggestion uses all of them" in c.value for c in at.caption)
    add_photos(catalog["q-none"], 2)
    at = open_app()
    assert at.subheader[0].value == "q-none"
    assert any(c.value == "3 photos; the suggestion uses all of them" for c in at.caption)
    assert _images(at) == alone + 2
