"""The local reference-file store: a folder of ASDF reference files with an index."""

from .store import INDEX_NAME, MissingReferenceError, RefStore, find_store

__all__ = ["INDEX_NAME", "MissingReferenceError", "RefStore", "find_store"]
