"""Content checksums of files: ``sha256:<hex>``, read in 8 MiB blocks."""

import hashlib

PREFIX = "sha256:"


def file_checksum(path):
    """The SHA-256 of a file's bytes as ``sha256:<64 hex digits>``."""
    with open(path, "rb") as f:
        return PREFIX + hashlib.file_digest(f, "sha256").hexdigest()
