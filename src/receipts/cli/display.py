"""What the command line prints about a ledger."""

from __future__ import annotations

from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit


def shown_url(url: str) -> str:
    """A database URL fit to print: a password (in the user part or the query) is ``***``."""
    if "://" not in url or url.startswith("sqlite:"):
        return url  # a file path: nothing secret (and urlunsplit would respell it)
    parts = urlsplit(url)
    if parts.password is not None:
        host = parts.netloc.rpartition("@")[2]
        parts = parts._replace(netloc=f"{parts.username or ''}:***@{host}")
    query = parse_qsl(parts.query, keep_blank_values=True)
    if any(key == "password" for key, _ in query):
        hidden = [(k, "***" if k == "password" else v) for k, v in query]
        parts = parts._replace(query=urlencode(hidden, safe="*"))
    return urlunsplit(parts)
