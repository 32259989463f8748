"""Background processing: the Celery app, its thin tasks, and the model they load once.

``app`` (the Celery application), ``tasks`` (classify, re-classify, sweep), ``pipeline`` (what a
classification task does, callable without Celery), ``model_cache`` (one Predictor per process),
``jobs`` (ingest, retry and sweep as commands run them) and ``queue`` (queue depth, workers).
With no broker configured the same tasks run in-process, so the embedded set-up needs no Redis.
"""

__all__: list[str] = []
