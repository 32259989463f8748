"""The Streamlit review dashboard: ``catalog-ai dashboard`` runs ``dashboards/app.py``.

It reads and changes the catalog only through :mod:`catalog_ai.services` (one ``unit_of_work``
per action) and never imports training code.
"""

__all__: list[str] = []
