"""load_config on valid files: the Config it builds (defaults, targets, dates, material)."""

from __future__ import annotations

import hashlib
import textwrap
from datetime import UTC, date, datetime
from pathlib import Path

import pytest

from reconciler.desired.envexpand import expand_string
from reconciler.desired.load import load_config
from reconciler.desired.yamlsource import parse, render_path
from reconciler.model.config import AliasDecl, CachedPolicy, Config, EntrySpec
from tests.support.constants import HEAD as REMOTES
from tests.support.constants import PEM_CERT, PEM_KEY
from tests.support.constants import PIN_FP as FP


def load(tmp_path: Path, text: str, environ: dict[str, str] | None = None) -> Config:
    path = tmp_path / "images.yaml"
    path.write_text(REMOTES + textwrap.dedent(text), encoding="utf-8")
    return load_config(path, environ or {})


def test_path_and_digest(tmp_path: Path) -> None:
    path = tmp_path / "images.yaml"
    path.write_bytes(b"version: 1\n")
    config = load_config(path, {})
    assert config.path == str(path)
    assert config.digest == hashlib.sha256(b"version: 1\n").hexdigest()
    assert config.owner == "incus-images"
    assert config.entries == ()


@pytest.mark.parametrize("images", ["", "images:\n", "images: []\n"])
def test_no_images_is_fine(tmp_path: Path, images: str) -> None:
    assert load(tmp_path, images).entries == ()


def test_built_in_defaults(tmp_path: Path) -> None:
    config = load(tmp_path, "images:\n  - source: images:debian/12\n")
    assert config.entries == (
        EntrySpec(
            target="local",
            source="images:debian/12",
            remote="images",
            remote_alias="debian/12",
            type="container",
            architecture=None,
            fingerprint=None,
            aliases=(),
            auto_update=False,
            public=False,
            profiles=("default",),
            properties={},
            expires_at=None,
            expires_after_days=None,
        ),
    )
    assert config.remotes["images"].protocol == "simplestreams"
    assert config.policy.prune is True
    assert config.policy.alias_conflicts == "fail"
    assert config.policy.cached == CachedPolicy(delete_unused_after_days=None)


def test_defaults_merge(tmp_path: Path) -> None:
    config = load(
        tmp_path,
        """\
        defaults:
          type: virtual-machine
          architecture: arm64
          auto_update: true
          public: true
          profiles: [default, gpu]
          properties: {team: web, tier: base}
          expires_after: 90d
        images:
          - source: images:debian/12
          - source: images:alpine/3.20
            type: container
            architecture: amd64
            auto_update: false
            public: false
            profiles: []
            properties: {tier: edge, os: alpine}
            expires_after: 7d
          - source: images:ubuntu/24.04
            expires_at: 2027-06-30
        """,
    )
    first, second, third = config.entries
    assert (first.type, first.architecture, first.auto_update, first.public) == (
        "virtual-machine", "aarch64", True, True)
    assert first.profiles == ("default", "gpu")
    assert first.properties == {"team": "web", "tier": "base"}
    assert first.expires_after_days == 90
    assert (second.type, second.architecture, second.auto_update, second.public) == (
        "container", "x86_64", False, False)
    assert second.profiles == ()
    assert second.properties == {"team": "web", "tier": "edge", "os": "alpine"}
    assert second.expires_after_days == 7
    # an entry's expires_at replaces the defaults' expires_after
    assert third.expires_after_days is None
    assert third.expires_at == datetime(2027, 6, 30, tzinfo=UTC)


def test_pin_forces_auto_update_false(tmp_path: Path) -> None:
    config = load(
        tmp_path,
        f"""\
        defaults:
          auto_update: true
        images:
          - source: images:alpine/3.20
            fingerprint: {FP}
          - source: images:alpine/3.20
            type: virtual-machine
            fingerprint: {FP}
            auto_update: false
        """,
    )
    assert [(e.fingerprint, e.auto_update, e.pinned) for e in config.entries] == [
        (FP, False, True), (FP, False, True)]


def test_aliases_and_source_split(tmp_path: Path) -> None:
    config = load(
        tmp_path,
        """\
        images:
          - source: images:ubuntu/24.04:cloud
            aliases:
              - ubuntu
              - name: ubuntu/noble
                description: Ubuntu 24.04 with cloud-init
        """,
    )
    (entry,) = config.entries
    assert (entry.remote, entry.remote_alias) == ("images", "ubuntu/24.04:cloud")
    assert entry.aliases == (
        AliasDecl(name="ubuntu"),
        AliasDecl(name="ubuntu/noble", description="Ubuntu 24.04 with cloud-init"),
    )


