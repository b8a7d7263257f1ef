"""db_schema = alembic: the test database is built by the project's Alembic migrations.

Most tests run examples/alembic (a blog with three revisions: tables, a data migration that
seeds two categories and adds a foreign key in batch mode, and a view) as its users would, and
change one thing in it.
"""

from __future__ import annotations

import gc
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from sqlalchemy import create_engine, inspect, make_url, text
from sqlalchemy.pool import NullPool

from helpers import only_on

if TYPE_CHECKING:
    from helpers import Backend

EXAMPLE_TESTS = (
    6  # tests/test_blog.py and the ready-made check in tests/test_models_and_migrations.py
)
FIRST_MIGRATION = "*Running upgrade  -> 0001*"
BLOG_TESTS = "tests/test_blog.py"

NEW_REVISION = '''
"""Tags, with one seeded.

Revision ID: 0004
Revises: 0003
"""

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"


def upgrade():
    tags = op.create_table("tags", sa.Column("id", sa.Integer(), primary_key=True))
    op.bulk_insert(tags, [{"id": 10}])


def downgrade():
    op.drop_table("tags")
'''


REPOSITORY = Path(__file__).resolve().parents[1]


def blog(pytester: pytest.Pytester) -> Path:
    pytester.copy_example(str(REPOSITORY / "examples" / "alembic"))
    return pytester.path


def databases_of(backend: Backend) -> set[str]:
    """This test's test databases on the server (other tests create theirs concurrently)."""
    stem = Path(str(make_url(backend.url).database)).stem
    return {name for name in backend.server_databases() if name.startswith(f"{stem}_test")}


def kept_database_url(backend: Backend) -> str:
    url = make_url(backend.url)
    database = str(url.database)
    if backend.name == "sqlite":
        path = Path(database)
        return url.set(database=str(path.with_name(f"{path.stem}_test.db"))).render_as_string(
            hide_password=False
        )
    return url.set(database=f"{database}_test").render_as_string(hide_password=False)


def execute(url: str, *statements: str) -> list[tuple[object, ...]]:
    """Run statements in a database of the test's; the rows of the last one."""
    engine = create_engine(url, poolclass=NullPool)
    rows: list[tuple[object, ...]] = []
    try:
        with engine.begin() as connection:
            for statement in statements:
                result = connection.execute(text(statement))
                rows = [tuple(row) for row in result] if result.returns_rows else []
    finally:
        engine.dispose()
    return rows


def open_psycopg_connections_to(database: str) -> list[object]:
    """psycopg connections of this process still open on ``database``, reachable or not."""
    import psycopg

    gc.collect()
    return [
        each
        for each in gc.get_objects()
        if isinstance(each, psycopg.Connection) and not each.closed and each.info.dbname == database
    ]


def table_names(url: str) -> set[str]:
    engine = create_engine(url, poolclass=NullPool)
    try:
        with engine.connect() as connection:
            return set(inspect(connection).get_table_names())
    finally:
        engine.dispose()


# -- the example, as its users run it -----------------------------------------------------


# Under xdist (each worker migrating a database of its own): in
# test_reuse_under_xdist_keeps_one_migrated_database_per_worker, which runs the example so too.
def test_the_alembic_example_passes_on_every_backend(
    pytester: pytest.Pytester, any_backend: Backend
) -> None:
    folder = blog(pytester)
    result = pytester.runpytest("--db-url", any_backend.url, "-rA")
    result.assert_outcomes(passed=EXAMPLE_TESTS)
    result.stdout.fnmatch_lines([FIRST_MIGRATION])
    # The application's own database (blog.db beside it) is never opened, the test databases
    # are gone.
    assert not (folder / "blog.db").exists()
    assert databases_of(any_backend) == set()


