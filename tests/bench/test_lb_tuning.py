"""The lb_tuning bench's variants and backend sets (tests/bench/lb_tuning.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

from master.lb.model import Endpoint, LbService
from tests.bench.lb_tuning import VARIANTS, backend_millis, haproxy_config, parse_args

SVC = LbService("web", "http", 8080, (Endpoint("web-0", "127.0.0.1", 32768, True),), mode="http")


def test_each_variant_adds_its_lines_where_haproxy_reads_them() -> None:
    sock = Path("/tmp/x.sock")
    plain = haproxy_config(VARIANTS["threads1"], SVC, sock).splitlines()
    assert "    nbthread 1" in plain
    reuse = haproxy_config(VARIANTS["reuse-always"], SVC, sock).splitlines()
    assert reuse[reuse.index("defaults") + 1] == "    http-reuse always"
    buf = haproxy_config(VARIANTS["bufsize8k"], SVC, sock).splitlines()
    assert buf[buf.index("global") + 1] == "    tune.bufsize 8192"
    (server,) = [
        line
        for line in haproxy_config(VARIANTS["srvmaxconn16"], SVC, sock).splitlines()
        if "default-server" in line
    ]
    assert server.endswith(" maxconn 16")
    assert "    maxconn 8192" in haproxy_config(VARIANTS["maxconn8k"], SVC, sock).splitlines()
    # Nothing else changes: the variant's lines are the whole difference.
    assert set(reuse) - set(plain) == {"    http-reuse always"}


def test_tcp_variants_render_the_port_at_layer_4_and_http_ones_can_drop_a_feature() -> None:
    sock = Path("/tmp/x.sock")
    plain = haproxy_config(VARIANTS["threads1"], SVC, sock).splitlines()
    tcp = haproxy_config(VARIANTS["tcp"], SVC, sock).splitlines()
    assert "    mode http" in plain and "    mode http" not in tcp
    assert "    option forwardfor" not in tcp
    splice = haproxy_config(VARIANTS["tcp-splice"], SVC, sock).splitlines()
    assert set(splice) - set(tcp) == {"    option splice-auto"}
    noretry = haproxy_config(VARIANTS["http-noretry"], SVC, sock).splitlines()
    assert set(plain) - set(noretry) == {
        "    retry-on conn-failure empty-response junk-response",
        "    http-request disable-l7-retry unless { method GET HEAD OPTIONS PUT DELETE }",
    }
    nofwd = haproxy_config(VARIANTS["http-nofwd"], SVC, sock).splitlines()
    assert set(plain) - set(nofwd) == {"    option forwardfor"}
    assert "    cpu-map 1/1 1" in haproxy_config(VARIANTS["cpumap"], SVC, sock).splitlines()


def test_backend_sets_are_unlimited_or_a_cpu_limit() -> None:
    assert [backend_millis(b) for b in ("unlimited", "500m", "1", "0.25")] == [0, 500, 1000, 250]
    for bad in ("0m", "fast", "-1"):
        with pytest.raises(ValueError):
            backend_millis(bad)
    assert parse_args(["--backends", "500m"]).backend_millis == [500]
    with pytest.raises(SystemExit):
        parse_args(["--backends", "lots"])