@pytest.mark.parametrize(
    ("environ", "url"),
    [
        ({}, "unix:///var/lib/incus/unix.socket"),
        ({"INCUS_DIR": "/srv/incus"}, "unix:///srv/incus/unix.socket"),
        ({"INCUS_DIR": "/srv/incus/", "INCUS_SOCKET": "/run/x.sock"}, "unix:///run/x.sock"),
        ({"INCUS_SOCKET": "", "INCUS_DIR": "/srv/incus"}, "unix:///srv/incus/unix.socket"),
    ],
)
@pytest.mark.parametrize(
    "targets", ["", "targets:\n", "targets: {}\n", "targets:\n  local: {}\n",
                "targets:\n  local:\n    url: unix://\n"],
)
def test_local_target(tmp_path: Path, environ: dict[str, str], url: str, targets: str) -> None:
    config = load(tmp_path, targets, environ)
    assert list(config.targets) == ["local"]
    assert config.targets["local"].url == url
    assert config.targets["local"].project == "default"


def test_targets_and_entry_order(tmp_path: Path) -> None:
    _write_material(tmp_path)
    config = load(
        tmp_path,
        """\
        targets:
          prod:
            url: https://prod.example.com:8443
            project: web
            client_cert: ${CERT}
            client_key: ${KEY}
            server_cert: certs/prod.crt
          sock:
            url: unix:///run/incus/unix.socket
          local: {}
        images:
          - source: images:debian/12
          - source: images:alpine/3.20
            targets: [local, prod]
        """,
        {"CERT": PEM_CERT, "KEY": "keys/client.key"},
    )
    prod = config.targets["prod"]
    assert (prod.url, prod.project) == ("https://prod.example.com:8443", "web")
    assert prod.client_cert == PEM_CERT
    assert prod.client_key == PEM_KEY
    assert prod.server_cert == PEM_CERT
    assert config.targets["sock"].url == "unix:///run/incus/unix.socket"
    assert [(e.source, e.target) for e in config.entries] == [
        ("images:debian/12", "prod"),
        ("images:debian/12", "sock"),
        ("images:debian/12", "local"),
        ("images:alpine/3.20", "local"),
        ("images:alpine/3.20", "prod"),
    ]
    assert config.entries_for("local")[1].source == "images:alpine/3.20"
    assert PEM_KEY not in repr(prod)


def _write_material(tmp_path: Path) -> None:
    (tmp_path / "certs").mkdir()
    (tmp_path / "certs" / "prod.crt").write_text(PEM_CERT)
    (tmp_path / "keys").mkdir()
    (tmp_path / "keys" / "client.key").write_text(PEM_KEY)


def test_remote_certificate(tmp_path: Path) -> None:
    (tmp_path / "ca.pem").write_text(PEM_CERT)
    config = load(
        tmp_path,
        """\
        # (continues the remotes mapping of REMOTES)
          internal:
            url: https://10.0.0.5:8443
            protocol: incus
            certificate: ca.pem
          inline:
            url: https://10.0.0.6:8443
            certificate: |
              -----BEGIN CERTIFICATE-----
              MIIB
              -----END CERTIFICATE-----
        """,
    )
    assert config.remotes["internal"].protocol == "incus"
    assert config.remotes["internal"].certificate == PEM_CERT
    assert config.remotes["inline"].certificate == PEM_CERT
    assert config.remotes["images"].certificate is None


def test_server_values_become_strings(tmp_path: Path) -> None:
    config = load(
        tmp_path,
        """\
        server:
          images.auto_update_interval: 6
          images.auto_update_cached: true
          images.compression_algorithm: gzip
          images.default_architecture: aarch64
        """,
    )
    assert config.server == {
        "images.auto_update_interval": "6",
        "images.auto_update_cached": "true",
        "images.compression_algorithm": "gzip",
        "images.default_architecture": "aarch64",
    }


def test_policy(tmp_path: Path) -> None:
    config = load(
        tmp_path,
        """\
        policy:
          prune: false
          alias_conflicts: take
          cached: {delete_unused_after: 30d}
        """,
    )
    assert config.policy.prune is False
    assert config.policy.alias_conflicts == "take"
    assert config.policy.cached.delete_unused_after_days == 30


@pytest.mark.parametrize(
    ("written", "expected"),
    [
        ("2027-06-30", datetime(2027, 6, 30, tzinfo=UTC)),
        ('"2027-06-30"', datetime(2027, 6, 30, tzinfo=UTC)),
        ("2027-06-30T12:30:00Z", datetime(2027, 6, 30, 12, 30, tzinfo=UTC)),
        ("2027-06-30T12:30:00+02:00", datetime(2027, 6, 30, 10, 30, tzinfo=UTC)),
        ('"2027-06-30T12:30:00.5-01:00"', datetime(2027, 6, 30, 13, 30, 0, 500000, tzinfo=UTC)),
        # a time without a timezone is taken as UTC
        ("2027-06-30 12:30:00", datetime(2027, 6, 30, 12, 30, tzinfo=UTC)),
        ("${EXPIRY}", datetime(2028, 1, 1, tzinfo=UTC)),
    ],
)
def test_expires_at(tmp_path: Path, written: str, expected: datetime) -> None:
    config = load(
        tmp_path,
        f"images:\n  - source: images:debian/12\n    expires_at: {written}\n",
        {"EXPIRY": "2028-01-01"},
    )
    moment = config.entries[0].expires_at
    assert moment == expected
    assert moment is not None and moment.utcoffset() is not None
    assert type(moment) is datetime


