"""pytest-sessionmaker: the ini file names the models, $PYTEST_DB_URL the server (unset: a
throwaway PostgreSQL). Nothing else to write."""
