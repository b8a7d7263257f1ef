"""Template test databases: the schema and change log built once, each run's database a copy.

What proves a copy is the run's one-time costs line (-v) naming the template it copied, and
the template's existence on the server (a file beside SQLite's); what proves the copy is right
is the inner tests themselves: the schema they use, rolled-back and committed writes undone.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from sqlalchemy import create_engine, make_url
from sqlalchemy.pool import NullPool

from helpers import MODELS, Backend, Project
from pytest_sessionmaker.templates import sqlite_template_directory

if TYPE_CHECKING:
    from collections.abc import Iterator

# Every part of the change log in a copy: a rolled-back write, a real commit restored exactly,
# and an escaped commit (another connection) detected (an error at teardown).
TESTS = """
import pytest
from sqlalchemy import func, select
from models import Post, User

@pytest.mark.parametrize("n", range(2))
def test_rolled_back(db_session, n):
    db_session.add(User(name=f"user{n}"))
    db_session.commit()
    assert db_session.scalar(select(func.count()).select_from(User)) == 1

@pytest.mark.db_commit
def test_a_real_commit(db_session):
    user = User(name="committed")
    db_session.add(user)
    db_session.flush()
    db_session.add(Post(user_id=user.id, title="t"))
    db_session.commit()

def test_the_commit_was_undone(db_session):
    assert db_session.scalar(select(func.count()).select_from(User)) == 0
    assert db_session.scalar(select(func.count()).select_from(Post)) == 0

def test_an_escape_is_detected(db_engine):
    with db_engine.connect() as other:
        other.execute(User.__table__.insert().values(name="escaped"))
        other.commit()
"""
PASSED = 5
COPIED = "*sessionmaker one-time costs: database *s (copy of template {name})*"
BUILT = "*sessionmaker one-time costs: database *s (copy of template {name}, built now in *"


def run_verbose(project: Project, *args: str) -> pytest.RunResult:
    result = project.run("-v", *args)
    result.assert_outcomes(passed=PASSED, errors=1)
    result.stdout.fnmatch_lines(["*ERROR at teardown of test_an_escape_is_detected*"])
    return result


def ours(backend: Backend) -> list[str]:
    """This test's templates (those whose mark names its database)."""
    return sorted(name for name, base in backend.templates().items() if base)


def template_url(backend: Backend, name: str) -> str:
    url = make_url(backend.url)
    if backend.name == "sqlite":
        path = sqlite_template_directory() / f"{name}.db"
        return url.set(database=str(path)).render_as_string(hide_password=False)
    return url.set(database=name).render_as_string(hide_password=False)


def change_schema(project: Project, column: str) -> None:
    project.pytester.makepyfile(
        models=MODELS.replace(
            "title: Mapped[str]",
            f"{column}: Mapped[str] = mapped_column(default='')\n    title: Mapped[str]",
        )
    )


@pytest.fixture
def templated(project: Project) -> Iterator[Project]:
    project.write_tests(TESTS)
    yield project


def test_the_first_run_builds_the_template_and_the_next_copies_it(templated: Project) -> None:
    backend = templated.backend
    first = run_verbose(templated)
    [name] = ours(backend)
    first.stdout.fnmatch_lines([BUILT.format(name=name)])
    second = run_verbose(templated)
    second.stdout.fnmatch_lines([COPIED.format(name=name)])
    assert ours(backend) == [name]
    # The run's own database is gone; the template stays for the next run.
    assert backend.test_databases() == set()


def test_a_schema_change_builds_a_new_template_and_the_oldest_are_pruned(
    templated: Project,
) -> None:
    backend = templated.backend
    foreign = "pytest_sessionmaker_template_not_the_plugins"
    folder = sqlite_template_directory()
    if backend.name == "sqlite":
        folder.mkdir(parents=True, exist_ok=True)
        (folder / f"{foreign}.db").write_bytes(b"somebody's file")
    else:
        backend.admin_execute(f"CREATE DATABASE {foreign}")
    try:
        names: list[str] = []
        for column in ("", "body", "summary", "extra"):
            if column:
                change_schema(templated, column)
            run_verbose(templated)
            [new] = [name for name in ours(backend) if name not in names]
            names.append(new)
        # The newest three are kept; the first schema's template is gone for good.
        assert ours(backend) == sorted(names[1:])
        assert foreign in backend.templates()
    finally:
        if backend.name == "sqlite":
            (folder / f"{foreign}.db").unlink()
        else:
            backend.admin_execute(f"DROP DATABASE {foreign}")


def damage(backend: Backend, name: str, statement: str) -> None:
    if backend.name == "postgresql":
        # Nobody may connect to a built template: let this test, to damage it.
        backend.admin_execute(f"ALTER DATABASE {name} WITH ALLOW_CONNECTIONS true")
    engine = create_engine(template_url(backend, name), poolclass=NullPool)
    try:
        with engine.begin() as connection:
            connection.exec_driver_sql(statement)
    finally:
        engine.dispose()
    if backend.name == "postgresql":
        backend.admin_execute(f"ALTER DATABASE {name} WITH ALLOW_CONNECTIONS false")


@pytest.mark.parametrize(
    "statement",
    [
        "DROP TABLE posts",
        "DROP TABLE pytest_sessionmaker_changes",
    ],
    ids=["a table dropped", "the change log dropped"],
)
def test_a_damaged_template_is_built_again_and_never_copied(
    templated: Project, statement: str
) -> None:
    backend = templated.backend
    run_verbose(templated)
    [name] = ours(backend)
    damage(backend, name, statement)
    again = run_verbose(templated)
    again.stdout.fnmatch_lines([BUILT.format(name=name)])
    run_verbose(templated).stdout.fnmatch_lines([COPIED.format(name=name)])


