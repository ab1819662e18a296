"""Store URLs: which engine a URL names, the URL without its password, and why it would not connect."""

from __future__ import annotations

import re
from urllib.parse import quote, urlsplit

from packproof.errors import ConfigError


def engine_of(url: str) -> str:
    scheme = url.partition("://")[0] if "://" in url else "sqlite"
    if scheme in ("postgresql", "postgres"):
        return "postgresql"
    if scheme == "sqlite":
        return "sqlite"
    raise ConfigError(f"store URL {redact(url)!r}: unknown scheme {scheme!r}; "
                      "use sqlite:///path or postgresql://host/db")


def redact(url: str) -> str:
    """The URL without its password (in the authority or a libpq `password=` parameter), for logs and errors.

    Robust to a password pasted in raw (not percent-encoded): everything between `user:` and the
    last `@` is masked, even when a `/`, `@` or `:` of the password would make a URL parser put
    part of it in the host, port or path. Masking too much (an `@` later in the URL) is the safe error.
    """
    scheme, sep, rest = url.partition("://")
    if not sep:
        return url  # a bare path: SQLite
    userinfo, at, tail = rest.rpartition("@")
    if at and ":" in userinfo:
        rest = f"{userinfo.partition(':')[0]}:***@{tail}"
    return scheme + sep + _PASSWORD_PARAM.sub(r"\1***", rest)


_PASSWORD_PARAM = re.compile(r"(?i)([?&]password=)[^&#]*")
_BAD_ESCAPE = re.compile(r"%(?![0-9A-Fa-f]{2})")


def url_problem(url: str) -> str | None:
    """Why a PostgreSQL URL would not reach the server it names (None: it parses), without echoing it.

    The usual cause is a password put in raw: `postgresql://app:p/w@d@db/app` sends libpq to the
    wrong host, port or database, with part of the password in its error message.
    """
    parts = urlsplit(url)
    try:
        parts.port  # noqa: B018  # a port that is not a number raises
    except ValueError:
        return "its port is not a number"
    if "@" in parts.path or "@" in parts.query or "@" in parts.fragment:
        return "an '@' after the host"
    if _BAD_ESCAPE.search(url):
        return "a '%' that is not a percent-encoded byte"
    return None


def with_password(url: str, password: str) -> str:
    """The PostgreSQL URL with `password` as a libpq `password=` parameter, percent-encoded: any
    character reaches libpq as it is, and `redact` masks it. The password is a setting of its own
    (PACKPROOF_STORE_PASSWORD), so nobody has to encode it into the URL by hand."""
    return f"{url}{'&' if '?' in url else '?'}password={quote(password, safe='')}"
