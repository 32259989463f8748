"""The HTTP API of catalog_ai (FastAPI, version prefix ``/v1``); served by ``catalog-ai api``."""
