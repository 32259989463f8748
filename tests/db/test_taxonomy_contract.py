"""One taxonomy contract on every database (issue 13, finding 8 and deliverable 6).

Each hostile taxonomy file is imported through ``load_taxonomy`` + ``sync_taxonomy`` into a
migrated SQLite file and into the real PostgreSQL server. SQLite enforces no VARCHAR length and
stores NUL bytes, PostgreSQL refuses both with a raw ``DataError``: the parser must refuse them
first, with the same ``TaxonomyError`` (file and line) on both, and write nothing.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import sqlalchemy as sa

from catalog_ai.db import Category, TaxonomyVersion, unit_of_work
from catalog_ai.db.models.category import Category as CategoryModel
from catalog_ai.errors import TaxonomyError
from catalog_ai.services.catalog_import import sync_taxonomy
from catalog_ai.taxonomy import (
    MAX_ID_CHARS,
    MAX_NAME_CHARS,
    MAX_PATH_CHARS,
    load_taxonomy,
)

# name -> (file name, text, expected message part or None for "imports fine")
HOSTILE: dict[str, tuple[str, str, str | None]] = {
    "long name": (
        "long_name.txt",
        "Fruit\nFruit > " + "a" * 256 + "\n",
        "256 characters long; the catalog stores at most 255",
    ),
    "long path": (
        "long_path.txt",
        " > ".join(["n" * 200] * 6) + "\n",
        "characters long; the catalog stores at most 1024",
    ),
    "long google id": (
        "long_id.txt",
        "1 - Fruit\n" + "9" * 65 + " - Fruit > Apple\n",
        "65 characters long; the catalog stores at most 64",
    ),
    "long csv id": (
        "long_id.csv",
        "id,path\nx,Fruit\n" + "y" * 65 + ",Fruit > Pear\n",
        "65 characters long; the catalog stores at most 64",
    ),
    "nul in name": ("nul.txt", "Fruit\nFruit > Ap\x00ple\n", "control character U+0000"),
    "nul in csv id": ("nul_id.csv", "id,path\nx\x00y,Fruit\n", "control character U+0000"),
    "esc in name": ("esc.txt", "Fruit > \x1b[31mRed\n", "control character U+001B"),
    "bel in name": ("bel.csv", "id,parent_id,name\n1,,Fru\x07it\n", "control character U+0007"),
    "rtl override": ("rtl.txt", "Fruit > \u202eelppA\n", "control character U+202E"),
    "c1 control": ("c1.txt", "Fruit > A\x9bpple\n", "control character U+009B"),
    "same id two paths": ("dup_id.txt", "1 - Fruit\n1 - Vegetables\n", "duplicate id '1'"),
    # Accepted, but cleaned: one canonical text per category on every database.
    "spaces and nfd": ("clean.txt", "Fruit\u00a0 >  Cafe\u0301   au\tlait \n", None),
}

_CLEAN_PATHS = {"Fruit", "Fruit > Caf\u00e9 au lait"}


def _outcome(url: str, file: Path) -> tuple[str, str | None, int | None, list[str]]:
    """Import ``file`` into ``url``: ("ok"|"error", message, line, stored paths)."""
    status, message, line = "ok", None, None
    try:
        tree = load_taxonomy(file)
        with unit_of_work(url) as session:
            sync_taxonomy(session, tree, source=f"import:{file}")
    except TaxonomyError as exc:
        status, message, line = "error", str(exc), exc.line
    with unit_of_work(url) as session:
        paths = sorted(session.scalars(sa.select(Category.path)))
        # The next file starts from an empty catalog; children first (parent links RESTRICT).
        depth = session.scalar(sa.select(sa.func.max(Category.depth))) or 0
        for level in range(depth, -1, -1):
            session.execute(sa.delete(Category).where(Category.depth == level))
        session.execute(sa.delete(TaxonomyVersion))
    return status, message, line, paths


@pytest.mark.parametrize("case", list(HOSTILE))
def test_hostile_taxonomy_file_is_one_taxonomy_error_before_any_write(
    db_url: str, tmp_path: Path, case: str
) -> None:
    name, text, expected = HOSTILE[case]
    file = tmp_path / name
    file.write_text(text, encoding="utf-8")
    status, message, line, paths = _outcome(db_url, file)
    if expected is None:
        assert (status, paths) == ("ok", sorted(_CLEAN_PATHS))
        return
    assert status == "error", paths
    assert message.startswith(f"{file}:{line}: "), message
    assert expected in message
    assert message.isprintable(), message  # control characters are quoted escaped, never raw
    assert paths == []  # validated before anything is written


@pytest.mark.integration
def test_sqlite_and_postgresql_give_identical_outcomes(
    sqlite_url: str, migrated_postgres_url: str, tmp_path: Path
) -> None:
    files = []
    for name, text, _ in HOSTILE.values():
        files.append(tmp_path / name)
        files[-1].write_text(text, encoding="utf-8")
    on_sqlite = [_outcome(sqlite_url, f) for f in files]
    on_postgres = [_outcome(migrated_postgres_url, f) for f in files]
    assert on_sqlite == on_postgres


def test_external_id_of_another_path_in_the_catalog_is_a_taxonomy_error(
    db_url: str, tmp_path: Path
) -> None:
    """Was a raw IntegrityError on the external_id unique index."""
    first = tmp_path / "first.txt"
    first.write_text("1 - Fruit\n2 - Fruit > Apple\n", encoding="utf-8")
    second = tmp_path / "second.txt"
    second.write_text("1 - Fruit\n3 - Vegetables\n2 - Vegetables > Leek\n", encoding="utf-8")
    with unit_of_work(db_url) as session:
        sync_taxonomy(session, load_taxonomy(first), source=f"import:{first}")
    with pytest.raises(TaxonomyError) as info, unit_of_work(db_url) as session:
        sync_taxonomy(session, load_taxonomy(second), source=f"import:{second}")
    message = str(info.value)
    assert message.startswith(f"{second}:3: "), message
    assert "'Vegetables > Leek'" in message and "'Fruit > Apple'" in message
    with unit_of_work(db_url) as session:  # Vegetables (line 2) was not written either
        assert sorted(session.scalars(sa.select(Category.path))) == ["Fruit", "Fruit > Apple"]


def test_limits_are_the_column_lengths() -> None:
    columns = CategoryModel.__table__.c
    assert columns.name.type.length == MAX_NAME_CHARS
    assert columns.path.type.length == MAX_PATH_CHARS
    assert columns.external_id.type.length == MAX_ID_CHARS


def test_hand_built_tree_is_checked_before_any_write(db_url: str) -> None:
    """``Taxonomy(nodes)`` skips the parsers; sync_taxonomy still refuses what cannot be stored."""
    from catalog_ai.taxonomy import Node, Taxonomy

    tree = Taxonomy(
        [
            Node("Fruit", "Fruit", ("Fruit",), None, 1),
            Node("x" * 65, "Ap\x00ple", ("Fruit", "Ap\x00ple"), "Fruit", 2),
        ]
    )
    with pytest.raises(TaxonomyError, match=r"U\+0000"), unit_of_work(db_url) as session:
        sync_taxonomy(session, tree, source="import:hand")
    with unit_of_work(db_url) as session:
        assert session.scalar(sa.select(sa.func.count()).select_from(Category)) == 0
