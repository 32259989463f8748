"""A large catalogue: a product's current suggestion, the review queue's index, photo and path
indexes, exact status counts kept by triggers, the catalogue tree's summary, trigram search.

Measured on a 1M-product PostgreSQL catalogue (docs/BENCHMARKS.md, issue 16): without these,
the review queue, its count and the tree's figures aggregate the whole suggestions and photos
tables on every read (5-13 s at 1M products).

- ``products.suggestion_id`` and a copy of what the review queue orders and filters by
  (``suggestion_confidence``, ``_path``, ``_source``, ``_open_set``, ``_model_version_id``): the
  newest suggestion, filled here from the existing rows and kept by a trigger on
  ``suggestions`` inserts. Partial indexes over the waiting products (``WHERE status =
  'suggested'``): ``(suggestion_confidence, id, suggestion_path)`` is the queue's order (a
  common branch is a walk down it that reads the index alone), and one per filter
  (source, model version, open set: the same order after an equality; path: the branch's
  range) give each filtered page without reading the rest of the queue.
- ``products (status, id)``: a page of one status in id order (the API's keyset pages).
- ``product_images (product_id, id)`` replaces the index on ``product_id`` alone: a product's
  first photo is the front of it.
- ``product_status_counts`` + ``product_status_deltas``: triggers on ``products`` insert a delta
  per change (statement-level with transition tables on PostgreSQL, one bulk statement = one
  delta row per status; row-level on SQLite). **A later migration that rebuilds ``products``
  or ``suggestions`` on SQLite (``batch_alter_table`` copies the table) drops its triggers:
  call :func:`create_status_triggers` / :func:`create_current_suggestion_trigger` again.**
- ``branch_figures`` + ``summary_refreshes``: the tree's figures, refreshed by a task.
- PostgreSQL only, when the ``pg_trgm`` extension can be created: a trigram GIN index on
  ``products.title`` for text search's ``ILIKE '%word%'`` (without the extension, search still
  works, by a scan). It is not in the models (SQLite has no such index); ``catalog_ai.db.
  migrate.compare_options`` leaves it out of the schema check.

Revision ID: 0008_scale
Revises: 0007_shop
Create Date: 2026-12-01
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0008_scale"
down_revision: str | None = "0007_shop"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TRIGRAM_INDEX = "ix_products_title_trgm"


def _json() -> sa.types.TypeEngine:
    return sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql")


_PG_FUNCTION = """
CREATE OR REPLACE FUNCTION catalog_ai_count_product_status() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'INSERT' THEN
        INSERT INTO product_status_deltas (status, delta)
        SELECT status, count(*) FROM new_rows GROUP BY status;
    ELSIF TG_OP = 'DELETE' THEN
        INSERT INTO product_status_deltas (status, delta)
        SELECT status, -count(*) FROM old_rows GROUP BY status;
    ELSE
        INSERT INTO product_status_deltas (status, delta)
        SELECT status, sum(d) FROM (
            SELECT status, -1 AS d FROM old_rows
            UNION ALL
            SELECT status, 1 AS d FROM new_rows
        ) AS changes
        GROUP BY status HAVING sum(d) <> 0;
    END IF;
    RETURN NULL;
END
$$
"""

_PG_TRIGGERS = (
    "CREATE TRIGGER products_count_insert AFTER INSERT ON products "
    "REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT "
    "EXECUTE FUNCTION catalog_ai_count_product_status()",
    "CREATE TRIGGER products_count_update AFTER UPDATE ON products "
    "REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows FOR EACH STATEMENT "
    "EXECUTE FUNCTION catalog_ai_count_product_status()",
    "CREATE TRIGGER products_count_delete AFTER DELETE ON products "
    "REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT "
    "EXECUTE FUNCTION catalog_ai_count_product_status()",
)

_SQLITE_TRIGGERS = (
    "CREATE TRIGGER products_count_insert AFTER INSERT ON products BEGIN "
    "INSERT INTO product_status_deltas (status, delta) VALUES (NEW.status, 1); END",
    "CREATE TRIGGER products_count_update AFTER UPDATE OF status ON products "
    "WHEN OLD.status IS NOT NEW.status BEGIN "
    "INSERT INTO product_status_deltas (status, delta) VALUES (OLD.status, -1); "
    "INSERT INTO product_status_deltas (status, delta) VALUES (NEW.status, 1); END",
    "CREATE TRIGGER products_count_delete AFTER DELETE ON products BEGIN "
    "INSERT INTO product_status_deltas (status, delta) VALUES (OLD.status, -1); END",
)

_TRIGGER_NAMES = ("products_count_insert", "products_count_update", "products_count_delete")

# The newest suggestion becomes its product's current one, whoever inserts it (the worker, an
# import, a bulk seed); never an older one over a newer.
_PG_CURRENT_FUNCTION = """
CREATE OR REPLACE FUNCTION catalog_ai_current_suggestion() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    UPDATE products AS p
    SET suggestion_id = n.id, suggestion_confidence = n.confidence,
        suggestion_path = n.path, suggestion_source = n.source,
        suggestion_open_set = n.open_set, suggestion_model_version_id = n.model_version_id
    FROM (
        SELECT DISTINCT ON (product_id)
            product_id, id, confidence, path, source, open_set, model_version_id
        FROM new_rows ORDER BY product_id, id DESC
    ) AS n
    WHERE p.id = n.product_id AND (p.suggestion_id IS NULL OR p.suggestion_id < n.id);
    RETURN NULL;
