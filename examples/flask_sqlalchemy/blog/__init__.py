"""A small blog API: an application factory that reads its database URL from the environment."""

from __future__ import annotations

import os
from typing import Any

from flask import Flask

from blog.extensions import db


def create_app(config: dict[str, Any] | None = None) -> Flask:
    app = Flask(__name__)
    app.config["SQLALCHEMY_DATABASE_URI"] = os.environ.get("BLOG_DATABASE_URL", "sqlite:///blog.db")
    app.config.update(config or {})
    db.init_app(app)

    from blog.views import authors, posts

    app.register_blueprint(authors)
    app.register_blueprint(posts)
    return app
