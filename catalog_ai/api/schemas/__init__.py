"""Request and response bodies of the API (pydantic models, never ORM models), one module per
resource; :mod:`catalog_ai.api.schemas.common` holds the shapes several resources share."""
