"""Alembic migrations on SQLite and PostgreSQL: up, down, up again; agreement with the models."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from catalog_ai.db import Base, get_engine, migrate, unit_of_work
from catalog_ai.errors import DatabaseError

REPO_ROOT = Path(__file__).resolve().parents[2]
TABLES = set(Base.metadata.tables)


def _tables(url: str) -> set[str]:
    engine = sa.create_engine(url)
    try:
        return set(sa.inspect(engine).get_table_names()) - {"alembic_version"}
    finally:
        engine.dispose()


def _up_down_up(url: str) -> None:
    assert migrate.current_revision(url) is None
    migrate.upgrade(url)
    assert migrate.current_revision(url) == migrate.head_revision()
    assert _tables(url) == TABLES
    migrate.check(url)

    migrate.downgrade(url)
    assert migrate.current_revision(url) is None
    assert _tables(url) == set()

    migrate.upgrade(url)
    assert migrate.current_revision(url) == migrate.head_revision()
    migrate.check(url)


def test_up_down_up_on_sqlite(tmp_path: Path) -> None:
    # The directory does not exist yet: upgrade must create it.
    _up_down_up(f"sqlite:///{tmp_path / 'new' / 'dir' / 'catalog.db'}")


@pytest.mark.integration
def test_up_down_up_on_postgresql(postgres_url: str) -> None:
    _up_down_up(postgres_url)


def _schema(engine: sa.Engine, schema: str | None = None) -> dict[str, Any]:
    """Everything about the tables that names or behaviour depend on, as plain comparable data."""
    inspector = sa.inspect(engine)
    out: dict[str, Any] = {}
    for table in sorted(set(inspector.get_table_names(schema=schema)) - {"alembic_version"}):
        out[table] = {
            "columns": [
                (c["name"], str(c["type"]), getattr(c["type"], "timezone", None), c["nullable"])
                for c in inspector.get_columns(table, schema=schema)
            ],
            "pk": inspector.get_pk_constraint(table, schema=schema)["name"],
            "fks": sorted(
                (
                    fk["name"],
                    tuple(fk["constrained_columns"]),
                    fk["referred_table"],
                    tuple(fk["referred_columns"]),
                    fk["options"].get("ondelete"),
                )
                for fk in inspector.get_foreign_keys(table, schema=schema)
            ),
            "uniques": sorted(
                (u["name"], tuple(u["column_names"]))
                for u in inspector.get_unique_constraints(table, schema=schema)
            ),
            "indexes": sorted(
                (
                    i["name"],
                    tuple(i["column_names"]),
                    bool(i["unique"]),
                    str(i.get("dialect_options", {}).get(f"{engine.dialect.name}_where")),
                )
                for i in inspector.get_indexes(table, schema=schema)
                # PostgreSQL-only indexes of the migrations (checked on their own below).
                if i["name"] not in migrate.DATABASE_ONLY_INDEXES
            ),
            "checks": sorted(
                (c["name"], c["sqltext"])
                for c in inspector.get_check_constraints(table, schema=schema)
            ),
        }
    return out


def _same_schema_as_create_all(
    migrated_url: str, models_engine: sa.Engine, schema: str | None
) -> None:
    migrate.upgrade(migrated_url)
    Base.metadata.create_all(models_engine)
    migrated_engine = sa.create_engine(migrated_url)
    try:
        migrated = _schema(migrated_engine)
    finally:
        migrated_engine.dispose()
    from_models = _schema(models_engine, schema)
    assert set(migrated) == TABLES
    for table in sorted(TABLES):
        assert migrated[table] == from_models[table], table
    # The constraints the application relies on are really there, under their stable names.
    assert [c[0] for c in migrated["products"]["checks"]] == [
        "ck_products_label_source",
        "ck_products_product_status",
    ]
    one_active = {i[0]: i[2:] for i in migrated["model_versions"]["indexes"]}
    assert one_active["uq_model_versions_one_active"] == (True, "is_active")


def test_migration_builds_what_the_models_declare_on_sqlite(tmp_path: Path) -> None:
    models_engine = sa.create_engine(f"sqlite:///{tmp_path / 'models.db'}")
    try:
        _same_schema_as_create_all(f"sqlite:///{tmp_path / 'migrated.db'}", models_engine, None)
    finally:
        models_engine.dispose()


@pytest.mark.integration
def test_migration_builds_what_the_models_declare_on_postgresql(postgres_url: str) -> None:
    # The models' copy goes into a second schema of the same fresh database.
    admin = sa.create_engine(postgres_url)
    with admin.begin() as connection:
        connection.execute(sa.text("CREATE SCHEMA from_models"))
    models_engine = admin.execution_options(schema_translate_map={None: "from_models"})
    try:
        _same_schema_as_create_all(postgres_url, models_engine, "from_models")
        # pg_trgm is installed here: text search's trigram index was made (migration 0008).
        names = {i["name"] for i in sa.inspect(admin).get_indexes("products")}
        assert migrate.DATABASE_ONLY_INDEXES <= names
    finally:
        admin.dispose()


def test_check_notices_a_schema_that_drifted_from_the_models(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'catalog.db'}"
    migrate.upgrade(url)
    engine = sa.create_engine(url)
    with engine.begin() as connection:
        connection.execute(sa.text("DROP INDEX ix_suggestions_confidence"))
        connection.execute(sa.text("ALTER TABLE products ADD COLUMN colour VARCHAR(20)"))
    engine.dispose()
    with pytest.raises(DatabaseError) as caught:
        migrate.check(url)
    assert "ix_suggestions_confidence" in str(caught.value)
    assert "colour" in str(caught.value)


def test_a_missing_migrations_folder_is_explained(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(migrate, "MIGRATIONS_DIR", tmp_path / "migrations")
    with pytest.raises(DatabaseError, match="editable"):
        migrate.upgrade(f"sqlite:///{tmp_path / 'catalog.db'}")


def test_unknown_target_revision_raises_database_error(tmp_path: Path) -> None:
    with pytest.raises(DatabaseError, match="nosuchrev"):
        migrate.upgrade(f"sqlite:///{tmp_path / 'catalog.db'}", revision="nosuchrev")


def test_the_alembic_command_line_uses_catalog_ai_database_url(tmp_path: Path) -> None:
    database = tmp_path / "cli" / "catalog.db"
    env = {**os.environ, "CATALOG_AI_DATABASE_URL": f"sqlite:///{database}"}
    done = subprocess.run(
        [sys.executable, "-m", "alembic", "-c", str(REPO_ROOT / "alembic.ini"), "upgrade", "head"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert migrate.current_revision(f"sqlite:///{database}") == migrate.head_revision()


def _provenance_round_trip(url: str) -> None:
    """0003_provenance renames the stored 'auto' (a model's label) to 'model' and back, leaves
    people's labels alone, and refuses a value it cannot place before changing anything."""
    from alembic.script import ScriptDirectory

    script = ScriptDirectory.from_config(migrate._config(url))
    parent = script.get_revision("0003_provenance").down_revision
    migrate.upgrade(url, revision=parent)
    engine = sa.create_engine(url)
    sources = [None, "import", "auto", "review", "fewshot"]

    def stored() -> list:
        with engine.connect() as connection:
            return list(
                connection.execute(
                    sa.text("SELECT label_source FROM products ORDER BY id")
                ).scalars()
            )

    try:
        with engine.begin() as connection:
            for i, source in enumerate(sources):
                connection.execute(
                    sa.text(
                        "INSERT INTO products (title, status, label_source) "
                        "VALUES (:t, 'accepted', :s)"
                    ),
                    {"t": f"p{i}", "s": source},
                )
        migrate.upgrade(url, revision="0003_provenance")
        assert stored() == [None, "import", "model", "review", "fewshot"]
        # The CHECK keeps the old spelling out.
        with pytest.raises(sa.exc.IntegrityError), engine.begin() as connection:
            connection.execute(sa.text("UPDATE products SET label_source = 'auto'"))
        migrate.downgrade(url, revision=parent)
        assert stored() == sources

        with engine.begin() as connection:
            connection.execute(sa.text("UPDATE products SET label_source = 'guess' WHERE id = 1"))
        with pytest.raises(DatabaseError, match=r"'guess' \(1 products\).*then migrate again"):
            migrate.upgrade(url, revision="0003_provenance")
        assert migrate.current_revision(url) == parent
        assert stored() == ["guess", *sources[1:]]  # nothing was renamed
    finally:
        engine.dispose()


def test_provenance_migration_converts_rows_on_sqlite(tmp_path: Path) -> None:
    _provenance_round_trip(f"sqlite:///{tmp_path / 'catalog.db'}")


@pytest.mark.integration
def test_provenance_migration_converts_rows_on_postgresql(postgres_url: str) -> None:
    _provenance_round_trip(postgres_url)


def _reviews_become_revisions(url: str) -> None:
    """Reviews recorded before 0003 taught the memory through product labels: the upgrade turns
    them into the first memory revisions of each version that embedded the photo."""
    migrate.upgrade(url, "0002_duplicates")
    engine = sa.create_engine(url)
    vector = bytes(range(16))
    with engine.begin() as conn:
        run = lambda sql: conn.execute(sa.text(sql))  # noqa: E731
        run("INSERT INTO taxonomy_versions (id, source, fingerprint) VALUES (1, 't', 'f')")
        for cid, path in [(1, "Fruit"), (2, "Veg")]:
            run(
                f"INSERT INTO categories (id, path, name, depth, source, taxonomy_version) "
                f"VALUES ({cid}, '{path}', '{path}', 0, 'import', 1)"
            )
        run(
            "INSERT INTO model_versions (id, version, backbone, bundle_path, metrics, "
            "taxonomy_fingerprint) VALUES (1, 'm1', 'tiny', '/m1', '{}', 'f')"
        )
        for pid, status, source, cat in [
            (1, "accepted", "review", 2),
            (2, "accepted", "auto", 1),
            (3, "accepted", "review", 1),
            (4, "suggested", None, None),
        ]:
            run(
                f"INSERT INTO products (id, status, label_source, category_id) VALUES "
                f"({pid}, '{status}', {repr(source) if source else 'NULL'}, {cat or 'NULL'})"
            )
            run(
                "INSERT INTO product_images (id, product_id, content_hash, stored_path, width, "
                "height, size_bytes, format) "
                f"VALUES ({pid}, {pid}, 'h{pid}', 'p{pid}', 1, 1, 1, 'png')"
            )
            conn.execute(
                sa.text(
                    "INSERT INTO embeddings (image_id, model_version_id, dim, vector) "
                    "VALUES (:i, 1, 4, :v)"
                ),
                {"i": pid, "v": vector},
            )
        run(
            "INSERT INTO reviews (id, product_id, reviewer, action, category_id) "
            "VALUES (7, 3, 'ann', 'correct', 1)"
        )
    migrate.upgrade(url)
    with engine.connect() as conn:
        rows = conn.execute(
            sa.text(
                "SELECT model_version_id, revision, path, category_id, review_id, dim, vector "
                "FROM prototype_revisions ORDER BY revision"
            )
        ).all()
    engine.dispose()
    assert [tuple(r[:6]) for r in rows] == [(1, 1, "Veg", 2, None, 4), (1, 2, "Fruit", 1, 7, 4)]
    assert all(bytes(r[6]) == vector for r in rows)


def test_reviews_before_the_upgrade_become_memory_revisions_on_sqlite(tmp_path: Path) -> None:
    _reviews_become_revisions(f"sqlite:///{tmp_path / 'catalog.db'}")


@pytest.mark.integration
def test_reviews_before_the_upgrade_become_memory_revisions_on_postgresql(
    postgres_url: str,
) -> None:
    _reviews_become_revisions(postgres_url)


def test_ensure_schema_current_on_an_empty_database(empty_db_url: str) -> None:
    engine = get_engine(empty_db_url)
    with pytest.raises(DatabaseError, match="run `catalog-ai db upgrade`") as caught:
        migrate.ensure_schema_current(engine)
    assert migrate.head_revision() in str(caught.value)
    migrate.upgrade(empty_db_url)
    migrate.ensure_schema_current(engine)  # now it is


def test_ensure_schema_current_on_a_database_from_newer_code(sqlite_url: str) -> None:
    with unit_of_work(sqlite_url) as session:
        session.execute(sa.text("UPDATE alembic_version SET version_num = '9999_future'"))
    with pytest.raises(DatabaseError, match=r"9999_future.*upgrade catalog_ai"):
        migrate.ensure_schema_current(get_engine(sqlite_url))


def test_ensure_schema_current_reports_an_unreachable_server() -> None:
    engine = get_engine("postgresql+psycopg://nobody:pw@127.0.0.1:9/catalog?connect_timeout=2")
    with pytest.raises(DatabaseError, match="cannot connect") as caught:
        migrate.ensure_schema_current(engine)
    assert ":pw@" not in str(caught.value)
