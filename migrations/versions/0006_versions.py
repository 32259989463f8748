"""Immutable model versions: the parent of a derived version, prototype-memory revisions, and
the revision every suggestion used.

Revision ID: 0006_versions
Revises: 0005_ingest
Create Date: 2026-12-01
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006_versions"
down_revision: str | None = "0005_ingest"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("model_versions") as batch:
        batch.add_column(sa.Column("parent_id", sa.Integer(), nullable=True))
        batch.create_index(op.f("ix_model_versions_parent_id"), ["parent_id"], unique=False)
        batch.create_foreign_key(
            op.f("fk_model_versions_parent_id_model_versions"), "model_versions", ["parent_id"],
            ["id"], ondelete="SET NULL",
        )
    with op.batch_alter_table("suggestions") as batch:
        batch.add_column(sa.Column("memory_revision", sa.Integer(), nullable=True))
    op.create_table(
        "prototype_revisions",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("model_version_id", sa.Integer(), nullable=False),
        sa.Column("revision", sa.Integer(), nullable=False),
        sa.Column("path", sa.String(length=1024), nullable=False),
        sa.Column("category_id", sa.Integer(), nullable=True),
        sa.Column("review_id", sa.Integer(), nullable=True),
        sa.Column("dim", sa.Integer(), nullable=False),
        sa.Column("vector", sa.LargeBinary(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.func.now(),
                  nullable=False),
        sa.ForeignKeyConstraint(["category_id"], ["categories.id"], ondelete="SET NULL",
                                name=op.f("fk_prototype_revisions_category_id_categories")),
        sa.ForeignKeyConstraint(["model_version_id"], ["model_versions.id"],
                                name=op.f("fk_prototype_revisions_model_version_id_model_versions"),
                                ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["review_id"], ["reviews.id"], ondelete="SET NULL",
                                name=op.f("fk_prototype_revisions_review_id_reviews")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_prototype_revisions")),
        sa.UniqueConstraint("model_version_id", "revision",
                            name=op.f("uq_prototype_revisions_model_version_id_revision")),
    )
    with op.batch_alter_table("prototype_revisions") as batch:
        batch.create_index(op.f("ix_prototype_revisions_category_id"), ["category_id"])
        batch.create_index(op.f("ix_prototype_revisions_review_id"), ["review_id"], unique=False)
    # Reviews recorded before revisions existed taught the memory through the products' labels;
    # they become the first revisions of each version that embedded the product's photo, in
    # product order, so no correction is forgotten by the upgrade.
    op.execute(sa.text("""
        INSERT INTO prototype_revisions (model_version_id, revision, path, category_id, review_id,
                                         dim, vector)
        SELECT e.model_version_id,
               ROW_NUMBER() OVER (PARTITION BY e.model_version_id ORDER BY p.id),
               c.path, c.id,
               (SELECT MAX(r.id) FROM reviews r
                 WHERE r.product_id = p.id AND r.category_id = p.category_id),
               e.dim, e.vector
        FROM products p
        JOIN categories c ON c.id = p.category_id
        JOIN embeddings e ON e.image_id = (SELECT MIN(i.id) FROM product_images i
                                            WHERE i.product_id = p.id)
        WHERE p.status = 'accepted' AND p.label_source = 'review'
    """))


def downgrade() -> None:
    op.drop_table("prototype_revisions")
    with op.batch_alter_table("suggestions") as batch:
        batch.drop_column("memory_revision")
    with op.batch_alter_table("model_versions") as batch:
        batch.drop_constraint(op.f("fk_model_versions_parent_id_model_versions"),
                              type_="foreignkey")
        batch.drop_index(op.f("ix_model_versions_parent_id"))
        batch.drop_column("parent_id")
