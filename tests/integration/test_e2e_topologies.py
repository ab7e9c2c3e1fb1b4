"""Topologies end to end: several targets, HTTPS targets, owners, remotes of every kind.

Each test runs the real CLI (``python -m reconciler``) against real daemons and a
served simplestreams tree, and checks the stores through the daemons' own API.
Nothing listens anywhere but 127.0.0.1.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import IncusdFactory
from tests.support.e2e import REPO, World
from tests.support.incusd import ClientCert, Incusd
from tests.support.ssserver import ServedTree

pytestmark = pytest.mark.integration


# -- helpers ----------------------------------------------------------------------------------

def _images(daemon: Incusd, project: str = "default") -> set[str]:
    listing = daemon.api("GET", f"/1.0/images?recursion=1&project={project}").metadata
    return {img["fingerprint"] for img in listing}


def _aliases(daemon: Incusd, project: str = "default") -> dict[str, str]:
    listing = daemon.api("GET", f"/1.0/images/aliases?recursion=1&project={project}").metadata
    return {a["name"]: a["target"] for a in listing}


def _ok(proc: subprocess.CompletedProcess[str]) -> subprocess.CompletedProcess[str]:
    assert proc.returncode == 0, f"exit {proc.returncode}\n{proc.stdout}\n{proc.stderr}"
    assert "Traceback" not in proc.stderr
    return proc


def _error_lines_of(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if "error" in line]


def _fails(proc: subprocess.CompletedProcess[str]) -> str:
    """Assert exit 1 without a traceback; return stderr."""
    assert proc.returncode == 1, f"exit {proc.returncode}\n{proc.stdout}\n{proc.stderr}"
    assert "Traceback" not in proc.stderr + proc.stdout
    return proc.stderr


def _plan_json(world: World, *args: str, file: Path | None = None) -> dict[str, Any]:
    proc = world.cli("plan", "--format", "json", *args, file=file)
    assert proc.returncode == 0, proc.stderr
    doc: dict[str, Any] = json.loads(proc.stdout)
    return doc


def _actions(doc: dict[str, Any]) -> list[tuple[str, str]]:
    changes = doc["changes"]
    assert isinstance(changes, list)
    return [(c["action"], c["target"]) for c in changes]


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
    return port


# -- 1. two targets -----------------------------------------------------------------------------

def test_two_targets_entry_targets_and_target_flag(world: World,
                                                   incusd_factory: IncusdFactory) -> None:
    a, b = world.daemon, incusd_factory()
    tiny = world.tree.add("tiny", "1.0", "20260101_0000")
    small = world.tree.add("small", "2.0", "20260101_0000")
    targets = (f"targets:\n  a:\n    url: unix://{a.socket}\n"
               f"  b:\n    url: unix://{b.socket}")
    world.write("""
        images:
          - source: test:tiny/1.0
            aliases: [tiny]
            targets: [a]
          - source: test:small/2.0
            aliases: [small]
    """, targets=targets)

    doc = _plan_json(world)
    assert sorted(_actions(doc)) == sorted([
        ("image.download", "a"), ("image.download", "a"), ("image.download", "b"),
        ("alias.create", "a"), ("alias.create", "a"), ("alias.create", "b")])

    # --target b: only b is planned and applied.
    only_b = _plan_json(world, "--target", "b")
    assert {t for _, t in _actions(only_b)} == {"b"}
    _ok(world.cli("apply", "--yes", "--target", "b"))
    assert _images(a) == set()
    assert _images(b) == {small.fingerprint}
    assert _aliases(b) == {"small": small.fingerprint}
    assert _plan_json(world, "--target", "b")["changes"] == []

    # The rest: tiny lands only on a.
    _ok(world.cli("apply", "--yes"))
    assert _images(a) == {tiny.fingerprint, small.fingerprint}
    assert _aliases(a) == {"tiny": tiny.fingerprint, "small": small.fingerprint}
    assert _images(b) == {small.fingerprint}
    assert _aliases(b) == {"small": small.fingerprint}
    again = world.cli("plan", "--detailed-exitcode")
    assert again.returncode == 0, again.stdout + again.stderr
    assert _plan_json(world)["changes"] == []


# -- 2. an HTTPS target with a client certificate ------------------------------------------------

def _pem_bodies(*pems: str) -> list[str]:
    """The base64 lines of PEM texts (what must never be printed)."""
    return [line for pem in pems for line in pem.splitlines()
            if line.strip() and not line.startswith("-----")]


def _assert_no_secrets(outputs: list[str], *pems: str) -> None:
    bodies = _pem_bodies(*pems)
    assert bodies
    for text in outputs:
        assert "-----BEGIN" not in text
        for line in bodies:
            assert line not in text


def _https_targets(url: str, cert: str, key: str, server: str, project: str = "") -> str:
    extra = f"\n    project: {project}" if project else ""
    return (f"targets:\n  prod:\n    url: {url}\n    client_cert: {cert}\n"
            f"    client_key: {key}\n    server_cert: {server}{extra}")


def _copy_cert(world: World, cert: ClientCert, sub: str = "certs") -> tuple[str, str]:
    directory = world.dir / sub
    directory.mkdir(exist_ok=True)
    (directory / f"{cert.name}.crt").write_text(cert.cert_pem)
    (directory / f"{cert.name}.key").write_text(cert.key_pem)
    return f"{sub}/{cert.name}.crt", f"{sub}/{cert.name}.key"


def test_https_target_with_client_certificate(world: World) -> None:
    daemon = world.daemon
    url = daemon.enable_https()
    built = world.tree.add("tiny", "1.0", "20260101_0000")
    trusted = daemon.make_client_cert("ci-client")
    crt, key = _copy_cert(world, trusted)
    (world.dir / "certs" / "server.crt").write_text(daemon.server_cert_pem())
    images = """
        images:
          - source: test:tiny/1.0
            aliases: [tiny]
    """
    world.write(images, targets=_https_targets(url, crt, key, "certs/server.crt"))
    outputs: list[str] = []
    summary = world.dir / "step-summary.md"
    saved = world.dir / "saved-plan.json"

    def run(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
        proc = world.cli(*args, env={"GITHUB_STEP_SUMMARY": str(summary), **(env or {})})
        outputs.extend([proc.stdout, proc.stderr])
        return proc

    _ok(run("validate"))
    plan = _ok(run("plan", "--format", "json", "--out", str(saved)))
    assert [c["action"] for c in json.loads(plan.stdout)["changes"]] == [
        "image.download", "alias.create"]
    _ok(run("plan", "--format", "markdown"))
    shown = subprocess.run([sys.executable, "-m", "reconciler", "show", str(saved)],
                           cwd=world.dir, env={**os.environ, "PYTHONPATH": str(REPO)},
                           capture_output=True, text=True, timeout=60, check=False)
    outputs.extend([_ok(shown).stdout, shown.stderr])
    _ok(run("apply", str(saved)))  # credentials from the file, never from the plan
    assert _aliases(daemon) == {"tiny": built.fingerprint}
    _ok(run("status", "--format", "json"))
    outputs.append(saved.read_text())
    if summary.exists():
        outputs.append(summary.read_text())
    again = run("plan", "--detailed-exitcode")
    assert again.returncode == 0, again.stdout + again.stderr

    # The same through ${VAR}: the variables hold paths, then PEM text itself.
    world.write(images, targets=_https_targets(url, "${II_CERT}", "${II_KEY}",
                                               "${II_SERVER:-certs/server.crt}"))
    by_path = {"II_CERT": str(trusted.cert_path), "II_KEY": str(trusted.key_path)}
    again = run("plan", "--detailed-exitcode", env=by_path)
    assert again.returncode == 0, again.stdout + again.stderr
    by_text = {"II_CERT": trusted.cert_pem, "II_KEY": trusted.key_pem,
               "II_SERVER": daemon.server_cert_pem()}
    again = run("plan", "--detailed-exitcode", "--format", "json", env=by_text)
    assert again.returncode == 0, again.stdout + again.stderr
    assert json.loads(again.stdout)["changes"] == []

    # An untrusted client: refused, one clear line, the store untouched.
    stranger = daemon.make_client_cert("stranger", trust=False)
    crt2, key2 = _copy_cert(world, stranger)
    world.write(images, targets=_https_targets(url, crt2, key2, "certs/server.crt"))
    before = (world.images(), world.aliases(), world.daemon.config())
    for args in (("plan",), ("apply", "--yes")):
        stderr = _fails(run(*args))
        lines = _error_lines_of(stderr)
        assert len(lines) == 1, stderr
        assert "'prod'" in lines[0] and "untrusted" in lines[0], lines
    assert (world.images(), world.aliases(), world.daemon.config()) == before

    # A client trusted only for some projects cannot keep the ownership record: refused.
    restricted = daemon.make_client_cert("restricted", restricted_projects=["default"])
    crt3, key3 = _copy_cert(world, restricted)
    world.write(images, targets=_https_targets(url, crt3, key3, "certs/server.crt"))
    lines = _error_lines_of(_fails(run("plan")))
    assert len(lines) == 1 and "'prod'" in lines[0] and "restricted" in lines[0], lines
    # No server_cert: the system CAs do not know the daemon's self-signed certificate.
    world.write(images, targets=(f"targets:\n  prod:\n    url: {url}\n"
                                 f"    client_cert: {crt}\n    client_key: {key}"))
    lines = _error_lines_of(_fails(run("plan")))
    assert len(lines) == 1 and "'prod'" in lines[0] and "server_cert" in lines[0], lines
    assert (world.images(), world.aliases(), world.daemon.config()) == before

    _assert_no_secrets(outputs, trusted.key_pem, trusted.cert_pem, stranger.key_pem,
                       stranger.cert_pem, restricted.key_pem)


# -- 3. two owners, one store -------------------------------------------------------------------

def test_two_owners_share_one_store(world: World) -> None:
    tiny = world.tree.add("tiny", "1.0", "20260101_0000")
    small = world.tree.add("small", "2.0", "20260101_0000")
    other = world.tree.add("other", "3.0", "20260101_0000")
    web = world.write("""
        images:
          - source: test:tiny/1.0
            aliases: [tiny]
    """, name="web.yaml", owner="web")

    def db_file(images: str) -> Path:
        return world.write(images, name="db.yaml", owner="db")

    db = db_file("""
        images:
          - source: test:small/2.0
            aliases: [small]
          - source: test:other/3.0
            aliases: [other]
    """)
    _ok(world.cli("apply", "--yes", file=web))
    _ok(world.cli("apply", "--yes", file=db))
    assert world.aliases() == {"tiny": tiny.fingerprint, "small": small.fingerprint,
                               "other": other.fingerprint}
    for file in (web, db):
        again = world.cli("plan", "--detailed-exitcode", file=file)
        assert again.returncode == 0, again.stdout + again.stderr

    # db drops one entry: only db's image goes; web's is left alone (and listed as such).
    db_file("""
        images:
          - source: test:other/3.0
            aliases: [other]
    """)
    doc = _plan_json(world, file=db)
    assert [(c["action"], c.get("fingerprint")) for c in doc["changes"]] == [
        ("image.delete", small.fingerprint)]
    _ok(world.cli("apply", "--yes", file=db))
    assert set(world.images()) == {tiny.fingerprint, other.fingerprint}
    assert world.aliases() == {"tiny": tiny.fingerprint, "other": other.fingerprint}
    for file in (web, db):
        again = world.cli("plan", "--detailed-exitcode", file=file)
        assert again.returncode == 0, again.stdout + again.stderr

    before = (world.images(), world.aliases(), world.daemon.config())
    # db declares an alias that web manages: a conflict naming web, whatever the policy.
    for policy in ("fail", "take"):
        db_file(f"""
            policy:
              alias_conflicts: {policy}
            images:
              - source: test:other/3.0
                aliases: [other, tiny]
        """)
        for args in (("plan",), ("apply", "--yes")):
            stderr = _fails(world.cli(*args, file=db))
            assert "'tiny'" in stderr and "'web'" in stderr, stderr
    # db's entry resolves to the image web manages: a conflict naming web.
    db_file("""
        images:
          - source: test:other/3.0
            aliases: [other]
          - source: test:tiny/1.0
            aliases: [tiny-db]
    """)
    for args in (("plan",), ("apply", "--yes")):
        stderr = _fails(world.cli(*args, file=db))
        assert "'web'" in stderr and tiny.fingerprint[:12] in stderr, stderr
    assert (world.images(), world.aliases(), world.daemon.config()) == before


# -- 4. an Incus-protocol remote ----------------------------------------------------------------

def test_incus_protocol_remote_served_by_another_daemon(world: World,
                                                        incusd_factory: IncusdFactory) -> None:
    source = incusd_factory()
    url = source.enable_https()
    built = world.tree.add("tiny", "1.0", "20260101_0000")
    hidden = world.tree.add("small", "2.0", "20260101_0000")
    source.api("POST", "/1.0/images", {"source": {
        "type": "image", "mode": "pull", "server": world.served.url,
        "protocol": "simplestreams", "fingerprint": built.fingerprint}})
    source.api("PATCH", f"/1.0/images/{built.fingerprint}", {"public": True})
    source.api("POST", "/1.0/images/aliases", {"name": "srcimg", "target": built.fingerprint})
    source.api("POST", "/1.0/images", {"source": {
        "type": "image", "mode": "pull", "server": world.served.url,
        "protocol": "simplestreams", "fingerprint": hidden.fingerprint}})
    source.api("POST", "/1.0/images/aliases", {"name": "hidden", "target": hidden.fingerprint})
    (world.dir / "certs").mkdir()
    (world.dir / "certs" / "src.crt").write_text(source.server_cert_pem())
    extra = f"\n  src:\n    url: {url}\n    protocol: incus\n    certificate: certs/src.crt"
    world.write("""
        images:
          - source: src:srcimg
            aliases: [from-src]
            auto_update: true
    """, extra_remotes=extra)

    doc = _plan_json(world)
    assert [(c["action"], c.get("fingerprint")) for c in doc["changes"]] == [
        ("image.download", built.fingerprint), ("alias.create", None)]
    _ok(world.cli("apply", "--yes"))
    image = world.images()[built.fingerprint]
    assert image["update_source"]["protocol"] == "incus"
    assert image["update_source"]["server"] == url
    assert image["update_source"]["alias"] == "srcimg"
    assert image["update_source"]["certificate"].strip() == source.server_cert_pem().strip()
    assert image["auto_update"] is True
    assert world.aliases() == {"from-src": built.fingerprint}
    again = world.cli("plan", "--detailed-exitcode")
    assert again.returncode == 0, again.stdout + again.stderr

    # A private image of the source is not served to an anonymous reader.
    world.write("""
        images:
          - source: src:srcimg
            aliases: [from-src]
            auto_update: true
          - source: src:hidden
    """, extra_remotes=extra)
    stderr = _fails(world.cli("plan"))
    assert "remote 'src'" in stderr and "'hidden'" in stderr, stderr


# -- 5. an HTTPS simplestreams remote -----------------------------------------------------------

@pytest.mark.parametrize("given", ["ca-file", "leaf-file", "ca-inline"])
def test_https_simplestreams_remote_with_certificate(world: World, ss_https: ServedTree,
                                                     given: str) -> None:
    """``certificate:`` may be the CA or the server's own certificate, as a path or as
    PEM text; both the tool and (through ``source.certificate``) the daemon trust it."""
    assert ss_https.tls is not None
    built = world.tree.add("tiny", "1.0", "20260101_0000")
    pem = ss_https.tls.cert_pem if given.startswith("leaf") else ss_https.tls.ca_pem
    (world.dir / "certs").mkdir()
    (world.dir / "certs" / "remote.crt").write_text(pem)
    if given.endswith("inline"):
        value = "|\n" + "".join(f"      {line}\n" for line in pem.strip().splitlines())
    else:
        value = "certs/remote.crt"
    images = """
        images:
          - source: secure:tiny/1.0
            aliases: [tiny]
            auto_update: true
    """

    # Without certificate: the private CA is not trusted; a TLS error naming the remote.
    world.write(images, extra_remotes=f"\n  secure:\n    url: {ss_https.url}")
    for args in (("plan",), ("apply", "--yes")):
        stderr = _fails(world.cli(*args))
        lines = _error_lines_of(stderr)
        assert len(lines) == 1, stderr
        assert "remote 'secure'" in lines[0] and "TLS" in lines[0], stderr
    assert world.images() == {} and world.aliases() == {}

    world.write(images, extra_remotes=(f"\n  secure:\n    url: {ss_https.url}"
                                       f"\n    certificate: {value.rstrip()}"))
    assert world.cli("validate").returncode == 0
    _ok(world.cli("apply", "--yes"))
    assert world.aliases() == {"tiny": built.fingerprint}
    source = world.images()[built.fingerprint]["update_source"]
    assert (source["server"], source["protocol"], source["alias"]) == (
        ss_https.url, "simplestreams", "tiny/1.0")
    assert source["certificate"].strip() == pem.strip()
    again = world.cli("plan", "--detailed-exitcode")
    assert again.returncode == 0, again.stdout + again.stderr
    assert ss_https.count("streams/v1/index.json") >= 2  # the tool and the daemon read it
    assert world.served.requests == []  # the plain-HTTP server of the same tree: unused


def test_https_remote_whose_ca_the_system_trusts(world: World, ss_https: ServedTree) -> None:
    """Without ``certificate:``, the tool trusts what the daemon trusts: the system's CAs
    (here ``SSL_CERT_FILE`` for both), not a bundle of its own."""
    assert ss_https.tls is not None
    built = world.tree.add("tiny", "1.0", "20260101_0000")
    world.daemon.set_env("SSL_CERT_FILE", str(ss_https.tls.ca_cert))
    world.daemon.restart()
    world.write("""
        images:
          - source: secure:tiny/1.0
            aliases: [tiny]
    """, extra_remotes=f"\n  secure:\n    url: {ss_https.url}")
    trusted = {"SSL_CERT_FILE": str(ss_https.tls.ca_cert)}
    _ok(world.cli("apply", "--yes", env=trusted))
    assert world.aliases() == {"tiny": built.fingerprint}
    again = world.cli("plan", "--detailed-exitcode", env=trusted)
    assert again.returncode == 0, again.stdout + again.stderr


# -- 6. an unreachable remote -------------------------------------------------------------------

def test_unreachable_remote(world: World) -> None:
    port = _closed_port()
    # A declared remote that no entry uses is never contacted.
    world.tree.add("tiny", "1.0", "20260101_0000")
    world.write("""
        images:
          - source: test:tiny/1.0
    """, extra_remotes=f"\n  gone:\n    url: http://127.0.0.1:{port}")
    _ok(world.cli("plan"))
    world.write("""
        images:
          - source: gone:tiny/1.0
            aliases: [tiny]
    """, extra_remotes=f"\n  gone:\n    url: http://127.0.0.1:{port}")
    for args in (("plan",), ("plan", "--format", "json"), ("apply", "--yes")):
        proc = world.cli(*args)
        stderr = _fails(proc)
        lines = [line for line in stderr.splitlines() if line.strip()]
        assert len(lines) == 1, stderr
        assert "remote 'gone'" in lines[0] and f"127.0.0.1:{port}" in lines[0], stderr
        assert "connection refused" in lines[0], stderr
        assert proc.stdout == ""
    assert world.images() == {} and world.aliases() == {}


# -- 7. a corrupt upstream file -----------------------------------------------------------------

def test_corrupt_upstream_file_lands_nothing(world: World) -> None:
    built = world.tree.add("tiny", "1.0", "20260101_0000")
    corrupted = world.tree.corrupt(built.fingerprint)
    world.write("""
        images:
          - source: test:tiny/1.0
            aliases: [tiny]
            auto_update: true
    """)
    proc = world.cli("apply", "--yes")
    stderr = _fails(proc)
    lines = _error_lines_of(stderr)
    assert len(lines) == 1, stderr
    assert built.fingerprint[:12] in lines[0], stderr
    assert corrupted.name in lines[0] or "sha256" in lines[0], stderr
    assert world.images() == {} and world.aliases() == {}
    inventory = {k: v for k, v in world.daemon.config().items() if k.startswith("user.")}
    assert inventory == {}
    # Still what a fresh store plans: nothing was half-landed.
    doc = _plan_json(world)
    assert [c["action"] for c in doc["changes"]] == ["image.download", "alias.create"]


# -- 8. a project without its own images --------------------------------------------------------

def test_project_without_own_images_shares_the_default_store(world: World) -> None:
    built = world.tree.add("tiny", "1.0", "20260101_0000")
    world.daemon.create_project("p", {"features.images": "false"})
    images = """
        images:
          - source: test:tiny/1.0
            aliases: [tiny]
            auto_update: true
    """
    world.write(images)
    _ok(world.cli("apply", "--yes"))
    assert world.aliases() == {"tiny": built.fingerprint}
    world.served.reset()

    world.write(images, targets=(f"targets:\n  shared:\n    url: unix://{world.daemon.socket}"
                                 "\n    project: p"))
    proc = world.cli("plan", "--detailed-exitcode", "--format", "json")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert json.loads(proc.stdout)["changes"] == []
    _ok(world.cli("apply"))  # nothing to change: no --yes needed
    assert not any(path.startswith("/images/") for path in world.served.requests)
    assert set(world.images()) == {built.fingerprint}
    assert world.images("p") == world.images()


def test_apply_through_a_project_without_own_images_is_idempotent(world: World) -> None:
    """Image profiles are kept per project: what the tool writes through project p must
    read back as written through p (not through the default project)."""
    built = world.tree.add("tiny", "1.0", "20260101_0000")
    world.daemon.create_project("p", {"features.images": "false"})
    world.write("""
        images:
          - source: test:tiny/1.0
            aliases: [tiny]
            properties: {team: web}
    """, targets=f"targets:\n  shared:\n    url: unix://{world.daemon.socket}\n    project: p")
    _ok(world.cli("apply", "--yes"))
    assert world.aliases() == {"tiny": built.fingerprint}  # in the default project's store
    image = world.daemon.api("GET", f"/1.0/images/{built.fingerprint}?project=p").metadata
    assert image["profiles"] == ["default"] and image["properties"]["team"] == "web"
    again = world.cli("plan", "--detailed-exitcode")
    assert again.returncode == 0, again.stdout + again.stderr


def test_two_targets_reaching_one_store_are_refused(world: World) -> None:
    """The default project and a features.images=false project of one daemon are one
    store: two targets of one file there would prune each other's images on every apply."""
    world.tree.add("tiny", "1.0", "20260101_0000")
    world.tree.add("small", "2.0", "20260101_0000")
    world.daemon.create_project("p", {"features.images": "false"})
    world.daemon.create_project("own", {"features.images": "true"})
    socket_url = f"unix://{world.daemon.socket}"
    world.write("""
        images:
          - source: test:tiny/1.0
            aliases: [tiny]
            targets: [a]
          - source: test:small/2.0
            aliases: [small]
            targets: [b, c]
    """, targets=(f"targets:\n  a:\n    url: {socket_url}\n"
                  f"  b:\n    url: {socket_url}\n    project: p\n"
                  f"  c:\n    url: {socket_url}\n    project: own"))
    before = (world.images(), world.aliases(), world.daemon.config())
    for args in (("plan",), ("apply", "--yes"), ("plan", "--target", "a"),
                 ("apply", "--yes", "--target", "b")):
        stderr = _fails(world.cli(*args))
        lines = _error_lines_of(stderr)
        assert len(lines) == 1, stderr
        assert "'a'" in lines[0] and "'b'" in lines[0] and "'c'" not in lines[0], stderr
        assert "one image store" in lines[0] and "features.images=false" in lines[0], stderr
    assert (world.images(), world.aliases(), world.daemon.config()) == before
    # A project with its own images is a store of its own.
    _ok(world.cli("apply", "--yes", "--target", "c"))
    assert set(world.images("own")) == {world.tree.images[1].fingerprint}
    assert world.images() == before[0]


