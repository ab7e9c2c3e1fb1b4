"""Every validation rule: literal messages at literal positions (LINE:COLUMN, 1-based)."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import pytest

from reconciler.desired.load import load_config
from reconciler.errors import ValidationFailed
from tests.support.constants import HEAD, PEM_CERT, PEM_KEY
from tests.support.constants import PIN_FP as FP

# HEAD is four lines: the cases below start on line 5.


def problems(tmp_path: Path, text: str, environ: dict[str, str] | None = None) -> list[str]:
    path = tmp_path / "images.yaml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(ValidationFailed) as info:
        load_config(path, environ or {})
    assert all(d.file == str(path) for d in info.value.diagnostics)
    return [f"{d.line}:{d.column}: {d.message}" for d in info.value.diagnostics]


def body(text: str) -> str:
    return HEAD + textwrap.dedent(text)


SHAPE_CASES = {
    "unknown key in an entry": (
        """\
        images:
          - source: images:debian/12
            fingerprnt: abc
        """,
        ["7:5: unknown key 'fingerprnt' in images[0] (did you mean 'fingerprint'?)"],
    ),
    "unknown top-level key": (
        "imagse: []\n",
        ["5:1: unknown key 'imagse' at top level (did you mean 'images'?)"],
    ),
    "type": (
        """\
        images:
          - source: images:debian/12
            type: vm
        """,
        ["7:11: images[0].type must be one of container, virtual-machine, not 'vm'"],
    ),
    "missing source": (
        """\
        images:
          - aliases: [x]
        """,
        ["6:5: missing key 'source' in images[0]"],
    ),
    "entry not a mapping": (
        """\
        images:
          - images:debian/12
        """,
        ["6:5: images[0] must be a mapping, not a string"],
    ),
    "images not a list": (
        "images: images:debian/12\n",
        ["5:9: images must be a list, not a string"],
    ),
    "bool is strict": (
        """\
        images:
          - source: images:debian/12
            auto_update: "yes"
        """,
        ["7:18: images[0].auto_update must be true or false, not a string"],
    ),
    "property values are strings": (
        """\
        images:
          - source: images:debian/12
            properties: {release: 12}
        """,
        ["7:27: images[0].properties.release must be a string, not a number (quote it)"],
    ),
    "alias item of the wrong type": (
        """\
        images:
          - source: images:debian/12
            aliases: [12]
        """,
        ["7:15: images[0].aliases[0] must be a name or a mapping {name, description}, "
         "not a number"],
    ),
    "alias mapping without name": (
        """\
        images:
          - source: images:debian/12
            aliases:
              - {nam: x}
        """,
        [
            "8:9: missing key 'name' in images[0].aliases[0]",
            "8:10: unknown key 'nam' in images[0].aliases[0] (did you mean 'name'?)",
        ],
    ),
    "expires_after pattern": (
        """\
        images:
          - source: images:debian/12
            expires_after: "90"
        """,
        ["7:20: images[0].expires_after must be a number of days such as 30d, not '90'"],
    ),
    "policy": (
        """\
        policy:
          prune: "no"
          alias_conflicts: maybe
          cached: delete
        """,
        [
            "6:10: policy.prune must be true or false, not a string",
            "7:20: policy.alias_conflicts must be one of fail, take, not 'maybe'",
            "8:11: policy.cached must be keep or a mapping {delete_unused_after: 30d}, "
            "not a string",
        ],
    ),
    "cached duration": (
        """\
        policy:
          cached: {delete_unused_after: 30}
        """,
        ["6:33: policy.cached.delete_unused_after must be a string, not a number (quote it)"],
    ),
    "server value type": (
        """\
        server:
          images.remote_cache_expiry: 1.5
        """,
        ["6:31: server['images.remote_cache_expiry'] must be a string, a number or "
         "true or false, not a number"],
    ),
    "target without a mapping": (
        """\
        targets:
          local:
        """,
        ["6:3: targets.local must be a mapping, not empty"],
    ),
}


@pytest.mark.parametrize(("text", "expected"), SHAPE_CASES.values(), ids=SHAPE_CASES.keys())
def test_shape(tmp_path: Path, text: str, expected: list[str]) -> None:
    assert problems(tmp_path, body(text)) == expected


def test_version_must_be_1(tmp_path: Path) -> None:
    assert problems(tmp_path, "version: 2\n") == ["1:10: version must be 1, not 2"]


def test_version_is_required(tmp_path: Path) -> None:
    text = "# a comment\nowner: web\n"
    assert problems(tmp_path, text) == ["2:1: missing key 'version' at top level"]


def test_owner_pattern(tmp_path: Path) -> None:
    assert problems(tmp_path, "version: 1\nowner: Web_Team\n") == [
        "2:8: owner must be 1 to 63 characters of a-z, 0-9 and '-', starting with a letter "
        "or digit, not 'Web_Team'"
    ]


SEMANTIC_CASES = {
    "source without remote": (
        """\
        images:
          - source: debian/12
        """,
        ["6:13: images[0].source must be <remote>:<alias>, such as images:debian/12, "
         "not 'debian/12'"],
    ),
    "unknown remote": (
        """\
        images:
          - source: imgs:debian/12
        """,
        ["6:13: images[0].source: unknown remote 'imgs' (declared remotes: images)"],
    ),
    "unknown target": (
        """\
        images:
          - source: images:debian/12
            targets: [local, prod]
        """,
        ["7:22: images[0].targets[1]: unknown target 'prod' (declared targets: local)"],
    ),
    "target listed twice": (
        """\
        images:
          - source: images:debian/12
            targets: [local, local]
        """,
        ["7:22: images[0].targets[1]: target 'local' is listed twice"],
    ),
    "alias twice in one entry": (
        """\
        images:
          - source: images:debian/12
            aliases: [debian, debian]
        """,
        ["7:23: images[0].aliases[1]: alias 'debian' is declared twice for target 'local' "
         "(first at images[0].aliases[0], line 7)"],
    ),
    "alias twice across entries, as a mapping": (
        """\
        images:
          - source: images:debian/12
            aliases: [debian]
          - source: images:debian/11
            aliases:
              - name: debian
        """,
        ["10:15: images[1].aliases[0].name: alias 'debian' is declared twice for target "
         "'local' (first at images[0].aliases[0], line 7)"],
    ),
    "uppercase fingerprint": (
        f"""\
        images:
          - source: images:debian/12
            fingerprint: {FP.upper()}
        """,
        ["7:18: images[0].fingerprint must be written in lowercase hex"],
    ),
    "short fingerprint": (
        """\
        images:
          - source: images:debian/12
            fingerprint: 5d3c1e0a
        """,
        ["7:18: images[0].fingerprint must be all 64 hex digits of the image's fingerprint, "
         "not '5d3c1e0a' (8 characters)"],
    ),
    "pinned with auto_update": (
        f"""\
        images:
          - source: images:debian/12
            fingerprint: {FP}
            auto_update: true
        """,
        ["8:18: images[0].auto_update must be false for a pinned entry (it sets fingerprint)"],
    ),
    "pinned and tracked entry of one source": (
        f"""\
        images:
          - source: images:debian/12
          - source: images:debian/12
            fingerprint: {FP}
        """,
        ["7:13: images[1] has the same source, type and architecture as images[0] (line 6) "
         "for target 'local'"],
    ),
    "architecture names are compared canonically": (
        """\
        images:
          - source: images:debian/12
            architecture: amd64
          - source: images:debian/12
            architecture: x86_64
        """,
        ["8:13: images[1] has the same source, type and architecture as images[0] (line 6) "
         "for target 'local'"],
    ),
    "unknown architecture": (
        """\
        defaults:
          architecture: sparc
        images:
          - source: images:debian/12
            architecture: pdp11
        """,
        [
            "6:17: defaults.architecture: unknown architecture 'sparc' (use an Incus name "
            "such as x86_64 or aarch64, or amd64, arm64)",
            "9:19: images[0].architecture: unknown architecture 'pdp11' (use an Incus name "
            "such as x86_64 or aarch64, or amd64, arm64)",
        ],
    ),
    "expires_at and expires_after": (
        """\
        images:
          - source: images:debian/12
            expires_at: 2027-06-30
            expires_after: 90d
        """,
        ["8:5: images[0] sets both expires_at and expires_after: keep one"],
    ),
    "expires_at not a time": (
        """\
        images:
          - source: images:debian/12
            expires_at: tomorrow
        """,
        ["7:17: images[0].expires_at: not a date or RFC 3339 time: 'tomorrow'"],
    ),
    "expires_at not a real date": (
        """\
        images:
          - source: images:debian/12
            expires_at: "2027-02-30"
        """,
        ["7:17: images[0].expires_at: not a date or RFC 3339 time: '2027-02-30'"],
    ),
    "server keys other than images.*": (
        """\
        server:
          images.auto_update_interval: 6
          core.https_address: ":8443"
        """,
        ["7:3: server key 'core.https_address' is not allowed: only images.* settings and "
         "cluster.images_minimal_replica can be managed"],
    ),
}


@pytest.mark.parametrize(
    ("text", "expected"), SEMANTIC_CASES.values(), ids=SEMANTIC_CASES.keys()
)
def test_semantics(tmp_path: Path, text: str, expected: list[str]) -> None:
    assert problems(tmp_path, body(text)) == expected


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("ftp://images.example.com",
         "must be an http:// or https:// URL, not 'ftp://images.example.com'"),
        ("https://", "must be an http:// or https:// URL, not 'https://'"),
        ("images.example.com", "must be an http:// or https:// URL, not 'images.example.com'"),
    ],
)
def test_remote_url_scheme(tmp_path: Path, url: str, message: str) -> None:
    text = f"version: 1\nremotes:\n  images:\n    url: {url}\n"
    assert problems(tmp_path, text) == [f"4:10: remotes.images.url {message}"]


@pytest.mark.parametrize("url", ["http://images.example.com", "https://10.0.0.5:8443"])
def test_remote_url_accepted(tmp_path: Path, url: str) -> None:
    path = tmp_path / "images.yaml"
    path.write_text(f"version: 1\nremotes:\n  images:\n    url: {url}\n")
    assert load_config(path, {}).remotes["images"].url == url


@pytest.mark.parametrize(
    "url", ["tcp://incus:8443", "http://incus:8443", "unix:relative.socket", "unix://host/x"]
)
def test_target_url_scheme(tmp_path: Path, url: str) -> None:
    text = f"version: 1\ntargets:\n  prod:\n    url: {url}\n"
    assert problems(tmp_path, text) == [
        f"4:10: targets.prod.url must be unix:///path/to/unix.socket or https://host:port, "
        f"not {url!r}"
    ]


ALIAS_CASES = {
    "a" * 65: f"alias {'a' * 65!r} is longer than 64 characters",
    "debian 12": "alias 'debian 12' must not contain whitespace",
    "debian\t12": "alias 'debian\\t12' must not contain whitespace",
    "a$b": "alias 'a$b' must not contain $",
    "a?b": "alias 'a?b' must not contain ?",
    "a&b": "alias 'a&b' must not contain &",
    "a+b": "alias 'a+b' must not contain +",
    'a"b': "alias 'a\"b' must not contain \"",
    "a'b": "alias \"a'b\" must not contain '",
    "a`b": "alias 'a`b' must not contain `",
    "a*b": "alias 'a*b' must not contain *",
    "-debian": "alias '-debian' must start and end with a letter or digit",
    "debian/": "alias 'debian/' must start and end with a letter or digit",
    "": "alias name is empty",
}


@pytest.mark.parametrize(("name", "message"), ALIAS_CASES.items(), ids=range(len(ALIAS_CASES)))
def test_alias_names(tmp_path: Path, name: str, message: str) -> None:
    text = body(
        f"""\
        images:
          - source: images:debian/12
            aliases:
              - {json.dumps(name)}
        """
    )
    assert problems(tmp_path, text) == [f"8:9: images[0].aliases[0]: {message}"]


@pytest.mark.parametrize("name", ["a", "debian/bookworm", "ubuntu-24.04", "x" * 64, "a_b:c"])
def test_alias_names_accepted(tmp_path: Path, name: str) -> None:
    path = tmp_path / "images.yaml"
    path.write_text(body(f"images:\n  - source: images:debian/12\n    aliases: ['{name}']\n"))
    assert load_config(path, {}).entries[0].aliases[0].name == name


def test_alias_duplicate_only_matters_per_target(tmp_path: Path) -> None:
    text = body(
        """\
        targets:
          local: {}
          prod:
            url: https://prod.example.com:8443
        images:
          - source: images:debian/12
            aliases: [debian]
            targets: [local]
          - source: images:debian/12
            aliases: [debian]
            targets: [prod]
          - source: images:debian/11
            aliases: [debian]
        """
    )
    assert problems(tmp_path, text) == [
        "17:15: images[2].aliases[0]: alias 'debian' is declared twice for target 'local' "
        "(first at images[0].aliases[0], line 11)",
        "17:15: images[2].aliases[0]: alias 'debian' is declared twice for target 'prod' "
        "(first at images[1].aliases[0], line 14)",
    ]


def test_identity_differs_by_type(tmp_path: Path) -> None:
    path = tmp_path / "images.yaml"
    path.write_text(
        body(
            """\
            images:
              - source: images:debian/12
              - source: images:debian/12
                type: virtual-machine
            """
        )
    )
    assert [e.type for e in load_config(path, {}).entries] == ["container", "virtual-machine"]


def test_pinned_entry_with_defaults_auto_update_is_fine(tmp_path: Path) -> None:
    path = tmp_path / "images.yaml"
    path.write_text(
        body(
            f"""\
            defaults:
              auto_update: true
            images:
              - source: images:debian/12
                fingerprint: {FP}
            """
        )
    )
    assert load_config(path, {}).entries[0].auto_update is False


# --- targets and key material ---------------------------------------------------------


def test_client_key_without_cert(tmp_path: Path) -> None:
    text = body(
        """\
        targets:
          prod:
            url: https://prod.example.com:8443
            client_key: ${KEY}
          dev:
            url: https://dev.example.com:8443
            client_cert: ${CERT}
        """
    )
    env = {"KEY": PEM_KEY, "CERT": PEM_CERT}
    assert problems(tmp_path, text, env) == [
        "8:5: targets.prod sets client_key without client_cert: give both or neither",
        "11:5: targets.dev sets client_cert without client_key: give both or neither",
    ]


def test_certificate_file_missing(tmp_path: Path) -> None:
    text = body(
        """\
        targets:
          prod:
            url: https://prod.example.com:8443
            server_cert: certs/prod.crt
        """
    )
    assert problems(tmp_path, text) == [
        f"8:18: targets.prod.server_cert: file not found: 'certs/prod.crt' "
        f"(looked for {tmp_path / 'certs/prod.crt'})"
    ]


def test_certificate_file_not_pem(tmp_path: Path) -> None:
    (tmp_path / "ca.crt").write_text("not a certificate\n")
    (tmp_path / "dir").mkdir()
    text = (
        "version: 1\nremotes:\n"
        "  a:\n    url: https://a.example\n    certificate: ca.crt\n"
        "  b:\n    url: https://b.example\n    certificate: dir\n"
    )
    assert problems(tmp_path, text) == [
        "5:18: remotes.a.certificate: 'ca.crt' is not a PEM file (no '-----BEGIN' line)",
        "8:18: remotes.b.certificate: 'dir' is a directory, not a PEM file",
    ]


def test_secret_values_never_appear_in_messages(tmp_path: Path) -> None:
    secret_path = "/very/secret/location/key.pem"
    text = body(
        """\
        targets:
          prod:
            url: https://prod.example.com:8443
            client_cert: ${CERT}
            client_key: ${KEY}
        images:
          - source: images:debian/12
            fingerprnt: x
        """
    )
    found = problems(tmp_path, text, {"CERT": "not\na pem", "KEY": secret_path})
    assert found == [
        "8:18: targets.prod.client_cert: the value of ${CERT} is neither PEM text nor a file path",
        "9:17: targets.prod.client_key: file not found: the path in ${KEY}",
        "12:5: unknown key 'fingerprnt' in images[0] (did you mean 'fingerprint'?)",
    ]
    assert not any(secret_path in p or "not\na pem" in p for p in found)


def test_pem_text_never_appears_in_messages(tmp_path: Path) -> None:
    text = body(
        """\
        targets:
          prod:
            url: https://prod.example.com:8443
            client_cert: ${CERT}
            client_key: ${KEY}
            project: 5
        """
    )
    found = problems(tmp_path, text, {"CERT": PEM_CERT, "KEY": PEM_KEY})
    assert found == ["10:14: targets.prod.project must be a string, not a number (quote it)"]


# --- ${VAR} ---------------------------------------------------------------------------


def test_unset_variable(tmp_path: Path) -> None:
    text = body(
        """\
        images:
          - source: ${REMOTE}:debian/12
            aliases: ["${A}-${B}"]
        """
    )
    assert problems(tmp_path, text, {"B": "x"}) == [
        "6:13: images[0].source: environment variable 'REMOTE' is not set "
        "(write ${REMOTE:-fallback} to give a default)",
        "7:15: images[0].aliases[0]: environment variable 'A' is not set "
        "(write ${A:-fallback} to give a default)",
    ]


def test_malformed_reference(tmp_path: Path) -> None:
    text = body(
        """\
        images:
          - source: images:debian/12
            aliases: ["${1x}"]
        """
    )
    assert problems(tmp_path, text) == [
        "7:15: images[0].aliases[0]: malformed variable reference: write ${NAME} or "
        "${NAME:-fallback}, or $${ for a literal ${"
    ]


# --- YAML-level problems -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("", ["1:1: file is empty: a desired-state file starts with 'version: 1'"]),
        ("# only\n# comments\n", ["1:1: file is empty: a desired-state file starts with "
                                  "'version: 1'"]),
        ("- version: 1\n", ["1:1: the file must be a mapping with keys such as version and "
                            "images, not a list"]),
        ("version: 1\nowner: [a\n", ["3:1: invalid YAML: expected ',' or ']', but got "
                                     "'<stream end>'"]),
        ("version: 1\nversion: 1\n", ["2:1: duplicate key 'version'"]),
        ("version: 1\n---\nversion: 1\n", ["2:1: invalid YAML: expected a single document "
                                           "in the stream, but found another document"]),
        ("version: 1\nowner: !secret x\n", ["2:8: unsupported YAML tag '!secret'"]),
    ],
)
def test_yaml_problems(tmp_path: Path, text: str, expected: list[str]) -> None:
    assert problems(tmp_path, text) == expected


def test_duplicate_key_message_hides_values(tmp_path: Path) -> None:
    inline = json.dumps(PEM_KEY)  # one line, "\n" escapes
    text = HEAD + (
        "targets:\n  prod:\n    url: https://prod.example.com:8443\n"
        f"    client_key: {inline}\n    client_key: {inline}\n"
    )
    found = problems(tmp_path, text)
    # Not fatal: the rest of the file is still checked (here: no client_cert).
    assert found == [
        "8:5: targets.prod sets client_key without client_cert: give both or neither",
        "9:5: duplicate key 'client_key'",
    ]
    assert not any("c2VjcmV0" in line for line in found)


def test_not_utf8(tmp_path: Path) -> None:
    path = tmp_path / "images.yaml"
    path.write_bytes(b"version: 1\nowner: caf\xe9\n")
    with pytest.raises(ValidationFailed) as info:
        load_config(path, {})
    assert [str(d) for d in info.value.diagnostics] == [f"{path}:2:11: the file is not UTF-8 text"]


def test_every_problem_at_once_sorted_by_line(tmp_path: Path) -> None:
    text = (
        "version: 1\n"
        "images:\n"
        "  - source: nope:x\n"
        "    typo: 1\n"
        "  - source: bad\n"
        "owner: BAD\n"
        "remotes: {}\n"
    )
    assert problems(tmp_path, text) == [
        "3:13: images[0].source: unknown remote 'nope' (declared remotes: none)",
        "4:5: unknown key 'typo' in images[0] (did you mean 'type'?)",
        "5:13: images[1].source must be <remote>:<alias>, such as images:debian/12, not 'bad'",
        "6:8: owner must be 1 to 63 characters of a-z, 0-9 and '-', starting with a letter "
        "or digit, not 'BAD'",
    ]


def test_validation_failed_renders_one_line_each(tmp_path: Path) -> None:
    path = tmp_path / "images.yaml"
    path.write_text("version: 1\nowner: X\nimages: 3\n")
    with pytest.raises(ValidationFailed) as info:
        load_config(path, {})
    assert str(info.value).splitlines() == [
        f"{path}:2:8: owner must be 1 to 63 characters of a-z, 0-9 and '-', starting with a "
        "letter or digit, not 'X'",
        f"{path}:3:9: images must be a list, not a number",
    ]
