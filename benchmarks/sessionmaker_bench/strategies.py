"""The registry of what the benchmark compares: one entry per way of isolating a test.

Each entry names a folder under ``benchmarks/strategies/`` whose files (a ``conftest.py`` as a
user would write it, sometimes a helper beside it) are copied into the generated suite. Adding a
strategy is that folder and one entry below. Parameters never reach the files by editing them:
the server's URL comes as ``$BENCH_URL`` (and the plugins' own ``$PYTEST_DB_URL`` and
``$PYTEST_SQLA_URL``), the schema's size as ``$BENCH_TABLES``, settings through the generated
``pytest.ini`` (``ini`` below).
"""

from __future__ import annotations

from dataclasses import dataclass, field

POSTGRESQL = frozenset({"postgresql"})
SERVERS = frozenset({"postgresql", "mysql"})
ANY_BACKEND = frozenset({"postgresql", "mysql", "sqlite"})


@dataclass(frozen=True)
class Strategy:
    key: str
    """The name on the command line (``--only``) and in the JSON report."""
    label: str
    fixture: str | None
    """The fixture every generated test requests; None: the tests are empty."""
    folder: str = ""
    """Its folder under ``benchmarks/strategies/``; default: the key."""
    plugins: tuple[str, ...] = ()
    """Plugins loaded with ``-p`` (autoloading is off, so no strategy pays for another's)."""
    ini: dict[str, str] = field(default_factory=dict)
    marker: str | None = None
    """A marker applied to every generated module (``pytestmark``)."""
    body: str = "orm"
    """The generated tests' body: a key of ``suite.TEST_BODIES``."""
    backends: frozenset[str] = SERVERS
    slow: bool = False
    """Costs 0.1 s or more per test: measured with the smaller ``--slow-sizes``."""
    needs: tuple[str, ...] = ()
    """Modules it needs beyond the plugin's own dependencies (the peers of the bench extra)."""
    creates_database: bool = False
    """It creates the URL's database itself, so the benchmark must not."""
    per_test: bool = True
    """Part of the per-test comparison (else only used by other measurements)."""
    floor: str = "floor"
    """The strategy its per-test cost is compared with (the async rows: the async floor)."""

    @property
    def directory(self) -> str:
        return self.folder or self.key


OURS_INI = {"db_metadata": "models:Base"}
ASYNC_PLUGINS = ("pytest_asyncio.plugin",)
ASYNC_INI = {
    "asyncio_mode": "auto",
    "asyncio_default_fixture_loop_scope": "session",
    "asyncio_default_test_loop_scope": "session",
}

STRATEGIES = (
    Strategy("baseline", "empty test (pytest alone)", None, body="empty", backends=ANY_BACKEND),
    Strategy("floor", "ORM floor (BEGIN ... ROLLBACK)", "floor_session"),
    Strategy("recipe", "SQLAlchemy's recipe, by hand", "recipe_session"),
    Strategy(
        "sqla",
        "pytest-sqla (defaults)",
        "sqla_session",
        plugins=("pytest_sqla.plugin",),
        ini={"sqla_metadata": "models:Base"},
        needs=("pytest_sqla",),
    ),
    Strategy(
        "template",
        "pytest-postgresql, db per test",
        "template_session",
        plugins=("pytest_postgresql.plugin",),
        backends=POSTGRESQL,
        slow=True,
        creates_database=True,
    ),
    Strategy("truncate", "real commits + TRUNCATE all", "truncate_session", slow=True),
    Strategy(
        "ours",
        "pytest-sessionmaker, rollback",
        "db_session",
        plugins=("pytest_sessionmaker.plugin",),
        ini=OURS_INI,
    ),
    Strategy(
        "ours_commit",
        "pytest-sessionmaker, db_commit",
        "db_session",
        folder="ours",
        plugins=("pytest_sessionmaker.plugin",),
        ini=OURS_INI,
        marker="db_commit",
    ),
    # Async tests, every one in the session-scoped event loop (the floor holds one connection
    # in it for the run), run by pytest-asyncio in auto mode.
    Strategy(
        "async_floor",
        "async ORM floor (BEGIN ... ROLLBACK)",
        "async_floor_session",
        plugins=ASYNC_PLUGINS,
        ini=ASYNC_INI,
        body="async_orm",
        floor="async_floor",
    ),
    Strategy(
        "async_recipe",
        "SQLAlchemy's recipe, async, by hand",
        "async_recipe_session",
        plugins=ASYNC_PLUGINS,
        ini=ASYNC_INI,
        body="async_orm",
        floor="async_floor",
    ),
    Strategy(
        "ours_async",
        "pytest-sessionmaker, async rollback",
        "db_async_session",
        plugins=(*ASYNC_PLUGINS, "pytest_sessionmaker.plugin"),
        ini={**OURS_INI, **ASYNC_INI},
        body="async_orm",
        floor="async_floor",
    ),
    # Only for the time to the first test: pytest-postgresql starting its own server.
    Strategy(
        "template_proc",
        "pytest-postgresql, own server",
        "template_session",
        plugins=("pytest_postgresql.plugin",),
        backends=POSTGRESQL,
        creates_database=True,
        per_test=False,
    ),
)

BY_KEY = {strategy.key: strategy for strategy in STRATEGIES}
COMPARED = tuple(strategy.key for strategy in STRATEGIES if strategy.per_test)
