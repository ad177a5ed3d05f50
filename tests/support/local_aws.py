"""S3 and SQS for the function's containers: moto's server on the Docker bridge's host address,
a network the test run itself created, so `sam local` functions reach it and nothing else.

Finding that address: `docker network inspect bridge` reports it as the IPAM Gateway, except on
an engine whose bridge did not exist before it started (Debian's dockerd 20.10 then reports only
the Subnet). So: the IPAM Gateway, else the bridge interface's IPv4 address, else the subnet's
first host (the address Docker gives the bridge); the first of these bound on this host wins.
"""

from __future__ import annotations

import ipaddress
import json
import socket
import subprocess
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import boto3
from moto.server import ThreadedMotoServer

from tests.support.docker_engine import DockerEngine
from tests.support.runtime_emulator import free_port

DEFAULT_BRIDGE = "docker0"


@dataclass(frozen=True)
class Candidate:
    source: str  # where the address came from, for the error message
    address: str | None  # None: that source gave none
    note: str = ""  # why it gave none


def bridge_interface(network: Mapping[str, Any]) -> str:
    """The Linux bridge behind a Docker bridge network (docker0 unless the network names another)."""
    return str((network.get("Options") or {}).get("com.docker.network.bridge.name") or DEFAULT_BRIDGE)


def _ipv4_configs(network: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    configs = (network.get("IPAM") or {}).get("Config") or []
    return [c for c in configs if c.get("Subnet") and ipaddress.ip_network(c["Subnet"], strict=False).version == 4]


def ipam_gateway(network: Mapping[str, Any]) -> str | None:
    return next((str(c["Gateway"]) for c in _ipv4_configs(network) if c.get("Gateway")), None)


def subnet_first_host(network: Mapping[str, Any]) -> str | None:
    """Docker's default gateway for a subnet without one: its first usable address."""
    configs = _ipv4_configs(network)
    if not configs:
        return None
    return str(next(ipaddress.ip_network(configs[0]["Subnet"], strict=False).hosts()))


def interface_ipv4(ip_addr_json: Sequence[Mapping[str, Any]], name: str) -> str | None:
    """The first IPv4 address of interface NAME in `ip -4 -j addr show` output."""
    for link in ip_addr_json:
        if link.get("ifname") == name:
            for info in link.get("addr_info") or []:
                if info.get("family") == "inet" and info.get("local"):
                    return str(info["local"])
    return None


def gateway_candidates(network: Mapping[str, Any], ip_addr_json: Sequence[Mapping[str, Any]]) -> list[Candidate]:
    """The bridge's host address from each source, in the order they are trusted."""
    name = bridge_interface(network)
    subnets = ", ".join(c["Subnet"] for c in _ipv4_configs(network)) or "none"
    gateway, on_link, first = ipam_gateway(network), interface_ipv4(ip_addr_json, name), subnet_first_host(network)
    return [
        Candidate("IPAM Gateway", gateway, "" if gateway else f"not reported (IPv4 subnets: {subnets})"),
        Candidate(f"address of interface {name}", on_link, "" if on_link else "no IPv4 address on this host"),
        Candidate(f"first host of the IPAM Subnet {subnets}", first, "" if first else "no IPv4 subnet"),
    ]


def bind_error(address: str) -> str | None:
    """None when ADDRESS is one of this host's addresses and a socket can bind it, else why not.

    A bind alone proves nothing on a host with net.ipv4.ip_nonlocal_bind=1, which binds any address;
    so the kernel is also asked which source it would use to reach ADDRESS (a UDP connect sends
    nothing): only for one of its own addresses is that ADDRESS itself.
    """
    try:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
            probe.connect((address, 9))
            source = probe.getsockname()[0]
        if source != address:
            return f"this host reaches it from {source}: it is not one of the host's addresses"
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            sock.bind((address, 0))
    except OSError as err:
        return str(err)
    return None


def first_bound(candidates: list[Candidate]) -> str:
    """The first candidate address bound on this host; otherwise an error naming every try."""
    tried = []
    for candidate in candidates:
        if candidate.address is None:
            tried.append(f"{candidate.source}: {candidate.note}")
            continue
        error = bind_error(candidate.address)
        if error is None:
            return candidate.address
        tried.append(f"{candidate.source}: {candidate.address} is not bound on this host ({error})")
    raise RuntimeError(
        "no host address on Docker's bridge network, so the containers could not reach a local server. Tried: "
        + "; ".join(tried)
    )


def _ip_addr_json(name: str) -> list[Mapping[str, Any]]:
    try:
        done = subprocess.run(["ip", "-4", "-j", "addr", "show", "dev", name], capture_output=True, text=True)
    except OSError:  # no iproute2: the other sources remain
        return []
    return list(json.loads(done.stdout)) if done.returncode == 0 and done.stdout.strip() else []


def bridge_gateway(engine: DockerEngine) -> str:
    """The host's address on ENGINE's default bridge network, checked to be bound here."""
    network = json.loads(engine.run("network", "inspect", "bridge").stdout)[0]
    return first_bound(gateway_candidates(network, _ip_addr_json(bridge_interface(network))))


@dataclass
class LocalAws:
    server: ThreadedMotoServer
    endpoint: str

    def client(self, service: str) -> Any:
        return boto3.client(
            service,
            endpoint_url=self.endpoint,
            region_name="us-east-1",
            aws_access_key_id="testing",
            aws_secret_access_key="testing",
        )

    def stop(self) -> None:
        self.server.stop()


def start_local_aws(address: str) -> LocalAws:
    port = free_port()
    server = ThreadedMotoServer(ip_address=address, port=port, verbose=False)
    server.start()
    return LocalAws(server, f"http://{address}:{port}")
