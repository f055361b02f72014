"""Account domains: a host name to the registrable domain a company owns.

Account-owner routing groups leads by ``company_domain``, so ``y@sales.acme.example``,
``https://www.acme.example`` and ``shop.acme.example`` must all become ``acme.example``, and
``shop.acme.co.uk`` must become ``acme.co.uk`` (not ``co.uk``). That needs the Public Suffix List
(PSL): :func:`registrable_domain` is the PSL's "registrable domain", the public suffix plus one
label, computed by ``tldextract`` from the copy of the list bundled in its wheel.

No network, ever: the extractor is built with no suffix-list URLs and no cache directory, which
``tldextract``'s documentation gives as the way to use only the bundled snapshot. The list moves
with the ``tldextract`` version in ``requirements.lock``, so a new suffix arrives with an upgrade.

Choices, each tested in ``tests/test_intake.py``:

- PSL private entries count (``github.io``, ``herokuapp.com``, ``myshopify.com``): two companies
  hosted on ``github.io`` are two accounts, ``acme.github.io`` and ``globex.github.io``.
- A suffix the list does not know (``.example``, ``.internal``, a TLD newer than the snapshot) is
  one label, as the PSL algorithm's default rule ``*`` says: ``sales.acme.example`` →
  ``acme.example``.
- A host that is itself a public suffix (``co.uk``, ``github.io``) has no registrable domain.
- Internationalized names are compared in one form, lower-case Unicode (IDNA 2008 with UTS 46
  mapping, as email-validator stores an address's domain): ``xn--bcher-kva.de``, ``BÜCHER.de``
  and ``bücher.de`` are one account, ``bücher.de``.
- IP literals, ``localhost`` and other one-label names are not websites (:func:`canonical_host`).
"""

from __future__ import annotations

import functools

import idna
import tldextract

__all__ = ["canonical_host", "registrable_domain"]

_PSL = tldextract.TLDExtract(
    cache_dir=None,  # no cache file: nothing written, nothing read but the bundled snapshot
    suffix_list_urls=(),  # never fetch the list over HTTP
    fallback_to_snapshot=True,
    include_psl_private_domains=True,
)


@functools.lru_cache(maxsize=4096)
def canonical_host(host: str) -> str | None:
    """``host`` as accounts compare it (lower-case Unicode, no trailing dot), or None when it is
    not a public host name: not valid IDNA, a single label (``localhost``), or an IP address."""
    host = host.rstrip(".")
    try:
        canonical: str = idna.decode(idna.encode(host, uts46=True))
    except (idna.IDNAError, UnicodeError):
        return None
    labels = canonical.split(".")
    if len(labels) < 2 or labels[-1].isdigit():  # one label, or an IPv4 address (IPv6 fails IDNA)
        return None
    return canonical


@functools.lru_cache(maxsize=4096)
def registrable_domain(host: str) -> str | None:
    """The registrable domain of a :func:`canonical_host` result: ``shop.acme.co.uk`` →
    ``acme.co.uk``; None when ``host`` is itself a public suffix (``co.uk``)."""
    parts = _PSL(host)
    if parts.suffix:
        return f"{parts.domain}.{parts.suffix}" if parts.domain else None
    # the PSL's default rule "*": an unknown top-level label is a public suffix of one label
    labels = host.split(".")
    return ".".join(labels[-2:]) if len(labels) >= 2 else None