def test_reuse_keeps_the_migrated_database_migrates_forward_and_starts_again(
    pytester: pytest.Pytester, any_backend: Backend
) -> None:
    folder = blog(pytester)
    run = ["--db-url", any_backend.url, "--db-reuse", "-rA"]
    kept = kept_database_url(any_backend)
    # A session fixture commits rows: the baseline of this run, not the next one's.
    pytester.makeconftest(
        """
        import pytest
        from sqlalchemy import update
        from sqlalchemy.orm import Session
        from blog.models import Category, User

        @pytest.fixture(scope="session", autouse=True)
        def seed(db_engine):
            with Session(db_engine) as session:
                session.add(User(name="left by the first run"))
                session.execute(update(Category).values(name=Category.name + "!"))
                session.commit()
        """
    )
    first = pytester.runpytest(*run, "tests/test_models_and_migrations.py")
    first.assert_outcomes(passed=1)
    first.stdout.fnmatch_lines([FIRST_MIGRATION])
    assert databases_of(any_backend) != set()
    (folder / "conftest.py").unlink()

    # Unchanged migrations: no migration runs, and the rows are the migrations' again.
    reused = pytester.runpytest(*run)
    reused.assert_outcomes(passed=EXAMPLE_TESTS)
    reused.stdout.no_fnmatch_line("*Running upgrade*")

    # A new revision: only it runs, in the kept database. (The models do not know its table:
    # the models check is left out from here on.)
    execute(kept, "CREATE TABLE canary (id INTEGER)")
    (folder / "migrations" / "versions" / "0004_tags.py").write_text(NEW_REVISION)
    forward = pytester.runpytest(*run, BLOG_TESTS)
    forward.assert_outcomes(passed=EXAMPLE_TESTS - 1)
    forward.stdout.fnmatch_lines(["*Running upgrade 0003 -> 0004*"])
    forward.stdout.no_fnmatch_line(FIRST_MIGRATION)
    assert {"canary", "tags"} <= table_names(kept)
    execute(kept, "DROP TABLE canary")
    pytester.makepyfile(
        test_tags="""
        import pytest
        from sqlalchemy import text

        @pytest.mark.db_commit
        def test_the_new_data_migration_is_the_baseline(db_connection):
            db_connection.execute(text("DELETE FROM tags"))
            db_connection.commit()

        def test_after_it(db_connection):
            assert db_connection.execute(text("SELECT id FROM tags")).scalars().all() == [10]
        """
    )
    again = pytester.runpytest(*run, "test_tags.py")
    again.assert_outcomes(passed=2)
    again.stdout.no_fnmatch_line("*Running upgrade*")

    # An edited revision: the database is created again and migrated from the start.
    execute(kept, "CREATE TABLE canary (id INTEGER)")
    first_revision = folder / "migrations" / "versions" / "0001_users_and_posts.py"
    first_revision.write_text(first_revision.read_text() + "\n# edited\n")
    recreated = pytester.runpytest(*run, BLOG_TESTS)
    recreated.assert_outcomes(passed=EXAMPLE_TESTS - 1)
    recreated.stdout.fnmatch_lines([FIRST_MIGRATION])
    assert "canary" not in table_names(kept)

    # Without --db-reuse the kept database is replaced, then dropped.
    pytester.runpytest("--db-url", any_backend.url, BLOG_TESTS).assert_outcomes(
        passed=EXAMPLE_TESTS - 1
    )
    assert databases_of(any_backend) == set()


@only_on("any_backend", "postgresql")  # what xdist adds is the same on every backend
def test_reuse_under_xdist_keeps_one_migrated_database_per_worker(
    pytester: pytest.Pytester, any_backend: Backend
) -> None:
    folder = blog(pytester)
    run = ["-n", "2", "--db-url", any_backend.url, "--db-reuse", "-rA"]
    first = pytester.runpytest_subprocess(*run)
    first.assert_outcomes(passed=EXAMPLE_TESTS)
    first.stdout.fnmatch_lines([FIRST_MIGRATION])
    assert len(databases_of(any_backend)) == 2
    second = pytester.runpytest_subprocess(*run)
    second.assert_outcomes(passed=EXAMPLE_TESTS)
    second.stdout.no_fnmatch_line("*Running upgrade*")
    # Without --db-reuse: migrated again per worker, then dropped.
    third = pytester.runpytest_subprocess(*run[:4], "-rA")
    third.assert_outcomes(passed=EXAMPLE_TESTS)
    third.stdout.fnmatch_lines([FIRST_MIGRATION])
    assert databases_of(any_backend) == set()
    assert not (folder / "blog.db").exists()


SEEDED_CONFTEST = """
import pytest
from sqlalchemy import update
from sqlalchemy.orm import Session
from blog.models import Category, Post, User

@pytest.fixture(scope="session", autouse=True)
def seed(db_engine):
    with Session(db_engine) as session:
        author = User(name="seed")
        session.add(author)
        session.flush()
        session.add(Post(user_id=author.id, category_id=1, title="seeded", published=True))
        session.execute(update(Category).where(Category.name == "howto").values(name="guides"))
        session.commit()
"""