def test_a_template_dropped_during_a_run_is_built_again_by_the_next(
    templated: Project,
) -> None:
    backend = templated.backend
    run_verbose(templated)
    [name] = ours(backend)
    if backend.name == "sqlite":
        drop = f"Path({template_url(backend, name).split('///', 1)[1]!r}).unlink()"
    else:
        drop = f"admin_execute('DROP DATABASE {name}')"
    templated.pytester.makeconftest(
        f"""
        from pathlib import Path

        import pytest
        from helpers import Backend

        def admin_execute(statement):
            Backend({backend.name!r}, {backend.url!r}).admin_execute(statement)

        @pytest.fixture(autouse=True, scope="session")
        def drop_the_template(db_setup):
            {drop}
        """
    )
    during = run_verbose(templated)
    during.stdout.fnmatch_lines([COPIED.format(name=name)])
    assert ours(backend) == []
    (templated.pytester.path / "conftest.py").unlink()
    run_verbose(templated).stdout.fnmatch_lines([BUILT.format(name=name)])


# A database per worker (a file on SQLite, a server database on PostgreSQL; MariaDB's creation
# is the same with or without xdist), each a copy of one template, and none left afterwards.
def test_two_xdist_workers_copy_one_template_into_a_database_each(templated: Project) -> None:
    backend = templated.backend
    templated.write_tests(
        TESTS.replace("def test_an_escape_is_detected", "def not_a_test")
        + """
@pytest.mark.parametrize("n", range(6))
def test_more(db_session, n):
    db_session.add(User(name=f"more{n}"))
    db_session.flush()

def test_database_name(db_engine, worker_id):
    assert db_engine.url.database.split("/")[-1].split(".")[0].endswith(f"_test_{worker_id}")
"""
    )
    result = templated.run_subprocess("-n", "2", "-v")
    result.assert_outcomes(passed=PASSED - 1 + 6 + 1)
    [name] = ours(backend)
    costs = [line for line in result.stdout.lines if "one-time costs" in line]
    assert len(costs) == 2, result.stdout.str()
    assert all(f"copy of template {name}" in line for line in costs)
    assert sum("built now" in line for line in costs) == 1
    assert backend.test_databases() == set()


def test_a_user_database_with_the_templates_name_is_left_alone(templated: Project) -> None:
    backend = templated.backend
    run_verbose(templated)
    [name] = ours(backend)
    backend.drop_templates()
    url = template_url(backend, name)
    if backend.name == "sqlite":
        path = Path(url.split("///", 1)[1])
        connection = sqlite3.connect(path)
        connection.execute("CREATE TABLE precious (id INTEGER)")
        connection.commit()
        connection.close()
    else:
        backend.admin_execute(f"CREATE DATABASE {name}")
    try:
        result = run_verbose(templated)
        result.stdout.fnmatch_lines(["*(created empty; template not used: *not a template*"])
        assert name in backend.templates()
        if backend.name == "sqlite":
            assert (
                "precious"
                in sqlite3.connect(path).execute("SELECT name FROM sqlite_master").fetchone()
            )
    finally:
        if backend.name == "sqlite":
            Path(url.split("///", 1)[1]).unlink()
        else:
            backend.admin_execute(f"DROP DATABASE {name}")


def test_mariadb_creates_its_database_without_a_template(
    pytester: pytest.Pytester, mariadb_server: str
) -> None:
    import uuid

    backend = Backend(
        "mariadb",
        make_url(mariadb_server)
        .set(database=f"app_{uuid.uuid4().hex[:10]}")
        .render_as_string(False),
    )
    pytester.makepyfile(models=MODELS)
    pytester.syspathinsert()
    project = Project(pytester, backend)
    project.write_ini()
    project.write_tests(TESTS)
    run_verbose(project).stdout.fnmatch_lines(
        ["*sessionmaker one-time costs: database *s (created empty)*"]
    )
    assert backend.test_databases() == set()


def test_a_migrated_database_is_copied_from_its_template_until_a_revision_changes(
    pytester: pytest.Pytester, backend: Backend
) -> None:
    repository = Path(__file__).resolve().parents[1]
    folder = pytester.copy_example(str(repository / "examples" / "alembic"))
    args = ["--db-url", backend.url, "-v", "-rA"]
    first = pytester.runpytest(*args)
    first.assert_outcomes(passed=6)
    first.stdout.fnmatch_lines(["*Running upgrade  -> 0001*", BUILT.format(name="*")])
    [name] = ours(backend)
    # The copy holds the data migration's rows as the baseline (the example's tests check).
    second = pytester.runpytest(*args)
    second.assert_outcomes(passed=6)
    second.stdout.no_fnmatch_line("*Running upgrade*")
    second.stdout.fnmatch_lines([COPIED.format(name=name)])
    revision = folder / "migrations" / "versions" / "0001_users_and_posts.py"
    revision.write_text(revision.read_text() + "\n# edited\n")
    third = pytester.runpytest(*args)
    third.assert_outcomes(passed=6)
    third.stdout.fnmatch_lines(["*Running upgrade  -> 0001*", BUILT.format(name="*")])
    assert len(ours(backend)) == 2
