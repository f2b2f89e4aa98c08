"""Where requests made on a user's behalf may go: an operator's allow-list, checked after DNS.

A connector's store URL, an embedding endpoint, a database to observe: the user picks the address,
the platform connects from inside the network. Without a check that is a way to reach the cloud's
metadata service (169.254.169.254), the platform's own Redis or PostgreSQL on loopback, or any host
of the private network (server-side request forgery).

- A destination must be allowed: by the operator in `AIETL_OUTBOUND_ALLOWED_HOSTS` (comma-separated
  `host`, `host:port`, `*.domain`, an IP address or a CIDR network, each with an optional `:port`;
  `*` for any host with public addresses), or because the operator configured it at start-up
  (MILVUS_HOST, WEAVIATE_URL, CLICKHOUSE_HOST, ...), or Pinecone's own public HTTPS endpoints.
  Nothing else by default.
- Its name is resolved and every address checked: a loopback, private, link-local (metadata),
  shared, reserved or multicast address passes only when an IP entry covers it or the operator named
  exactly that host; a name matched by a wildcard must resolve to public addresses only.
- `connect_address` gives the address that was checked, so a plaintext client connects to exactly
  it (a second resolution could answer differently: DNS rebinding). TLS clients keep the name: the
  certificate must match it, and no request is sent to a server that cannot prove it.
- Refusals name the host and the rule, never anything a remote server said.
- Local paths given by users (Milvus Lite files, SQLite databases) must stay inside the data directory.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from aietl.shared.settings import Settings

if TYPE_CHECKING:
    import httpx

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
DEFAULT_PORTS = {"http": 80, "https": 443, "grpc": 80, "grpcs": 443, "tcp": 80}
# Pinecone is a public service whose connector configuration names no host (the specification's
# `{"type": "pinecone", "api_key": ..., "index_name": ...}`): its own HTTPS endpoints are always
# allowed, and being a wildcard entry, only while they resolve to public addresses.
PINECONE_HOSTS = ("api.pinecone.io:443", "*.pinecone.io:443")


class OutboundRefused(ValueError):
    """A destination the policy does not allow; the message names the host and why."""


class Unresolved(OutboundRefused):
    """An allowed name that does not resolve (now): nothing can be reached, nothing was."""


class PathRefused(ValueError):
    """A local path outside the directory it must stay in."""


@dataclass(frozen=True)
class Destination:
    """A checked destination: `host` as given, `port`, and the addresses it resolved to."""

    host: str
    port: int
    addresses: tuple[str, ...]

    @property
    def connect_address(self) -> str:
        """The first checked address, as a URL host (IPv6 in brackets)."""
        address = self.addresses[0]
        return f"[{address}]" if ":" in address else address


def _ip(text: str) -> IPAddress | None:
    try:
        return ipaddress.ip_address(text.strip("[]"))
    except ValueError:
        return None


def _special(address: IPAddress) -> bool:
    """Not a public internet address: loopback, private, link-local, shared, reserved, multicast..."""
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return _special(address.ipv4_mapped)
    return not address.is_global or address.is_multicast


@dataclass(frozen=True)
class _Entry:
    host: str | None = None  # exact name (lower case)
    suffix: str | None = None  # "*.example.com" -> ".example.com"
    network: IPNetwork | None = None
    port: int | None = None  # None: any port

    def covers_name(self, host: str, port: int) -> bool:
        if self.port is not None and self.port != port:
            return False
        if self.host is not None:
            return self.host == host
        return self.suffix is not None and host.endswith(self.suffix)

    def covers_address(self, address: IPAddress, port: int) -> bool:
        if self.port is not None and self.port != port:
            return False
        return (
            self.network is not None and address.version == self.network.version and address in self.network
        )


def _split_port(text: str) -> tuple[str, int | None]:
    """`host`, `host:port`, `[v6]:port`, `v6`, `cidr` -> (host, port)."""
    if text.startswith("["):
        host, _, rest = text[1:].partition("]")
        return host, int(rest[1:]) if rest.startswith(":") else None
    if text.count(":") == 1:
        host, _, port = text.partition(":")
        return host, int(port)
    return text, None


def parse_entry(text: str) -> _Entry:
    """One allow-list entry; raises ValueError naming what is wrong with it."""
    raw = text.strip().lower()
    try:
        host, port = _split_port(raw)
    except ValueError:
        raise ValueError(f"outbound allow-list entry {text!r}: the port is not a number") from None
    if not host:
        raise ValueError(f"outbound allow-list entry {text!r} is empty")
    if "/" in host:
        try:
            return _Entry(network=ipaddress.ip_network(host, strict=False), port=port)
        except ValueError:
            raise ValueError(f"outbound allow-list entry {text!r} is not a CIDR network") from None
    address = _ip(host)
    if address is not None:
        return _Entry(network=ipaddress.ip_network(address), port=port)
    if host == "*":
        return _Entry(suffix="", port=port)
    if host.startswith("*."):
        return _Entry(suffix=host[1:], port=port)
    return _Entry(host=host.rstrip("."), port=port)


def _url_entry(url: str | None, default_port: int | None = None) -> str | None:
    """`host:port` of a configured URL (a bare host with `default_port`)."""
    if not url:
        return None
    parts = urlsplit(url if "://" in url else f"//{url}")
    if not parts.hostname:
        return None
    port = parts.port or DEFAULT_PORTS.get(parts.scheme) or default_port
    host = f"[{parts.hostname}]" if ":" in parts.hostname else parts.hostname
    return host if port is None else f"{host}:{port}"


def configured_entries(settings: Settings) -> list[str]:
    """The destinations the operator configured at start-up: users may point connectors at them."""
    entries = [
        _url_entry(settings.milvus_host, settings.milvus_port) if settings.milvus_host else None,
        _url_entry(settings.weaviate_url),
        _url_entry(settings.clickhouse_host, settings.clickhouse_port) if settings.clickhouse_host else None,
        _url_entry(settings.clickhouse_dsn, 8123),
        _url_entry(settings.drift_llm_url),
    ]
    return [entry for entry in [*entries, *PINECONE_HOSTS] if entry]


class OutboundPolicy:
    """The allow-list of one process; `check` resolves and verifies a destination (blocking)."""

    def __init__(self, entries: Iterable[str]) -> None:
        self.entries = [parse_entry(entry) for entry in entries if entry.strip()]

    @classmethod
    def from_settings(cls, settings: Settings) -> OutboundPolicy:
        return cls([*settings.outbound_allowed_hosts, *configured_entries(settings)])

    def check(self, host: str, port: int) -> Destination:
        """Refuse unless `host:port` is allowed and every address it resolves to may be reached."""
        name = host.strip("[]").lower().rstrip(".")
        if not name:
            raise OutboundRefused("no host given")
        literal = _ip(name)
        if literal is not None:
            if not (self._covers(literal, port) or (self._any_public(port) and not _special(literal))):
                raise OutboundRefused(
                    f"host {name} port {port} is not allowed (AIETL_OUTBOUND_ALLOWED_HOSTS)"
                )
            return Destination(name, port, (str(literal),))
        exact = any(entry.host is not None and entry.covers_name(name, port) for entry in self.entries)
        if not (exact or any(entry.covers_name(name, port) for entry in self.entries)):
            raise OutboundRefused(f"host {name} port {port} is not allowed (AIETL_OUTBOUND_ALLOWED_HOSTS)")
        addresses = self._resolve(name, port)
        for address in addresses:
            if _special(address) and not (exact or self._covers(address, port)):
                raise OutboundRefused(
                    f"host {name} resolves to a loopback, private or link-local address; "
                    "only the operator can allow that (AIETL_OUTBOUND_ALLOWED_HOSTS)"
                )
        return Destination(name, port, tuple(str(address) for address in addresses))

    def _covers(self, address: IPAddress, port: int) -> bool:
        return any(entry.covers_address(address, port) for entry in self.entries)

    def _any_public(self, port: int) -> bool:
        """A `*` entry: any host with public addresses only."""
        return any(entry.suffix == "" and entry.covers_name("", port) for entry in self.entries)

    def check_url(self, url: str, default_port: int | None = None) -> Destination:
        """`check` for the host and port of a URL (`default_port` when the URL and scheme have none)."""
        try:
            parts = urlsplit(url if "://" in url else f"//{url}")
            port = parts.port
        except ValueError:
            raise OutboundRefused("the URL cannot be parsed") from None
        if not parts.hostname:
            raise OutboundRefused("the URL names no host")
        port = port or DEFAULT_PORTS.get(parts.scheme.lower()) or default_port
        if port is None:
            raise OutboundRefused(f"the URL of {parts.hostname} names no port")
        return self.check(parts.hostname, port)

    async def check_url_async(self, url: str, default_port: int | None = None) -> Destination:
        """`check_url` with the DNS lookup off the event loop."""
        return await asyncio.to_thread(self.check_url, url, default_port)

    @staticmethod
    def _resolve(name: str, port: int) -> list[IPAddress]:
        try:
            infos = socket.getaddrinfo(name, port, type=socket.SOCK_STREAM)
        except (socket.gaierror, UnicodeError):
            raise Unresolved(f"host {name} cannot be resolved") from None
        found = list(dict.fromkeys(str(info[4][0]) for info in infos))
        addresses = [address for text in found if (address := _ip(text.split("%")[0])) is not None]
        if not addresses:
            raise Unresolved(f"host {name} cannot be resolved")
        return addresses


def checked_transport(policy: OutboundPolicy) -> httpx.HTTPTransport:
    """An httpx transport whose every TCP connection is checked by `policy` and made to the address
    the check resolved (TLS still verifies the certificate against the name). Environment proxies do
    not apply to a client given an explicit transport, so none can route around it."""
    import httpcore
    import httpx

    class CheckedBackend(httpcore.SyncBackend):
        def connect_tcp(
            self,
            host: str,
            port: int,
            timeout: float | None = None,
            local_address: str | None = None,
            socket_options: Iterable[Any] | None = None,
        ) -> httpcore.NetworkStream:
            try:
                address = policy.check(host, port).addresses[0]
            except OutboundRefused as refused:
                raise httpcore.ConnectError(str(refused)) from None
            return super().connect_tcp(address, port, timeout, local_address, socket_options)

    transport = httpx.HTTPTransport()
    # httpx builds its connection pool without a way to pass the network backend: replace it.
    transport._pool = httpcore.ConnectionPool(
        ssl_context=httpx.create_ssl_context(), network_backend=CheckedBackend()
    )
    return transport


def pinned_url(url: str, destination: Destination) -> str:
    """`url` with its host replaced by the checked address, for plaintext clients."""
    parts = urlsplit(url)
    netloc = f"{destination.connect_address}:{destination.port}"
    if parts.username or parts.password:
        credentials = parts.netloc.rpartition("@")[0]
        netloc = f"{credentials}@{netloc}"
    return parts._replace(netloc=netloc).geturl()


DATABASE_QUERY_KEYS = frozenset({"ssl", "sslmode", "application_name", "connect_timeout"})


def checked_database_url(url: str, policy: OutboundPolicy, settings: Settings) -> str:
    """A PostgreSQL or SQLite URL a user gave (to read schemas from), made safe to connect to: the
    server's host checked and pinned to the checked address; a SQLite file inside the data directory
    and not the platform's own database. Query parameters that could move the connection elsewhere
    (`host=`, `hostaddr=`, SQLite's `uri=true`) are refused. Blocking (DNS): call it in a thread."""
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    try:
        parsed = make_url(url)
    except (ArgumentError, ValueError):
        raise OutboundRefused("the URL cannot be parsed") from None
    if parsed.get_backend_name() == "sqlite":
        if parsed.query:
            raise OutboundRefused("a SQLite URL takes no parameters")
        path = inside(settings.data_dir, parsed.database or "")
        own = make_url(settings.resolved_database_url)
        if own.get_backend_name() == "sqlite" and own.database and Path(own.database).resolve() == path:
            raise PathRefused("the platform's own database cannot be read this way")
        return parsed.set(database=str(path)).render_as_string(hide_password=False)
    unknown = sorted(set(parsed.query) - DATABASE_QUERY_KEYS)
    if unknown:
        raise OutboundRefused(f"URL parameter {unknown[0]!r} is not accepted")
    if not parsed.host:
        raise OutboundRefused("the URL names no host")
    destination = policy.check(parsed.host, parsed.port or 5432)
    pinned = parsed.set(host=destination.addresses[0], port=destination.port)
    return pinned.render_as_string(hide_password=False)


def inside(root: Path, path: str | Path) -> Path:
    """`path` (relative paths taken from `root`) resolved, symbolic links followed; refused unless it
    lies inside `root`."""
    base = root.resolve()
    candidate = Path(path).expanduser()
    resolved = (candidate if candidate.is_absolute() else base / candidate).resolve()
    if resolved != base and base not in resolved.parents:
        raise PathRefused("a local path must stay inside the data directory")
    return resolved
