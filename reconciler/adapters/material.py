"""Certificates and keys given in the file: PEM text, or a path to a PEM file.

A value containing ``-----BEGIN`` is PEM text.  Anything else is a path,
relative to the directory of the desired-state file, that must name a readable
PEM file.  Messages never contain PEM text; when ``secret`` is set (the value
came from an environment variable used for a key) they do not contain the path
either, only the variable names.

Bounded: PEM text and files are at most :data:`MAX_MATERIAL_BYTES`; a path must
name a regular file, opened without blocking (a FIFO, ``/dev/zero`` or
``/dev/urandom`` is refused at once, never read).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from reconciler.adapters.boundedread import FileRefused, read_regular, size_text
from reconciler.desired.shown import shown as show

PEM_MARK = "-----BEGIN"
MAX_MATERIAL_BYTES = 64 * 1024
"""Largest certificate or key accepted (a certificate chain is a few KiB)."""


@dataclass(frozen=True)
class Material:
    """Either ``text`` (PEM) or ``problem`` (a message fragment) is set."""

    text: str | None = None
    problem: str | None = None


def read_material(value: str, base_dir: Path, *, hidden_by: tuple[str, ...] = ()) -> Material:
    """Resolve one certificate/key value; ``hidden_by`` names variables whose value is secret."""
    if PEM_MARK in value:
        if len(value.encode("utf-8", errors="replace")) > MAX_MATERIAL_BYTES:
            return Material(problem=f"the PEM text is larger than {size_text(MAX_MATERIAL_BYTES)}")
        return Material(text=value)
    variables = ", ".join(f"${{{name}}}" for name in hidden_by)
    if hidden_by:
        shown = f"the path in {variables}"
    elif "\n" in value or len(value) > 4096:
        shown = "the value"
    else:
        shown = show(value)
    if not value.strip() or "\n" in value or "\0" in value:
        what = f"the value of {variables}" if hidden_by else shown
        return Material(problem=f"{what} is neither PEM text nor a file path")
    path = base_dir / value
    try:
        data = read_regular(path, MAX_MATERIAL_BYTES)
    except FileRefused as exc:
        return Material(problem=f"{shown} {exc.reason}")
    except FileNotFoundError:
        where = ""
        if not hidden_by and not Path(value).is_absolute():
            where = f" (looked for {path})"
        return Material(problem=f"file not found: {shown}{where}")
    except IsADirectoryError:
        return Material(problem=f"{shown} is a directory, not a PEM file")
    except OSError as exc:
        return Material(problem=f"cannot read {shown}: {exc.strerror or exc}")
    text = data.decode("utf-8", errors="replace")
    if PEM_MARK not in text:
        return Material(problem=f"{shown} is not a PEM file (no '{PEM_MARK}' line)")
    return Material(text=text)
