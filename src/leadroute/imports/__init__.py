"""Importing lead files into a running service: ``leadroute leads import FILE`` (CSV or JSONL).

Public API::

    import_file(path, fmt, url=, key=, batch_size=, out=, progress=) -> ImportReport
    detect_format(path, given) -> "csv" | "jsonl"
    read_rows(path, fmt), derived_key(file_name, lead)    the file side, without HTTP

The rows go to ``POST /v1/leads:batch`` over HTTP, like any other client's, so an import is
authorized, rate-limited, scored, routed and logged exactly as leads posted one by one.
"""

from leadroute.imports._post import ATTEMPTS, MAX_REQUEST_BYTES, ImportReport, import_file
from leadroute.imports._read import Format, Row, count_rows, derived_key, detect_format, read_rows

__all__ = [
    "ATTEMPTS",
    "MAX_REQUEST_BYTES",
    "Format",
    "ImportReport",
    "Row",
    "count_rows",
    "derived_key",
    "detect_format",
    "import_file",
    "read_rows",
]