END
$$
"""
_PG_CURRENT_TRIGGER = (
    "CREATE TRIGGER suggestions_current AFTER INSERT ON suggestions "
    "REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT "
    "EXECUTE FUNCTION catalog_ai_current_suggestion()"
)
_SQLITE_CURRENT_TRIGGER = (
    "CREATE TRIGGER suggestions_current AFTER INSERT ON suggestions BEGIN "
    "UPDATE products SET suggestion_id = NEW.id, suggestion_confidence = NEW.confidence, "
    "suggestion_path = NEW.path, suggestion_source = NEW.source, "
    "suggestion_open_set = NEW.open_set, suggestion_model_version_id = NEW.model_version_id "
    "WHERE id = NEW.product_id AND (suggestion_id IS NULL OR suggestion_id < NEW.id); END"
)


def create_current_suggestion_trigger() -> None:
    """The trigger that keeps ``products.suggestion_*`` (the current suggestion's copy)."""
    if op.get_bind().dialect.name == "postgresql":
        op.execute(_PG_CURRENT_FUNCTION)
        op.execute(_PG_CURRENT_TRIGGER)
    else:
        op.execute(_SQLITE_CURRENT_TRIGGER)


def drop_current_suggestion_trigger() -> None:
    postgres = op.get_bind().dialect.name == "postgresql"
    op.execute(
        "DROP TRIGGER IF EXISTS suggestions_current" + (" ON suggestions" if postgres else "")
    )
    if postgres:
        op.execute("DROP FUNCTION IF EXISTS catalog_ai_current_suggestion()")


def create_status_triggers() -> None:
    """The triggers that keep ``product_status_deltas`` (see the module docstring)."""
    if op.get_bind().dialect.name == "postgresql":
        op.execute(_PG_FUNCTION)
        for statement in _PG_TRIGGERS:
            op.execute(statement)
    else:
        for statement in _SQLITE_TRIGGERS:
            op.execute(statement)


def drop_status_triggers() -> None:
    postgres = op.get_bind().dialect.name == "postgresql"
    for name in _TRIGGER_NAMES:
        op.execute(f"DROP TRIGGER IF EXISTS {name}" + (" ON products" if postgres else ""))
    if postgres:
        op.execute("DROP FUNCTION IF EXISTS catalog_ai_count_product_status()")


def _fill_current_suggestions() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute(
            "UPDATE products AS p SET suggestion_id = s.id, suggestion_confidence = s.confidence, "
            "suggestion_path = s.path, suggestion_source = s.source, "
            "suggestion_open_set = s.open_set, suggestion_model_version_id = s.model_version_id "
            "FROM (SELECT DISTINCT ON (product_id) * FROM suggestions "
            "ORDER BY product_id, id DESC) AS s WHERE s.product_id = p.id"
        )
    else:
        op.execute(
            "UPDATE products SET suggestion_id = (SELECT max(s.id) FROM suggestions AS s "
            "WHERE s.product_id = products.id)"
        )
        for column, source in _COPIED:
            op.execute(
                f"UPDATE products SET {column} = (SELECT s.{source} FROM suggestions AS s "
                "WHERE s.id = products.suggestion_id) WHERE suggestion_id IS NOT NULL"
            )


_COPIED = (
    ("suggestion_confidence", "confidence"),
    ("suggestion_path", "path"),
    ("suggestion_source", "source"),
    ("suggestion_open_set", "open_set"),
    ("suggestion_model_version_id", "model_version_id"),
)
_SUGGESTED = "status = 'suggested'"


def _queue_index(name: str, columns: list[str], where: str = _SUGGESTED, **kw: object) -> None:
    op.create_index(
        name,
        "products",
        columns,
        postgresql_where=sa.text(where),
        sqlite_where=sa.text(where),
        **kw,
    )


def _create_trigram_index() -> None:
    bind = op.get_bind()
    if bind.dialect.name != "postgresql":
        return
    available = bind.execute(
        sa.text("SELECT 1 FROM pg_available_extensions WHERE name = 'pg_trgm'")
    ).scalar()
    if not available:
        print("0008_scale: the pg_trgm extension is not installed; text search scans products")
        return
    try:
        with bind.begin_nested():
            bind.execute(sa.text("CREATE EXTENSION IF NOT EXISTS pg_trgm"))
    except sa.exc.DBAPIError as error:  # no right to create it: search still works, by a scan
        print(
            f"0008_scale: cannot create the pg_trgm extension ({error.orig}); "
            "text search scans products"
        )
        return
    op.execute(f"CREATE INDEX {TRIGRAM_INDEX} ON products USING gin (title gin_trgm_ops)")


def upgrade() -> None:
    with op.batch_alter_table("products") as batch:
        batch.add_column(sa.Column("suggestion_id", sa.Integer(), nullable=True))
        batch.add_column(sa.Column("suggestion_confidence", sa.Float(), nullable=True))
        batch.add_column(sa.Column("suggestion_path", sa.String(length=1024), nullable=True))
        batch.add_column(sa.Column("suggestion_source", sa.String(length=16), nullable=True))
        batch.add_column(sa.Column("suggestion_open_set", sa.Boolean(), nullable=True))
        batch.add_column(sa.Column("suggestion_model_version_id", sa.Integer(), nullable=True))
        batch.create_foreign_key(
            op.f("fk_products_suggestion_id_suggestions"),
            "suggestions",
            ["suggestion_id"],
            ["id"],
            ondelete="SET NULL",
        )
    _fill_current_suggestions()
    create_current_suggestion_trigger()
    op.create_index(op.f("ix_products_suggestion_id"), "products", ["suggestion_id"])
    op.create_index(op.f("ix_products_status_id"), "products", ["status", "id"])
    # The path last: a branch filter walks this index reading the index alone.
    _queue_index("ix_products_review_queue", ["suggestion_confidence", "id", "suggestion_path"])
    _queue_index(
        "ix_products_queue_path",
        ["suggestion_path", "suggestion_confidence", "id"],
        postgresql_ops={"suggestion_path": "varchar_pattern_ops"},
    )
    _queue_index("ix_products_queue_source", ["suggestion_source", "suggestion_confidence", "id"])
    _queue_index(
        "ix_products_queue_model",
        ["suggestion_model_version_id", "suggestion_confidence", "id"],
    )
    _queue_index(
        "ix_products_queue_open_set",
        ["suggestion_confidence", "id"],
        where=f"{_SUGGESTED} AND suggestion_open_set",
    )
    op.create_index(op.f("ix_product_images_product_id_id"), "product_images", ["product_id", "id"])
    op.drop_index(op.f("ix_product_images_product_id"), table_name="product_images")

    op.create_table(
        "product_status_counts",
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("n", sa.BigInteger(), server_default="0", nullable=False),
        sa.PrimaryKeyConstraint("status", name=op.f("pk_product_status_counts")),
    )
    op.create_table(
        "product_status_deltas",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("delta", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_product_status_deltas")),
    )
    op.execute(
        "INSERT INTO product_status_counts (status, n) "
        "SELECT status, count(*) FROM products GROUP BY status"
    )
    create_status_triggers()

    op.create_table(
        "branch_figures",
        sa.Column("path", sa.String(length=1024), nullable=False),
        *(
            sa.Column(name, sa.Integer(), nullable=False)
            for name in (
                "products",
                "labelled_by_people",
                "classified",
                "decided",
                "accepted_as_suggested",
                "reviewed",
                "reviewed_correct",
            )
        ),
        sa.PrimaryKeyConstraint("path", name=op.f("pk_branch_figures")),
    )
    op.create_table(
        "summary_refreshes",
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("refreshed_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("seconds", sa.Float(), nullable=False),
        sa.Column("rows", sa.Integer(), nullable=False),
        sa.Column("figures", _json(), server_default="{}", nullable=False),
        sa.PrimaryKeyConstraint("name", name=op.f("pk_summary_refreshes")),
    )
    _create_trigram_index()


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute(f"DROP INDEX IF EXISTS {TRIGRAM_INDEX}")
    op.drop_table("summary_refreshes")
    op.drop_table("branch_figures")
    drop_status_triggers()
    drop_current_suggestion_trigger()
    op.drop_table("product_status_deltas")
    op.drop_table("product_status_counts")
    op.create_index(op.f("ix_product_images_product_id"), "product_images", ["product_id"])
    op.drop_index(op.f("ix_product_images_product_id_id"), table_name="product_images")
    for name in (
        "ix_products_queue_open_set",
        "ix_products_queue_model",
        "ix_products_queue_source",
        "ix_products_queue_path",
        "ix_products_review_queue",
    ):
        op.drop_index(name, table_name="products")
    op.drop_index(op.f("ix_products_suggestion_id"), table_name="products")
    op.drop_index(op.f("ix_products_status_id"), table_name="products")
    with op.batch_alter_table("products") as batch:
        batch.drop_constraint(op.f("fk_products_suggestion_id_suggestions"), type_="foreignkey")
        for column, _ in reversed(_COPIED):
            batch.drop_column(column)
        batch.drop_column("suggestion_id")
