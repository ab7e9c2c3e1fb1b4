"""Architecture names: Incus's canonical names and the aliases simplestreams uses."""

from __future__ import annotations

# canonical Incus name -> names that mean the same architecture
_ALIASES: dict[str, tuple[str, ...]] = {
    "i686": ("i386", "i586", "386", "x86", "i86pc"),
    "x86_64": ("amd64", "x64", "x86-64"),
    "armv6l": ("armel", "arm"),
    "armv7l": ("armhf", "armhfp", "armv7a", "armv7hl", "armv7b", "armv7"),
    "aarch64": ("arm64", "arm64v8", "armv8"),
    "ppc": ("powerpc",),
    "ppc64": ("powerpc64", "ppc64be"),
    "ppc64le": ("ppc64el", "powerpc64le"),
    "s390x": (),
    "mips": ("mipsel", "mipsle"),
    "mips64": ("mips64el", "mips64le"),
    "riscv32": (),
    "riscv64": (),
    "loongarch64": ("loong64",),
}

_CANONICAL: dict[str, str] = {}
for _name, _others in _ALIASES.items():
    _CANONICAL[_name] = _name
    for _other in _others:
        _CANONICAL[_other] = _name


def canonical(name: str) -> str | None:
    """The canonical Incus name for ``name`` (``amd64`` -> ``x86_64``), or None if unknown."""
    return _CANONICAL.get(name.strip().lower())


def known() -> frozenset[str]:
    return frozenset(_CANONICAL)
