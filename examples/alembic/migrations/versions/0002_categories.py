"""Categories, with the two every installation starts with (a data migration).

Revision ID: 0002
Revises: 0001
Create Date: 2025-02-03 10:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    categories = op.create_table(
        "categories",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("name", sa.String(50), nullable=False),
        sa.UniqueConstraint("name", name="uq_categories_name"),
    )
    op.bulk_insert(categories, [{"name": "news"}, {"name": "howto"}])
    # Batch mode: SQLite cannot add a foreign key with ALTER TABLE, so Alembic copies the
    # table there; elsewhere this is a plain ALTER TABLE.
    with op.batch_alter_table("posts") as batch:
        batch.add_column(sa.Column("category_id", sa.Integer(), nullable=True))
        batch.create_foreign_key(
            "fk_posts_category_id_categories", "categories", ["category_id"], ["id"]
        )


def downgrade() -> None:
    with op.batch_alter_table("posts") as batch:
        batch.drop_constraint("fk_posts_category_id_categories", type_="foreignkey")
        batch.drop_column("category_id")
    op.drop_table("categories")
