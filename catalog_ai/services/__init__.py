"""Use cases of catalog_ai. Each takes a SQLAlchemy ``session`` and never commits: the caller
(CLI command, Celery task, dashboard action) owns the transaction through ``unit_of_work()``."""