def test_environment_expansion(tmp_path: Path) -> None:
    config = load(
        tmp_path,
        """\
        owner: ${OWNER:-platform}
        images:
          - source: images:${DISTRO}/12
            aliases: ["${PREFIX:-base}-${DISTRO}"]
            properties: {cost: "$5", empty: "${EMPTY:-fallback}", lit: "$${LITERAL}x"}
        """,
        {"DISTRO": "debian", "EMPTY": ""},
    )
    (entry,) = config.entries
    assert config.owner == "platform"
    assert entry.source == "images:debian/12"
    assert [a.name for a in entry.aliases] == ["base-debian"]
    assert entry.properties == {"cost": "$5", "empty": "fallback", "lit": "${LITERAL}x"}


@pytest.mark.parametrize(
    ("text", "environ", "result", "used", "problems"),
    [
        ("${A}", {"A": "1"}, "1", ["A"], []),
        ("${A}", {"A": ""}, "", ["A"], []),
        ("${A:-x}", {"A": ""}, "x", ["A"], []),
        ("${A:-}", {}, "", ["A"], []),
        ("a${B}c${B}", {"B": "-"}, "a-c-", ["B", "B"], []),
        ("$A ${", {}, "$A ${", [], ["malformed variable reference: write ${NAME} or "
                                    "${NAME:-fallback}, or $${ for a literal ${"]),
        ("$${A}", {}, "${A}", [], []),
    ],
)
def test_expand_string(
    text: str, environ: dict[str, str], result: str, used: list[str], problems: list[str]
) -> None:
    assert expand_string(text, environ) == (result, used, problems)


def test_positions_and_paths() -> None:
    doc = parse("a: 1\nb:\n  - x\n  - {c: 2}\nd:\n")
    assert doc.data == {"a": 1, "b": ["x", {"c": 2}], "d": None}
    assert doc.positions.key(("a",)) == (1, 1)
    assert doc.positions.value(("a",)) == (1, 4)
    assert doc.positions.value(("b", 1)) == (4, 5)
    assert doc.positions.key(("b", 1, "c")) == (4, 6)
    assert doc.positions.value(("b", 1, "c")) == (4, 9)
    assert doc.positions.value(("d",)) == (5, 1)  # a null value: its key
    assert doc.positions.value(("b", 1, "missing")) == (4, 5)  # nearest ancestor
    assert render_path(("images", 0, "aliases", 1)) == "images[0].aliases[1]"
    assert render_path(("server", "images.x")) == "server['images.x']"


def test_yaml_scalars_become_plain_python() -> None:
    doc = parse("t: true\nh: 16\nf: 1.5\nm: |\n  text\nd: 2027-06-30\nn: ~\n")
    assert doc.data == {"t": True, "h": 16, "f": 1.5, "m": "text\n",
                        "d": date(2027, 6, 30), "n": None}
    assert type(doc.data["t"]) is bool
    assert type(doc.data["h"]) is int
    assert type(doc.data["m"]) is str
    assert doc.problems == []


def test_numbers_are_decimal_and_aliases_are_refused() -> None:
    doc = parse("t: &t true\nu: *t\nh: 0x10\no: 0o7\ns: 1_000\n<<: {merged: 1}\n")
    assert doc.data == {"t": True, "u": None, "h": "0x10", "o": "0o7", "s": "1_000",
                        "<<": {"merged": 1}}
    assert [(p.pos, p.message) for p in doc.problems] == [
        ((1, 4), "YAML anchors (&t) are not supported: write the value out, or use defaults"),
        ((2, 4), "YAML aliases (*t) are not supported: write the value out, or use defaults"),
    ]


def test_the_not_printable_class_is_the_complement_of_yaml_c_printable() -> None:
    """YAML 1.2, 5.1: c-printable is tab, LF, CR, x20-x7E, x85, xA0-xD7FF, xE000-xFFFD
    and x10000-x10FFFF; every other code point is refused, and only those."""
    from reconciler.desired.yamlsource import _NOT_PRINTABLE

    printable = [(0x09, 0x0A), (0x0A, 0x0B), (0x0D, 0x0E), (0x20, 0x7F), (0x85, 0x86),
                 (0xA0, 0xD800), (0xE000, 0xFFFE), (0x10000, 0x110000)]
    allowed = {c for lo, hi in printable for c in range(lo, hi)}
    refused = {c for c in range(0x110000) if _NOT_PRINTABLE.match(chr(c))}
    assert refused == set(range(0x110000)) - allowed