SEEDED_TESTS = """
import pytest
from sqlalchemy import delete, select, text
from blog.models import Category, Post, User

def state(session):
    return (
        sorted(session.scalars(select(Category.name))),
        session.scalars(select(User.name)).all(),
        session.execute(text("SELECT title, author FROM published_posts")).all(),
    )

SEEDED = (["guides", "news"], ["seed"], [("seeded", "seed")])

@pytest.mark.db_commit
def test_a_commit_test_wipes_everything(db_session):
    db_session.execute(delete(Post))
    db_session.execute(delete(User))
    db_session.execute(delete(Category))
    db_session.commit()
    assert state(db_session) == ([], [], [])

def test_migrated_and_seeded_rows_are_back(db_session):
    assert state(db_session) == SEEDED

@pytest.mark.db_commit
def test_and_again_after_a_commit_that_added(db_session):
    assert state(db_session) == SEEDED
    db_session.add(Category(name="more"))
    db_session.commit()

def test_after_all(db_session):
    assert state(db_session) == SEEDED
"""


def test_seed_data_on_a_migrated_schema_is_the_baseline_commit_tests_return_to(
    pytester: pytest.Pytester, any_backend: Backend
) -> None:
    blog(pytester)
    pytester.makeconftest(SEEDED_CONFTEST)
    pytester.makepyfile(test_seeded=SEEDED_TESTS)
    result = pytester.runpytest("--db-url", any_backend.url, "test_seeded.py")
    result.assert_outcomes(passed=4)


# -- env.py that would migrate another database ------------------------------------------------


def without_the_three_lines(folder: Path) -> None:
    env_py = folder / "migrations" / "env.py"
    source = env_py.read_text()
    lines = [
        '    if (connection := config.attributes.get("connection")) is not None:\n',
        "        context.configure(connection=connection, target_metadata=target_metadata)\n",
        "        return context.run_migrations()\n",
    ]
    for line in lines:
        assert line in source
        source = source.replace(line, "")
    env_py.write_text(source)


