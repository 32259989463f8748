"""The one exception hierarchy of catalog_ai.

Every error a user can cause derives from :class:`CatalogAIError`; its message names the bad value
and, where there is one, the fix. The command line prints these without a traceback.
"""

from __future__ import annotations

__all__ = [
    "BackboneError",
    "CatalogAIError",
    "ConfigError",
    "DatabaseError",
    "DatasetError",
    "EvaluationError",
    "ImageError",
    "ImportFolderError",
    "PluginError",
    "TaxonomyError",
]


class CatalogAIError(Exception):
    """Base class of every error catalog_ai raises on purpose."""


class ConfigError(CatalogAIError):
    """A setting (environment variable or option) has a value that cannot work."""


def printable(text: str) -> str:
    """``text`` with every non-printable character (ESC, NUL, bidi overrides, ...) written as a
    Python escape, so that a message quoting a file's content cannot drive the terminal."""
    if text.isprintable():
        return text
    return "".join(ch if ch.isprintable() else ascii(ch)[1:-1] for ch in text)


class TaxonomyError(CatalogAIError):
    """A category tree file or folder is malformed.

    ``source`` and ``line`` say where; both are part of the message (the source escaped: a file
    or folder name can hold control characters too).
    """

    def __init__(self, message: str, *, source: str | None = None, line: int | None = None):
        self.source = source
        self.line = line
        self.reason = message
        where = ""
        if source is not None:
            shown = printable(source)
            where = f"{shown}:{line}: " if line is not None else f"{shown}: "
        super().__init__(f"{where}{message}")


class ImageError(CatalogAIError):
    """A photo cannot be used: unreadable, corrupt, truncated, too large or not an image."""

    def __init__(self, message: str, *, source: str | None = None):
        self.source = source
        self.reason = message
        super().__init__(f"{source}: {message}" if source else message)


class BackboneError(CatalogAIError):
    """A backbone is unknown, cannot be built, or its weights are not available."""


class PluginError(BackboneError):
    """A backbone plugin failed to import or to validate.

    Names the distribution (the installed package) and the entry point so the user knows which
    package to fix, upgrade or uninstall.
    """

    def __init__(self, *, distribution: str, entry_point: str, cause: str):
        self.distribution = distribution
        self.entry_point = entry_point
        self.cause = cause
        super().__init__(
            f"backbone plugin {entry_point!r} from distribution {distribution!r} is broken: {cause}"
        )


class DatabaseError(CatalogAIError):
    """The catalog database is unreachable or not at the expected schema revision."""


class ImportFolderError(CatalogAIError):
    """A folder given for import does not exist or holds nothing importable."""


class DatasetError(CatalogAIError):
    """A dataset could not be fetched or does not have the expected layout."""


class EvaluationError(CatalogAIError):
    """Evaluation inputs do not fit together (array shapes, taxonomy, thresholds, photo list)."""
