"""Migration 0009_audits: up, down to 0008_scale, up again, on SQLite and PostgreSQL; rows of
the new tables go and come back with their constraints."""

from __future__ import annotations

from pathlib import Path

import pytest
import sqlalchemy as sa

from catalog_ai.db import migrate

NEW = {"audits", "audit_tallies", "promotion_decisions"}


def _tables(url: str) -> set[str]:
    engine = sa.create_engine(url)
    try:
        return set(sa.inspect(engine).get_table_names())
    finally:
        engine.dispose()


def _up_down_up(url: str) -> None:
    migrate.upgrade(url)
    assert _tables(url) >= NEW
    migrate.downgrade(url, "0008_scale")
    assert migrate.current_revision(url) == "0008_scale"
    assert not NEW & _tables(url)
    migrate.upgrade(url)
    assert migrate.current_revision(url) == migrate.head_revision()
    assert _tables(url) >= NEW
    migrate.check(url)
    engine = sa.create_engine(url)
    try:
        with engine.begin() as c:
            c.execute(
                sa.text(
                    "INSERT INTO model_versions (version, backbone, bundle_path, metrics, "
                    "taxonomy_fingerprint, is_active) VALUES ('m', 'b', '/m', '{}', 'f', false)"
                )
            )
            mv = c.execute(sa.text("SELECT id FROM model_versions")).scalar_one()
            c.execute(
                sa.text("INSERT INTO audit_tallies (model_version_id) VALUES (:m)"), {"m": mv}
            )
            assert c.execute(sa.text("SELECT auto_accepted, audited FROM audit_tallies")).one() == (
                0,
                0,
            )
        with pytest.raises(sa.exc.IntegrityError), engine.begin() as c:
            c.execute(sa.text("INSERT INTO products (title, status) VALUES ('p', 'accepted')"))
            pid = c.execute(sa.text("SELECT max(id) FROM products")).scalar_one()
            c.execute(
                sa.text(
                    "INSERT INTO audits (product_id, model_version_id, rate, verdict) "
                    "VALUES (:p, :m, 0.03, 'maybe')"
                ),
                {"p": pid, "m": mv},
            )
    finally:
        engine.dispose()


def test_0009_up_down_up_on_sqlite(tmp_path: Path) -> None:
    _up_down_up(f"sqlite:///{tmp_path / 'catalog.db'}")


@pytest.mark.integration
def test_0009_up_down_up_on_postgresql(postgres_url: str) -> None:
    _up_down_up(postgres_url)