def test_an_env_py_computing_its_own_url_is_stopped_before_it_migrates_another_database(
    pytester: pytest.Pytester, any_backend: Backend, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder = blog(pytester)
    without_the_three_lines(folder)
    with any_backend.existing_database() as application_url:
        execute(
            application_url,
            "CREATE TABLE precious (id INTEGER PRIMARY KEY)",
            "INSERT INTO precious VALUES (7)",
        )
        monkeypatch.setenv("BLOG_DATABASE_URL", application_url)
        result = pytester.runpytest("--db-url", any_backend.url)
        result.assert_outcomes(errors=EXAMPLE_TESTS)
        result.stdout.fnmatch_lines(
            [
                "Alembic's env.py opened a connection to the database *, not to the test "
                "database *_test*stopped it before a migration ran there; make env.py use the "
                "connection*three lines at the top of run_migrations_online() in *env.py:",
                "",
                '    if (connection := config.attributes.get("connection")) is not None:',
                "        context.configure(connection=connection, target_metadata=target_metadata)",
                "        return context.run_migrations()",
            ]
        )
        assert table_names(application_url) == {"precious"}
        assert execute(application_url, "SELECT id FROM precious") == [(7,)]
    assert databases_of(any_backend) == set()


def test_an_env_py_that_migrates_nothing_is_reported_with_the_lines_it_needs(
    pytester: pytest.Pytester, backend: Backend
) -> None:
    folder = blog(pytester)
    env_py = folder / "migrations" / "env.py"
    env_py.write_text(
        env_py.read_text().replace(
            "def run_migrations_online() -> None:\n",
            "def run_migrations_online() -> None:\n    return None\n",
        )
    )
    result = pytester.runpytest("--db-url", backend.url, "tests/test_blog.py")
    result.assert_outcomes(errors=EXAMPLE_TESTS - 1)
    result.stdout.fnmatch_lines(
        [
            "Alembic's env.py did not migrate the test database *: its alembic_version is "
            "missing, not 0003; make env.py use the connection*three lines*",
        ]
    )


def test_a_generic_env_py_migrates_the_test_database_through_sqlalchemy_url(
    pytester: pytest.Pytester, backend: Backend
) -> None:
    """Alembic's own template reads sqlalchemy.url: that is enough, no change needed."""
    folder = blog(pytester)
    without_the_three_lines(folder)
    env_py = folder / "migrations" / "env.py"
    env_py.write_text(
        env_py.read_text()
        .replace(
            "from sqlalchemy import create_engine",
            "from sqlalchemy import engine_from_config, pool",
        )
        .replace(
            "engine = create_engine(DATABASE_URL)",
            # As in Alembic's generic template:
            "engine = engine_from_config(config.get_section(config.config_ini_section, {}), "
            'prefix="sqlalchemy.", poolclass=pool.NullPool)',
        )
    )
    result = pytester.runpytest("--db-url", backend.url, "-rA")
    result.assert_outcomes(passed=EXAMPLE_TESTS)
    result.stdout.fnmatch_lines([FIRST_MIGRATION])
    assert not (folder / "blog.db").exists()


ASYNC_ENV_PY = """
import asyncio

from alembic import context
from sqlalchemy import pool
from sqlalchemy.ext.asyncio import async_engine_from_config

from blog.models import Base

config = context.config


def do_run_migrations(connection):
    context.configure(connection=connection, target_metadata=Base.metadata)
    with context.begin_transaction():
        context.run_migrations()


async def run_async_migrations():
    connectable = async_engine_from_config(
        config.get_section(config.config_ini_section, {}),
        prefix="sqlalchemy.",
        poolclass=pool.NullPool,
    )
    async with connectable.connect() as connection:
        await connection.run_sync(do_run_migrations)
    await connectable.dispose()


asyncio.run(run_async_migrations())
"""


@pytest.mark.parametrize("backend", ["postgresql"], indirect=True)
def test_alembics_async_template_migrates_the_test_database_through_sqlalchemy_url(
    pytester: pytest.Pytester, backend: Backend
) -> None:
    """psycopg serves async engines too: Alembic's async env.py needs no change."""
    folder = blog(pytester)
    (folder / "migrations" / "env.py").write_text(ASYNC_ENV_PY)
    result = pytester.runpytest("--db-url", backend.url)
    result.assert_outcomes(passed=EXAMPLE_TESTS)


# -- settings and failures -----------------------------------------------------------------


def test_the_config_file_and_section_are_settings_and_paths_are_relative_to_it(
    pytester: pytest.Pytester, backend: Backend, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder = blog(pytester)
    ini = (folder / "alembic.ini").read_text()
    (folder / "alembic.ini").unlink()
    (folder / "config").mkdir()
    (folder / "config" / "alembic.ini").write_text(
        ini.replace("[alembic]", "[blog]").replace("%(here)s/migrations", "../migrations")
    )
    with (folder / "pytest.ini").open("a") as pytest_ini:
        pytest_ini.write("db_alembic_config = config/alembic.ini\ndb_alembic_section = blog\n")
    monkeypatch.chdir(folder / "tests")  # pytest runs from below the rootdir
    result = pytester.runpytest("--db-url", backend.url)
    result.assert_outcomes(passed=EXAMPLE_TESTS)
    result.stdout.fnmatch_lines(
        ["sessionmaker:*schema: alembic upgrade heads with */config/alembic.ini"]
    )


def test_the_schema_mode_comes_from_the_command_line_too(
    pytester: pytest.Pytester, backend: Backend
) -> None:
    folder = blog(pytester)
    pytest_ini = folder / "pytest.ini"
    pytest_ini.write_text(
        pytest_ini.read_text().replace("db_schema = alembic", "db_schema = create")
    )
    result = pytester.runpytest("--db-url", backend.url, "--db-schema", "alembic")
    result.assert_outcomes(passed=EXAMPLE_TESTS)
    result.stdout.fnmatch_lines(
        ["sessionmaker:*schema: alembic upgrade heads with * (from --db-schema)"]
    )


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (
            "no alembic.ini",
            "ERROR: db_schema = alembic: the Alembic config file */alembic.ini (from ini "
            "db_alembic_config) does not exist; point db_alembic_config*",
        ),
        (
            "as_given",
            "ERROR: db_schema = alembic migrates only a test database of the plugin's*",
        ),
        (
            "no alembic installed",
            "ERROR: db_schema = alembic needs Alembic, which is not installed; install it with "
            "pip install 'pytest-sessionmaker[alembic]'.",
        ),
    ],
)
def test_what_alembic_mode_needs_is_checked_at_start_up(
    pytester: pytest.Pytester, change: str, message: str
) -> None:
    folder = blog(pytester)
    args = ["--db-url", "sqlite:///app.db"]
    if change == "no alembic.ini":
        (folder / "alembic.ini").unlink()
    elif change == "as_given":
        with (folder / "pytest.ini").open("a") as pytest_ini:
            pytest_ini.write("db_database = as_given\n")
    else:
        # A plugin loaded before the settings are read makes Alembic unimportable.
        pytester.makepyfile(hide_alembic="import sys\nsys.modules['alembic'] = None\n")
        args = ["-p", "hide_alembic", *args]
    result = pytester.runpytest_subprocess(*args)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines([message])
    assert "Traceback" not in result.stderr.str()


