"""pytest-sqla with its defaults: the ini file names the models, $PYTEST_SQLA_URL the server."""
