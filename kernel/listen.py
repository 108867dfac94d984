"""The HOST:PORT form of listen flags (`--metrics-listen`), one parser for master and agent."""

from __future__ import annotations


def parse_listen(value: str, flag: str = "--metrics-listen") -> tuple[str, int] | None:
    """HOST:PORT as (host, port); '' as None (off). Raises ValueError with one sentence.

    IPv6 hosts come in brackets (`[::1]:9400`), as in URLs; port 0 asks for a free port.
    """
    if value == "":
        return None
    host, sep, port = value.rpartition(":")
    host = host.removeprefix("[").removesuffix("]")
    if not sep or not host or not port.isdigit() or int(port) > 65535:
        raise ValueError(f"{flag}: expected HOST:PORT or '' (off), got {value!r}")
    return host, int(port)


def show_address(host: str, port: int) -> str:
    """host:port as people write it (IPv6 in brackets)."""
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