def test_a_failing_migration_fails_the_database_tests_in_one_sentence(
    pytester: pytest.Pytester, backend: Backend
) -> None:
    folder = blog(pytester)
    third = folder / "migrations" / "versions" / "0003_published_posts_view.py"
    third.write_text(
        third.read_text().replace(
            "def upgrade() -> None:\n",
            'def upgrade() -> None:\n    op.execute("INSERT INTO no_such_table VALUES (1)")\n',
        )
    )
    result = pytester.runpytest("--db-url", backend.url)
    result.assert_outcomes(errors=EXAMPLE_TESTS)
    result.stdout.fnmatch_lines(
        [
            "alembic upgrade heads failed in the test database *: *no_such_table* (run pytest "
            "with --tb=long to see the migration's traceback)."
        ]
    )
    assert databases_of(backend) == set()
    if backend.name == "postgresql":
        # The failed set-up closed the connections it opened: left to garbage collection,
        # they would warn (an error under filterwarnings) in whichever test came later.
        test_database = f"{make_url(backend.url).database}_test"
        assert open_psycopg_connections_to(test_database) == []
    detailed = pytester.runpytest("--db-url", backend.url, "--tb=long", "-x")
    detailed.stdout.fnmatch_lines(["Caused by:", "*0003_published_posts_view.py*"])


def test_the_models_check_reports_differences_readably(
    pytester: pytest.Pytester, backend: Backend
) -> None:
    folder = blog(pytester)
    models = folder / "blog" / "models.py"
    models.write_text(
        models.read_text()
        .replace(
            "    title: Mapped[str] = mapped_column(String(100))",
            "    title: Mapped[str] = mapped_column(String(200))\n    body: Mapped[str | None]",
        )
        .replace(
            "class User(Base):",
            'class Tag(Base):\n    __tablename__ = "tags"\n\n'
            "    id: Mapped[int] = mapped_column(primary_key=True)\n\n\nclass User(Base):",
        )
    )
    result = pytester.runpytest("--db-url", backend.url, "tests/test_models_and_migrations.py")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(
        [
            "The models (db_metadata) and the schema the migrations built differ:",
            "  + table tags: in the models, not made by the migrations",
            "  + column posts.body: in the models, not made by the migrations",
            "  ~ column posts.title: type VARCHAR(100) in the database, type VARCHAR(200) in "
            "the models",
            "Write a migration for the models' side*",
        ]
    )


def test_env_py_logging_configuration_does_not_silence_the_application(
    pytester: pytest.Pytester, backend: Backend
) -> None:
    """env.py's fileConfig() would disable every existing logger for the rest of the run."""
    blog(pytester)
    pytester.makepyfile(
        test_logs="""
        import logging

        import blog.models

        log = logging.getLogger("blog.models")

        def test_the_application_still_logs(db_session, caplog):
            log.warning("still heard")
            assert [record.getMessage() for record in caplog.records] == ["still heard"]
        """
    )
    result = pytester.runpytest("--db-url", backend.url, "test_logs.py")
    result.assert_outcomes(passed=1)


# -- db_schema = none in the plugin's own database --------------------------------------------


def test_no_schema_in_a_new_test_database_says_it_is_empty(
    pytester: pytest.Pytester, backend: Backend
) -> None:
    folder = blog(pytester)
    pytest_ini = folder / "pytest.ini"
    pytest_ini.write_text(pytest_ini.read_text().replace("db_schema = alembic", "db_schema = none"))
    result = pytester.runpytest("--db-url", backend.url, "tests/test_blog.py")
    result.assert_outcomes(errors=EXAMPLE_TESTS - 1)
    result.stdout.fnmatch_lines(
        [
            "The test database * was created empty by pytest-sessionmaker and db_schema = none "
            "runs no DDL, so it has no tables: set db_schema = alembic to run your Alembic "
            "migrations in it, or db_schema = create to create db_metadata's tables."
        ]
    )
    assert "Traceback" not in result.stdout.str()
