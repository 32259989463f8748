"""Background processing: the Celery app, its thin tasks, and the model they load once.

``app`` (the Celery application), ``tasks`` (classify, re-classify, sweep, and the
``CeleryDispatcher`` that sends them), ``pipeline`` (what a classification task does, callable
without Celery), ``model_cache`` (one Predictor per process), ``queue`` (queue depth, workers) and
``dispatch`` (the dispatcher each entry point hands to services: Celery messages with a broker,
else the same pipeline code on a background thread of this process, so the embedded set-up needs
no Redis).
"""

__all__: list[str] = []