def test_two_owners_server_settings(world: World) -> None:
    """Server settings are daemon-wide: a key another owner set to another value is a
    conflict naming that owner; the same value is no conflict."""
    world.tree.add("tiny", "1.0", "20260101_0000")
    world.tree.add("small", "2.0", "20260101_0000")
    web = world.write("""
        server:
          images.remote_cache_expiry: 5
        images:
          - source: test:tiny/1.0
            aliases: [tiny]
    """, name="web.yaml", owner="web")
    _ok(world.cli("apply", "--yes", file=web))
    assert world.daemon.config()["images.remote_cache_expiry"] == "5"

    def db(value: int) -> Path:
        return world.write(f"""
            server:
              images.remote_cache_expiry: {value}
            images:
              - source: test:small/2.0
                aliases: [small]
        """, name="db.yaml", owner="db")

    before = (world.images(), world.aliases(), world.daemon.config())
    for args in (("plan",), ("apply", "--yes")):
        stderr = _fails(world.cli(*args, file=db(7)))
        assert "images.remote_cache_expiry" in stderr and "'web'" in stderr, stderr
    assert (world.images(), world.aliases(), world.daemon.config()) == before
    _ok(world.cli("apply", "--yes", file=db(5)))
    for file in (web, world.dir / "db.yaml"):
        again = world.cli("plan", "--detailed-exitcode", file=file)
        assert again.returncode == 0, again.stdout + again.stderr
