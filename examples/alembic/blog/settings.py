"""The application's settings: its database URL comes from the environment."""

from __future__ import annotations

import os

DATABASE_URL = os.environ.get("BLOG_DATABASE_URL", "sqlite:///blog.db")
