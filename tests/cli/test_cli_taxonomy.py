"""``catalog-ai taxonomy`` with hostile files: nothing from a file reaches the terminal raw."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from catalog_ai.cli import cli


@pytest.fixture
def run(catalog_home):
    def invoke(*args: str):
        return CliRunner().invoke(cli, list(args), catch_exceptions=False)

    return invoke


def test_import_refuses_control_characters_and_quotes_them_escaped(run, tmp_path: Path) -> None:
    bad = tmp_path / "tree\x1b[2J.txt"  # the file name too
    bad.write_text("Fruit\nFruit > \x1b[31mRed\x07 \u202eelppA\n", encoding="utf-8")
    result = CliRunner().invoke(cli, ["taxonomy", "import", str(bad)])
    assert result.exit_code == 2
    assert "\x1b" not in result.output and "\x07" not in result.output
    assert "\u202e" not in result.output
    assert "tree\\x1b[2J.txt:2: " in result.output and "U+001B" in result.output
    assert len(result.output.strip().splitlines()) == 1
    assert run("taxonomy", "show").output == ""  # nothing was written


def test_import_cleans_spacing_and_unicode_form(run, tmp_path: Path) -> None:
    tree = tmp_path / "tree.txt"
    tree.write_text("Drinks\u00a0 >  Cafe\u0301   au\tlait \n", encoding="utf-8")
    assert run("taxonomy", "import", str(tree)).exit_code == 0
    assert run("taxonomy", "show").output.splitlines() == ["Drinks", "  Caf\u00e9 au lait"]


def test_show_escapes_names_stored_before_the_contract(run, tmp_path: Path) -> None:
    """A catalog that already holds a raw ESC (imported by an older version) prints it escaped,
    and still takes new categories (its tree loads without re-parsing the stored names)."""
    from catalog_ai.db import Category, TaxonomyVersion, unit_of_work

    run("db", "upgrade")
    with unit_of_work() as session:
        session.add(TaxonomyVersion(id=1, source="import:old", note="", n_categories=2,
                                    fingerprint=""))
        session.flush()
        fruit = Category(path="Fruit", name="Fruit", depth=1, source="import",
                         taxonomy_version=1)
        session.add(fruit)
        session.add(Category(path="Fruit > \x1b[31mRed  Apple", name="\x1b[31mRed  Apple",
                             parent=fruit, depth=2, source="import", taxonomy_version=1))
    shown = run("taxonomy", "show").output
    assert "\x1b" not in shown and "\\x1b[31mRed  Apple" in shown
    tree = tmp_path / "more.txt"
    tree.write_text("Fruit > Pear\n", encoding="utf-8")
    result = run("taxonomy", "import", str(tree))
    assert result.exit_code == 0 and "1 added" in result.output


def test_the_import_command_offers_every_taxonomy_format() -> None:
    from catalog_ai.cli.taxonomy import taxonomy_import
    from catalog_ai.taxonomy import FORMATS

    (fmt,) = [p for p in taxonomy_import.params if p.name == "fmt"]
    assert tuple(fmt.type.choices) == FORMATS
