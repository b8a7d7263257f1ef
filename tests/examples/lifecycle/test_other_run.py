import os
import pathlib


def test_record_the_database(db_engine):
    (pathlib.Path(os.environ["BARRIER"]) / "other-run-database").write_text(
        str(db_engine.url.database)
    )
