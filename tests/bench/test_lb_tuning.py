"""The lb_tuning bench's variants and backend sets (tests/bench/lb_tuning.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

from master.lb.model import Endpoint, LbService
from tests.bench.lb_tuning import (
    CONTROL,
    VARIANTS,
    Pair,
    Run,
    backend_endpoints,
    backend_millis,
    direct_target,
    figures_for,
    haproxy_config,
    helper_pids,
    own_cpu_prefix,
    pair_order,
    parse_args,
    split_cpus,
    summarize,
)

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


def _run(rps: float, haproxy_cpu: float = 0.0, path_cpu: float = 0.0) -> Run:
    return Run(rps, int(rps * 2), haproxy_cpu, path_cpu)


def test_pairs_alternate_their_order_within_a_round_and_from_round_to_round() -> None:
    assert [pair_order(0, i)[0] for i in range(4)] == [True, False, True, False]
    assert [pair_order(1, i)[0] for i in range(4)] == [False, True, False, True]
    for r in range(3):
        for i in range(3):
            assert pair_order(r, i) in {(True, False), (False, True)}


def test_a_pair_gives_its_ratio_haproxy_cpu_per_request_and_the_cpu_model_ratio() -> None:
    # Direct: 1000 req/s over 2 s, 0.4 s of path CPU = 200 us per request.
    # Proxied: 800 req/s, the path 0.32 s (200 us) plus HAProxy 0.16 s (100 us).
    pair = Pair(_run(1000, 0.0, 0.4), _run(800, 0.16, 0.32))
    assert pair.ratio == pytest.approx(0.8)
    assert pair.haproxy_us == pytest.approx(100.0)
    assert pair.model_ratio == pytest.approx(200 / 300)
    # Without the path's CPU (no cgroup readable) there is no model ratio.
    assert Pair(_run(1000), _run(800, 0.16)).model_ratio is None


def test_a_summary_is_the_median_of_the_pairs_with_the_worst_beside_it() -> None:
    pairs = [
        Pair(_run(1000, 0.0, 0.4), _run(900, 0.18, 0.36)),  # 0.9, 100 us
        Pair(_run(500, 0.0, 0.2), _run(250, 0.1, 0.1)),  # 0.5, 200 us
        Pair(_run(400, 0.0, 0.16), _run(440, 0.132, 0.176)),  # 1.1, 150 us
    ]
    s = summarize(pairs)
    assert s.pairs == 3
    assert (s.ratio, s.ratio_worst) == pytest.approx((0.9, 0.5))
    assert (s.haproxy_us, s.haproxy_us_worst) == pytest.approx((150.0, 200.0))
    assert s.direct_rps == 500
    assert s.proxied_rps == 440
    rows = figures_for("-c16", "tcp", s)
    assert [r.unit for r in rows] == ["ratio", "req/s", "us", "ratio"]
    assert rows[0].note == "median of 3 pairs, worst 0.50"
    assert (rows[1].value, rows[1].note) == (440, "direct 500")
    # The control pair is direct against direct: no HAProxy to charge.
    assert [r.unit for r in figures_for("-c16", CONTROL, s)] == ["ratio", "req/s"]


def test_control_and_issue_15s_knobs_are_variants_the_command_line_takes() -> None:
    args = parse_args(["--variants", "control,server-close,abortonclose,prefer-last"])
    assert args.variant_names == [CONTROL, "server-close", "abortonclose", "prefer-last"]
    sock = Path("/tmp/x.sock")
    plain = set(haproxy_config(VARIANTS["threads1"], SVC, sock).splitlines())
    for name, line in [
        ("server-close", "    option http-server-close"),
        ("abortonclose", "    option abortonclose"),
        ("prefer-last", "    option prefer-last-server"),
    ]:
        assert set(haproxy_config(VARIANTS[name], SVC, sock).splitlines()) - plain == {line}
    with pytest.raises(SystemExit):
        parse_args(["--variants", "control,turbo"])


def test_pinning_sets_the_last_cpu_apart_for_the_proxy() -> None:
    assert split_cpus({0, 1}) == ({0}, 1)
    assert split_cpus({0, 2, 3}) == ({0, 2}, 3)
    assert split_cpus({0}) is None
    assert parse_args(["--pin"]).pin and not parse_args([]).pin
    assert own_cpu_prefix(1) == ["taskset", "-c", "1", "chrt", "--fifo", "1"]


def test_the_later_variants_replace_or_drop_only_their_lines() -> None:
    sock = Path("/tmp/x.sock")
    plain = set(haproxy_config(VARIANTS["threads1"], SVC, sock).splitlines())
    static = set(haproxy_config(VARIANTS["static-rr"], SVC, sock).splitlines())
    assert static ^ plain == {"    balance roundrobin", "    balance static-rr"}
    lean = set(haproxy_config(VARIANTS["http-lean"], SVC, sock).splitlines())
    assert plain - lean == {
        "    retry-on conn-failure empty-response junk-response",
        "    http-request disable-l7-retry unless { method GET HEAD OPTIONS PUT DELETE }",
        "    option forwardfor",
    }
    assert lean <= plain
    low = set(haproxy_config(VARIANTS["low-latency"], SVC, sock).splitlines())
    assert low - plain == {"    tune.sched.low-latency on"}


def test_logging_edge_triggered_polling_and_no_checks_are_variants() -> None:
    sock = Path("/tmp/x.sock")
    plain = set(haproxy_config(VARIANTS["threads1"], SVC, sock).splitlines())
    log = set(haproxy_config(VARIANTS["log"], SVC, sock).splitlines())
    assert "    log stderr format raw local0 info" in log - plain
    edge = set(haproxy_config(VARIANTS["edge"], SVC, sock).splitlines())
    assert edge - plain == {"    expose-experimental-directives", "    tune.fd.edge-triggered on"}
    (server,) = [
        line
        for line in haproxy_config(VARIANTS["nocheck"], SVC, sock).splitlines()
        if "default-server" in line
    ]
    assert " check" not in server and " inter " in server


def test_the_path_counts_each_backends_shim_and_overlay_mount_but_no_one_elses() -> None:
    ours, other = "a" * 64, "b" * 64
    merged = "/var/lib/docker/fuse-overlayfs/1234/merged"
    procs = [
        (10, ["/usr/bin/containerd-shim-runc-v2", "-namespace", "moby", "-id", ours]),
        (11, ["/usr/bin/containerd-shim-runc-v2", "-namespace", "moby", "-id", other]),
        (12, ["fuse-overlayfs", "-o", "lowerdir=/l,upperdir=/u", merged]),
        (13, ["fuse-overlayfs", "-o", "lowerdir=/l", "/var/lib/docker/fuse-overlayfs/9/merged"]),
        (14, ["nginx", "-id", ours]),
        (15, []),
    ]
    assert helper_pids(procs, [ours], [merged]) == [10, 12]
    # A container whose driver reports no merged dir matches no mount.
    assert helper_pids(procs, [ours], [""]) == [10]


def test_pod_ip_variants_send_to_the_pods_own_ips_and_the_rest_to_published_ports() -> None:
    ports, ips = [32768, 32769], ["172.17.0.5", "172.17.0.6"]

    published = backend_endpoints(VARIANTS["threads1"], ports, ips)
    own = backend_endpoints(VARIANTS["podip"], ports, ips)

    assert [(e.address, e.port) for e in published] == [("127.0.0.1", 32768), ("127.0.0.1", 32769)]
    assert [(e.address, e.port) for e in own] == [("172.17.0.5", 80), ("172.17.0.6", 80)]
    assert VARIANTS["tcp-podip"].pod_ip and VARIANTS["tcp-podip"].mode == "tcp"
    # The pod-IP variant differs from threads1 in its servers only, not in its config.
    assert VARIANTS["podip"].settings == VARIANTS["threads1"].settings


def test_the_direct_side_is_the_published_port_unless_asked_for_the_pod_ip() -> None:
    assert parse_args([]).direct == "published"
    assert direct_target(parse_args([]).direct, 32768, "172.17.0.5") == ("127.0.0.1", 32768)
    args = parse_args(["--direct", "pod-ip", "--variants", "control,direct-podip,podip"])
    assert direct_target(args.direct, 32768, "172.17.0.5") == ("172.17.0.5", 80)
    assert args.variant_names == ["control", "direct-podip", "podip"]
    with pytest.raises(SystemExit):
        parse_args(["--direct", "host"])


def test_the_bare_pod_ip_side_gets_no_haproxy_rows() -> None:
    pair = Pair(Run(1000.0, 2000, 0.0, 1.0), Run(1200.0, 2400, 0.0, 1.0))

    rows = figures_for("[500m x1] -c16", "direct-podip", summarize([pair]))

    assert [f.name for f in rows] == [
        "[500m x1] -c16 direct-podip / direct",
        "[500m x1] -c16 direct-podip req/s",
    ]
