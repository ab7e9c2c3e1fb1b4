"""Failover (``urls:``), fleets (one unreachable target fails alone) and the cluster-only
server key, with the real CLI against real incusd over HTTPS with client certificates.

An address that refuses connections is a loopback port nothing listens on; an
address whose TLS check fails is a second real daemon (its certificate is not the
pinned one).  What landed is read back with the daemon's own API.
"""

from __future__ import annotations

import json
import re
import socket

from tests.conftest import IncusdFactory
from tests.support.e2e import World
from tests.support.incusd import Incusd

TINY = "images:\n  - source: test:tiny/1.0\n    aliases: [tiny]\n"
REPLICA = "cluster.images_minimal_replica"


def closed_port() -> int:
    """A loopback port nothing listens on (bound, then closed): connections are refused."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def https_targets(world: World, name: str, urls: list[str], daemon: Incusd) -> str:
    """A ``targets:`` block: ``name`` over ``urls`` with a trusted client certificate,
    pinning ``daemon``'s certificate."""
    cert = daemon.make_client_cert(f"{name}-client")
    for file, text in ((f"{name}.crt", cert.cert_pem), (f"{name}.key", cert.key_pem),
                       (f"{name}-server.crt", daemon.server_cert_pem())):
        (world.dir / file).write_text(text)
    return (f"targets:\n  {name}:\n    urls: [{', '.join(urls)}]\n"
            f"    client_cert: {name}.crt\n    client_key: {name}.key\n"
            f"    server_cert: {name}-server.crt\n")


def test_urls_fail_over_from_a_refusing_address_to_the_daemon(world: World) -> None:
    url = world.daemon.enable_https()
    refused = f"https://127.0.0.1:{closed_port()}"
    built = world.tree.add("tiny", "1.0", "20260101_0000")
    world.write(TINY, targets=https_targets(world, "prod", [refused, url], world.daemon))
    note = (f"incus-images: note: target 'prod': via {url} ({refused} did not answer: "
            "connection refused)")

    plan = world.cli("plan", "--format", "json")
    assert plan.returncode == 0, plan.stderr
    assert plan.stderr.splitlines() == [note]
    assert json.loads(plan.stdout)["targets"] == {
        "prod": {"url": url, "passed_over": {refused: "connection refused"}}}

    apply = world.cli("apply", "--yes")
    assert apply.returncode == 0, apply.stderr
    assert note in apply.stderr.splitlines()
    assert world.aliases() == {"tiny": built.fingerprint}

    status = world.cli("status", "--format", "json")
    assert status.returncode == 0, status.stderr
    assert json.loads(status.stdout)["targets"]["prod"]["url"] == url


def test_urls_pass_over_an_address_whose_certificate_is_not_the_pinned_one(
        world: World, incusd_factory: IncusdFactory) -> None:
    other = incusd_factory()
    wrong = other.enable_https()
    url = world.daemon.enable_https()
    world.tree.add("tiny", "1.0", "20260101_0000")
    world.write(TINY, targets=https_targets(world, "prod", [wrong, url], world.daemon))
    plan = world.cli("plan")
    assert plan.returncode == 0, plan.stderr
    assert plan.stderr.startswith(f"incus-images: note: target 'prod': via {url} ({wrong} "
                                  "did not answer: TLS verification failed (not the pinned "
                                  "server_cert: ")
    assert other.api("GET", "/1.0/images?recursion=1").metadata == []


def test_no_address_answering_is_one_clear_line(world: World) -> None:
    world.daemon.enable_https()
    first, second = (f"https://127.0.0.1:{closed_port()}" for _ in range(2))
    world.tree.add("tiny", "1.0", "20260101_0000")
    world.write(TINY, targets=https_targets(world, "prod", [first, second], world.daemon))
    run = world.cli("plan")
    assert (run.returncode, run.stdout) == (1, "")
    assert run.stderr == (
        f"incus-images: error: target 'prod': none of its addresses answered ({first}: "
        f"connection refused; {second}: connection refused)\n")


def test_an_unreachable_target_fails_alone(world: World) -> None:
    built = world.tree.add("tiny", "1.0", "20260101_0000")
    refused = f"https://127.0.0.1:{closed_port()}"
    targets = (f"targets:\n  local:\n    url: unix://{world.daemon.socket}\n"
               f"  remote:\n    url: {refused}\n")
    world.write(TINY, targets=targets)

    plan = world.cli("plan")
    assert plan.returncode == 1
    assert "Target local (project default):" in plan.stdout
    assert "Target remote:\n  not planned" in plan.stdout
    assert plan.stderr.splitlines()[0] == (
        f"incus-images: error: target 'remote': cannot connect to {refused}: connection "
        "refused (is incusd listening there?)")

    apply = world.cli("apply", "--yes", "--parallelism", "1")
    assert apply.returncode == 1
    assert re.search(r"^Apply failed: 2 done in \S+; could not reach target remote\.$",
                     apply.stdout, re.M), apply.stdout
    assert apply.stdout.endswith("  failed:  remote: not planned, nothing applied\n")
    assert world.aliases() == {"tiny": built.fingerprint}  # local was applied
    config = world.daemon.api("GET", "/1.0").metadata["config"]
    assert "user.incus-images.lease" not in config  # released


def test_the_replica_key_is_refused_on_a_standalone_daemon(world: World) -> None:
    world.tree.add("tiny", "1.0", "20260101_0000")
    world.write(TINY + f"server:\n  {REPLICA}: 2\n")
    assert world.cli("validate").returncode == 0
    for command in (["plan"], ["apply", "--yes"]):
        run = world.cli(*command)
        assert (run.returncode, run.stdout) == (1, ""), run.stderr
        assert run.stderr == (
            f"incus-images: error: target 'local': server key {REPLICA} applies to clusters "
            f"only, and the daemon at unix://{world.daemon.socket} is not clustered: remove "
            f"{REPLICA} from `server:`, or this target from the file\n")
    config = world.daemon.api("GET", "/1.0").metadata["config"]
    assert REPLICA not in config and world.images() == {}
