"""A view of the published posts with their authors: no model describes it.

Revision ID: 0003
Revises: 0002
Create Date: 2025-03-10 10:00:00
"""

from __future__ import annotations

from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute(
        "CREATE VIEW published_posts AS "
        "SELECT posts.id, posts.title, users.name AS author "
        "FROM posts JOIN users ON users.id = posts.user_id "
        "WHERE posts.published"
    )


def downgrade() -> None:
    op.execute("DROP VIEW published_posts")
