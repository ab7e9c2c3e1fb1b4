"""Names and texts that Incus would refuse or not keep as written are refused by validate.

What the daemon does (checked on Incus 6.0.4): it creates an alias of any name (only
an empty one is refused) and cuts it short at a NUL, so ``deb\\0ian`` becomes an alias
``deb`` that no plan ever matches; profile names with ``/``, ``.`` and ``..`` are
refused; property keys and values are stored as sent, cut short at a NUL, and an empty
value is dropped.  The tool applies Incus's own API-name rule to aliases
(``validate.IsAPIName``: 64 bytes, no white space, none of ``$?&+"'`*``, ASCII
letter or digit first and last) and refuses control characters and lone surrogates
in names, NUL and lone surrogates in free text.
"""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from reconciler.desired.fieldvalues import alias_problem
from reconciler.desired.load import load_config
from reconciler.errors import ValidationFailed

HEAD = """\
version: 1
remotes:
  images:
    url: https://images.linuxcontainers.org
"""


def problems(tmp_path: Path, text: str) -> list[str]:
    """Every diagnostic as ``FILE:LINE:COLUMN: message``, as the CLI prints them."""
    path = tmp_path / "images.yaml"
    path.write_text(HEAD + textwrap.dedent(text), encoding="utf-8")
    with pytest.raises(ValidationFailed) as info:
        load_config(path, {})
    lines = str(info.value).splitlines()
    assert all(line.startswith(f"{path}:") for line in lines)
    return [line[len(str(path)) + 1:] for line in lines]


# Control characters and lone surrogates, even written as escapes, are refused by the
# YAML reader itself, at the value, before any rule runs (one line per place).
READER_CASES = {
    r"deb\0ian": "U+0000", r"deb\x01ian": "U+0001", r"deb\x7Fian": "U+007F",
    r"deb\x9Bian": "U+009B", r"deb\e": "U+001B", r"deb\ud800": "U+D800",
}


@pytest.mark.parametrize(("yaml", "code"), READER_CASES.items(), ids=range(len(READER_CASES)))
def test_alias_names_with_control_characters_refused(tmp_path: Path, yaml: str,
                                                      code: str) -> None:
    assert problems(tmp_path, f"""\
        images:
          - source: images:debian/12
            aliases: ["{yaml}"]
        """) == [f"7:15: control character {code} is not allowed in a value or key"]


def test_alias_problem_names_control_characters() -> None:
    """The rule itself, for names that reach it by another way than the YAML reader."""
    assert alias_problem("deb\0ian") == (
        "alias 'deb\\x00ian' must not contain NUL (U+0000): Incus cuts text short there")
    assert alias_problem("deb\x1b") == (
        "alias 'deb\\x1b' must not contain the control character U+001B")
    assert alias_problem("deb\ud800") == (
        "alias 'deb\\ud800' must not contain U+D800, a lone surrogate that is no character")


# (YAML double-quoted scalar, message after "alias <repr> ")
ALIAS_CASES = {
    r"deb\nian": "'deb\\nian' must not contain whitespace",
    r"deb\_ian": "'deb\\xa0ian' must not contain whitespace",
    r"deb\Lian": "'deb\\u2028ian' must not contain whitespace",
    "\u00e9" * 32 + "x": f"'{'é' * 32}x' is longer than 64 bytes in UTF-8",
    "\u00e9tat": "'état' must start and end with an ASCII letter or digit (A-Z, a-z, 0-9), "
                 "not 'é'",
    "deb/": "'deb/' must start and end with a letter or digit",
    "./x": "'./x' must start and end with a letter or digit",
}


@pytest.mark.parametrize(("yaml", "message"), ALIAS_CASES.items(), ids=range(len(ALIAS_CASES)))
def test_alias_names_refused(tmp_path: Path, yaml: str, message: str) -> None:
    assert problems(tmp_path, f"""\
        images:
          - source: images:debian/12
            aliases: ["{yaml}"]
        """) == [f"7:15: images[0].aliases[0]: alias {message}"]


def test_alias_name_in_a_mapping_and_its_description(tmp_path: Path) -> None:
    assert problems(tmp_path, """\
        images:
          - source: images:debian/12
            aliases:
              - {name: "a\\0b", description: "made\\0by hand"}
        """) == [
        "8:16: control character U+0000 is not allowed in a value or key",
        "8:37: control character U+0000 is not allowed in a value or key",
    ]


@pytest.mark.parametrize("name", [
    "a", "debian/12", "x" * 64, "a\u00e9b", "a.b", "a#b", "a%b", "a:b", "a@b", "1",
])
def test_alias_names_accepted(name: str) -> None:
    """Non-ASCII letters inside, and any other printable character IsAPIName allows."""
    assert alias_problem(name) is None, name


def test_alias_length_counts_bytes() -> None:
    assert alias_problem("a" + "\u00e9" * 31 + "b") is None  # 64 bytes
    assert alias_problem("a" + "\u00e9" * 31 + "bc") == (
        f"alias {'a' + 'é' * 31 + 'bc'!r} is longer than 64 bytes in UTF-8")
    assert alias_problem("a" * 65) == f"alias {'a' * 65!r} is longer than 64 characters"


def test_property_keys_and_values(tmp_path: Path) -> None:
    assert problems(tmp_path, """\
        images:
          - source: images:debian/12
            properties:
              "os\\0x": Debian
              "": nothing
              "a\\x01b": c
              "with space": fine
              release: "12\\0rc"
              variant: ""
              note: "two\\nlines\\tand a tab are kept as written"
              odd: "\\udc00"
        """) == [
        "8:7: control character U+0000 is not allowed in a value or key",
        "9:7: images[0].properties: property key is empty",
        "10:7: control character U+0001 is not allowed in a value or key",
        "12:16: control character U+0000 is not allowed in a value or key",
        "13:16: images[0].properties.variant: property 'variant' has an empty value, which "
        "Incus drops: remove the key instead",
        "15:12: control character U+DC00 is not allowed in a value or key",
    ]


def test_defaults_are_checked_too(tmp_path: Path) -> None:
    assert problems(tmp_path, """\
        defaults:
          profiles: ["default", "p\\0q"]
          properties: {"k\\0": v}
        images:
          - source: images:debian/12
        """) == [
        "6:25: control character U+0000 is not allowed in a value or key",
        "7:16: control character U+0000 is not allowed in a value or key",
    ]


def test_profile_names(tmp_path: Path) -> None:
    assert problems(tmp_path, """\
        images:
          - source: images:debian/12
            profiles: ["default", "", "a/b", ".", "..", "x\\x01y", "ok.name with space"]
        """) == [
        "7:27: images[0].profiles[1]: profile name is empty",
        "7:31: images[0].profiles[2]: profile 'a/b' must not contain /",
        "7:38: images[0].profiles[3]: profile name '.' is not allowed",
        "7:43: images[0].profiles[4]: profile name '..' is not allowed",
        "7:49: control character U+0001 is not allowed in a value or key",
    ]


def test_server_values(tmp_path: Path) -> None:
    assert problems(tmp_path, """\
        server:
          images.remote_cache_expiry: "10\\0"
        images: []
        """) == [
        "6:31: control character U+0000 is not allowed in a value or key",
    ]
