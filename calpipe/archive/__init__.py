"""The versioned product archive, its file-lookup database, and quicklook images.

``Archive`` (:mod:`calpipe.archive.archive`) stores products by root name in versioned
folders with a SQLAlchemy database; :func:`quicklook` (:mod:`calpipe.archive.quicklook`)
renders previews and thumbnails; :func:`write_report` (:mod:`calpipe.archive.report`)
writes a static HTML site. Names load on first use, so that importing
:mod:`calpipe.archive.checksums` (the pipeline does) stays cheap.
"""

_EXPORTS = {
    "Archive": "archive", "AddResult": "archive", "write_stale_associations": "archive",
    "ArchiveError": "db", "quicklook": "quicklook", "write_report": "report", "file_checksum": "checksums",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name):
    if name not in _EXPORTS:
        raise AttributeError(f"module 'calpipe.archive' has no attribute {name!r}")
    from importlib import import_module

    return getattr(import_module(f"calpipe.archive.{_EXPORTS[name]}"), name)
