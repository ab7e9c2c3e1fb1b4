"""On a real 3-member cluster: ``cluster.images_minimal_replica`` is planned and applied
(cluster-wide: read back through another member), and ``urls:`` fails over to a
member that answers when the first listed one is down.

The real CLI runs as a subprocess, as CI runs it; what landed is read with the
daemon's own API through a member the tool did not use.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.cluster import Cluster
from tests.support.e2e import REPO

pytestmark = pytest.mark.integration

REPLICA = "cluster.images_minimal_replica"


@pytest.fixture
def repo(tmp_path: Path, cluster: Cluster) -> Iterator[Path]:
    """A working directory with the cluster's client certificate and certificate."""
    cert = cluster.client_cert
    for name, text in (("client.crt", cert.cert_pem), ("client.key", cert.key_pem),
                       ("cluster.crt", cluster.member(1).cluster_cert_pem())):
        (tmp_path / name).write_text(text)
    yield tmp_path


def write(repo: Path, urls: list[str], server: str = "") -> None:
    (repo / "images.yaml").write_text(
        "version: 1\n"
        f"targets:\n  c:\n    urls: [{', '.join(urls)}]\n"
        "    client_cert: client.crt\n    client_key: client.key\n"
        "    server_cert: cluster.crt\n" + server)


def cli(repo: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    env.pop("INCUS_SOCKET", None)
    return subprocess.run([sys.executable, "-m", "reconciler", *args, "-f",
                           str(repo / "images.yaml")], cwd=repo, env=env, text=True,
                          capture_output=True, timeout=180, check=False)


def test_the_replica_key_is_applied_cluster_wide(cluster: Cluster, repo: Path) -> None:
    write(repo, [cluster.url(1)], f"server:\n  {REPLICA}: -1\n")
    plan = cli(repo, "plan", "--format", "json")
    assert plan.returncode == 0, plan.stderr
    [change] = json.loads(plan.stdout)["changes"]
    assert change["action"] == "server.update"
    assert change["fields"] == {REPLICA: {"from": "3", "to": "-1"}}
    apply = cli(repo, "apply", "--yes")
    assert apply.returncode == 0, apply.stderr
    assert cluster.member(2).api("GET", "/1.0").metadata["config"][REPLICA] == "-1"
    again = cli(repo, "plan", "--detailed-exitcode")
    assert again.returncode == 0, again.stdout + again.stderr


def test_urls_fail_over_to_a_member_that_answers(cluster: Cluster, repo: Path) -> None:
    write(repo, [cluster.url(1), cluster.url(2), cluster.url(3)])
    cluster.kill(1)
    cluster.wait_quorum()  # m1 may have led the database: the others elect a new leader
    try:
        for command in (["plan"], ["status"]):
            run = cli(repo, *command)
            assert run.returncode == 0, run.stderr
            assert (f"incus-images: note: target 'c': via {cluster.url(2)} ({cluster.url(1)} "
                    "did not answer: connection refused)") in run.stderr.splitlines()
        status = cli(repo, "status", "--format", "json")
        assert json.loads(status.stdout)["targets"]["c"]["url"] == cluster.url(2)
    finally:
        cluster.restart(1)
        cluster.wait_online(1)
