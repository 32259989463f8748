"""User data (titles, category names, reviewer names) is shown as text, never as Markdown."""

from __future__ import annotations

from catalog_ai.db import Product, unit_of_work
from dashboards.markup import plain

HOSTILE = "![x](http://127.0.0.1:9/p.png) <img src=http://127.0.0.1:9/q.png> **bold** :red[red] $x^2$"


def _retitle(pid: int, title: str) -> None:
    with unit_of_work() as s:
        s.get(Product, pid).title = title


def _rendered(at) -> list[str]:
    """Every value the app gave to a widget that renders Markdown."""
    kinds = ("markdown", "caption", "subheader", "title", "header", "success", "error", "warning", "info")
    return [e.value for kind in kinds for e in getattr(at, kind)]


def test_plain_escapes_every_markup_and_keeps_ordinary_text():
    assert plain("![x](http://h/p.png)") == "!\\[x\\](http\\://h/p.png)"
    assert plain("<img src=x>") == "\\<img src=x>"
    assert plain("# big") == "\\# big" and plain("1. one") == "1\\. one" and plain("> quote") == "\\> quote"
    assert plain("a\nb\x1b") == "a b " and plain("evil\u202eexe") == "evil\ufffdexe"
    for ordinary in ("q-red", "Fruit > Apple > Red", "Accepted 'q-red' as Fruit > Banana.", "#12 x", "5 %"):
        assert plain(ordinary) == ordinary


def test_a_markdown_title_is_shown_as_text_on_every_page(catalog, open_app):
    _retitle(catalog["q-none"], HOSTILE)  # the least confident: the first card
    at = open_app("review")
    assert at.subheader[0].value == plain(HOSTILE)
    at.button(key=f"reject-{catalog['q-none']}").click().run()  # the message quotes the title
    assert any(plain(f"Rejected {HOSTILE!r}.") == s.value for s in at.success)
    at.switch_page("views/catalog.py").run()
    at.number_input(key="product-id").set_value(catalog["q-none"]).run()
    assert any(plain(HOSTILE) in m.value for m in at.markdown)
    for page in ("review", "catalog", "upload", "health"):
        at.switch_page(f"views/{page}.py").run()
        assert not at.exception, [e.value for e in at.exception]
        leaked = [v for v in _rendered(at) if "![x](" in v or "<img" in v or "**bold**" in v]
        assert not leaked, (page, leaked)


def test_plain_leaves_no_markup_character_unescaped():
    import re

    from hypothesis import given
    from hypothesis import strategies as st

    @given(st.text(alphabet=st.sampled_from(list("ab :/![]()<>`*_$~|&#\\-+1.\n\x1b")), max_size=40))
    def check(text):
        out = plain(text)
        assert "\n" not in out and "\x1b" not in out
        # every markup character is preceded by an odd number of backslashes
        for m in re.finditer(r"[\[\]<`*_$~|&]", out):
            run = len(out[: m.start()]) - len(out[: m.start()].rstrip("\\"))
            assert run % 2 == 1, (text, out)
        assert not re.match(r"\s*(#+\s|[-+>]\s|\d+[.)]\s)", out)  # no block marker at the start

    check()
