"""Finding the host's address on Docker's bridge, against the JSON that dockerd 20.10 (Debian
bookworm's docker.io) and `ip -4 -j addr show` really print.

The first network is what `docker network inspect bridge` said on an engine started with no
docker0 on the host: the IPAM config has no Gateway. The second is the same engine restarted,
once docker0 existed. Both were captured on a build machine; only Id and Created differ by run.
"""

from __future__ import annotations

import json
import shlex
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.support.local_aws import (
    Candidate,
    bind_error,
    bridge_interface,
    first_bound,
    gateway_candidates,
    interface_ipv4,
    ipam_gateway,
    subnet_first_host,
)

_OPTIONS = {
    "com.docker.network.bridge.default_bridge": "true",
    "com.docker.network.bridge.enable_icc": "true",
    "com.docker.network.bridge.enable_ip_masquerade": "true",
    "com.docker.network.bridge.host_binding_ipv4": "0.0.0.0",
    "com.docker.network.bridge.name": "docker0",
    "com.docker.network.driver.mtu": "1500",
}

ROOT = Path(__file__).resolve().parents[2]


def _network(ipam_config: list[dict[str, str]], options: dict[str, str] = _OPTIONS) -> dict[str, Any]:
    return {
        "Name": "bridge",
        "Id": "e856a8f1c5fe4215222cda0dcfdd6e9f281a6f4c057b34ee517c840451a91799",
        "Created": "2026-11-26T00:18:28.073669984Z",
        "Scope": "local",
        "Driver": "bridge",
        "EnableIPv6": False,
        "IPAM": {"Driver": "default", "Options": None, "Config": ipam_config},
        "Internal": False,
        "Attachable": False,
        "Ingress": False,
        "ConfigFrom": {"Network": ""},
        "ConfigOnly": False,
        "Containers": {},
        "Options": options,
        "Labels": {},
    }


# `docker network inspect bridge` on a fresh engine (no docker0 before it started) ...
FRESH = _network([{"Subnet": "172.17.0.0/16"}])
# ... and on its second start.
SECOND_START = _network([{"Subnet": "172.17.0.0/16", "Gateway": "172.17.0.1"}])

# `ip -4 -j addr show dev docker0` once dockerd created the bridge.
DOCKER0 = json.loads(
    '[{"ifindex":18,"ifname":"docker0","flags":["NO-CARRIER","BROADCAST","MULTICAST","UP"],"mtu":1500,'
    '"qdisc":"noqueue","operstate":"DOWN","group":"default","addr_info":[{"family":"inet","local":"172.17.0.1",'
    '"prefixlen":16,"broadcast":"172.17.255.255","scope":"global","label":"docker0",'
    '"valid_life_time":4294967295,"preferred_life_time":4294967295}]}]'
)
# `ip -4 -j addr show dev X` for a bridge with no IPv4 address prints an empty list.
NO_ADDRESS: list[dict[str, Any]] = []


def test_the_gateway_comes_from_ipam_when_docker_reports_it() -> None:
    assert ipam_gateway(SECOND_START) == "172.17.0.1"
    assert ipam_gateway(FRESH) is None


def test_the_bridge_interface_is_named_by_the_network_option_else_docker0() -> None:
    assert bridge_interface(FRESH) == "docker0"
    assert bridge_interface(_network([], {**_OPTIONS, "com.docker.network.bridge.name": "br-skew"})) == "br-skew"
    assert bridge_interface(_network([], {})) == "docker0"


def test_the_interface_address_is_read_from_ip_json() -> None:
    assert interface_ipv4(DOCKER0, "docker0") == "172.17.0.1"
    assert interface_ipv4(DOCKER0, "br-skew") is None
    assert interface_ipv4(NO_ADDRESS, "docker0") is None


@pytest.mark.parametrize(
    ("subnet", "first"),
    [("172.17.0.0/16", "172.17.0.1"), ("10.200.8.0/24", "10.200.8.1"), ("192.168.5.64/26", "192.168.5.65")],
)
def test_without_gateway_or_interface_docker_gives_the_subnets_first_host(subnet: str, first: str) -> None:
    assert subnet_first_host(_network([{"Subnet": subnet}])) == first


def test_ipv6_subnets_are_not_candidates() -> None:
    dual = _network([{"Subnet": "fd00:dead:beef::/64", "Gateway": "fd00:dead:beef::1"}, {"Subnet": "172.18.0.0/16"}])
    assert ipam_gateway(dual) is None
    assert subnet_first_host(dual) == "172.18.0.1"


def test_candidates_on_a_fresh_engine_fall_back_to_the_interface_then_the_subnet() -> None:
    assert gateway_candidates(FRESH, DOCKER0) == [
        Candidate("IPAM Gateway", None, "not reported (IPv4 subnets: 172.17.0.0/16)"),
        Candidate("address of interface docker0", "172.17.0.1"),
        Candidate("first host of the IPAM Subnet 172.17.0.0/16", "172.17.0.1"),
    ]


def test_candidates_on_a_second_start_begin_with_the_ipam_gateway() -> None:
    assert [c.address for c in gateway_candidates(SECOND_START, NO_ADDRESS)] == ["172.17.0.1", None, "172.17.0.1"]


def test_an_address_of_this_host_binds_and_a_documentation_address_does_not() -> None:
    assert bind_error("127.0.0.1") is None
    assert bind_error("192.0.2.1") is not None  # TEST-NET-1: never assigned to a host


def test_the_first_bound_candidate_wins() -> None:
    picked = first_bound([Candidate("IPAM Gateway", "192.0.2.1"), Candidate("address of interface lo", "127.0.0.1")])
    assert picked == "127.0.0.1"


def test_when_nothing_is_bound_the_error_names_every_source_tried() -> None:
    # The fresh engine's report on a host where the bridge has no address and the subnet's
    # first host is not ours (192.0.2.0/24 is documentation space).
    fresh_elsewhere = _network([{"Subnet": "192.0.2.0/24"}])
    with pytest.raises(RuntimeError) as raised:
        first_bound(gateway_candidates(fresh_elsewhere, NO_ADDRESS))
    message = str(raised.value)
    assert "IPAM Gateway: not reported (IPv4 subnets: 192.0.2.0/24)" in message
    assert "address of interface docker0: no IPv4 address on this host" in message
    assert "first host of the IPAM Subnet 192.0.2.0/24: 192.0.2.1 is not bound on this host" in message


def test_the_check_holds_on_a_host_that_binds_any_address() -> None:
    """With net.ipv4.ip_nonlocal_bind=1 a socket binds any address, so binding alone would call 192.0.2.1 ours.
    Run in a network namespace of its own (the sysctl is per namespace; the tests run as root), so the host's
    setting is left alone."""
    script = (
        "from tests.support.local_aws import bind_error; "
        "assert bind_error('127.0.0.1') is None; "
        "error = bind_error('192.0.2.1'); assert error is not None and 'not one of the host' in error, error; "
        "print('ok')"
    )
    command = (
        # A default route, as a real host has: 192.0.2.1 is then reachable, from another address.
        "ip link set lo up && ip route add default dev lo && echo 1 > /proc/sys/net/ipv4/ip_nonlocal_bind && "
        f'{shlex.quote(sys.executable)} -c "{script}"'
    )
    done = subprocess.run(["unshare", "--net", "sh", "-c", command], capture_output=True, text=True, cwd=ROOT)
    assert done.returncode == 0 and done.stdout.strip() == "ok", done.stderr[-2000:]
