"""Flask-SQLAlchemy 3.x: its extension object, its ``db.session``, and the engines it makes.

Flask-SQLAlchemy's ``db.session`` is a ``scoped_session`` over a ``sessionmaker`` whose class
chooses its engine in ``get_bind()`` from ``db.engines`` (the current app's engines, one per
bind key) and never looks at the bind it was given; its scope is the current application
context. The plugin handles both through public API: the session class the plugin derives for
every named factory returns the plugin's bind whatever ``get_bind()`` the application's class
has (see application.py), and a registry is cleared only where a scope exists (rebind.py).

The engines are made by ``db.init_app(app)``, usually inside ``create_app()``, so they cannot be
named in the ini file. They are found when an application context of an app using a named
extension is first pushed, through Flask's public ``appcontext_pushed`` signal: that happens
before any request, ``db.session`` or ``db.engine`` of that app can run, so an engine pointing
at another database is found before anything is written through it.
"""

from __future__ import annotations

import sys
import weakref
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable

    from sqlalchemy import Engine, MetaData
    from sqlalchemy.orm import scoped_session


def _extension_class() -> type | None:
    # Only when the application imported it: nothing is imported on the plugin's behalf.
    module = sys.modules.get("flask_sqlalchemy")
    return getattr(module, "SQLAlchemy", None) if module is not None else None


def is_extension(obj: object) -> bool:
    """Whether ``obj`` is a Flask-SQLAlchemy ``SQLAlchemy`` extension object (``db``)."""
    cls = _extension_class()
    return cls is not None and isinstance(obj, cls)


def session_of(extension: Any) -> scoped_session[Any]:
    """The extension's ``db.session``, the factory the plugin binds."""
    session: scoped_session[Any] = extension.session
    return session


def metadatas_of(extension: Any) -> list[MetaData]:
    """Every MetaData of the extension: the default one and one per ``__bind_key__``."""
    return list(extension.metadatas.values())


def engine_label(app: Any, key: str | None) -> str:
    bind = "default engine" if key is None else f"engine of bind key {key!r}"
    return f"{bind} of the Flask app {app.name!r} (Flask-SQLAlchemy)"


class EngineWatch:
    """Reports each engine of the named extensions' apps once, when their app context is
    first pushed."""

    def __init__(self, extensions: Iterable[object], report: Callable[[str, Engine], None]) -> None:
        self.extensions = list(extensions)
        self.report = report
        self._seen: weakref.WeakSet[object] = weakref.WeakSet()
        from flask.signals import appcontext_pushed

        self._signal = appcontext_pushed
        # weak=False: blinker keeps only weak references by default, and nothing else would
        # keep this bound method alive.
        appcontext_pushed.connect(self._on_push, weak=False)

    def close(self) -> None:
        self._signal.disconnect(self._on_push)

    def _on_push(self, app: Any, **extra: object) -> None:
        if app in self._seen:
            return
        extension = app.extensions.get("sqlalchemy")
        if not any(extension is known for known in self.extensions):
            return
        self._seen.add(app)
        # The context is pushed already, so db.engines (which needs it) works here.
        for key, engine in extension.engines.items():
            self.report(engine_label(app, key), engine)
