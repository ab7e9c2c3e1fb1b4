"""Load the desired-state file: ``load_config(path, environ) -> Config``.

Reads the file once, never touches the network, and raises
:class:`ValidationFailed` listing every problem found (``FILE:LINE:COLUMN``,
1-based, at the offending key or value).  ``Config.digest`` is the SHA-256 of
the file's bytes; ``Config.path`` is ``str(path)``.

Bounded: only a regular file of at most :data:`MAX_FILE_BYTES` is read (a FIFO
or device is refused without blocking), and :mod:`reconciler.desired.yamlsource` caps
nesting and the number of values, so any input is answered quickly, in little
memory, with exit status 0 or 1.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import replace
from pathlib import Path

from reconciler.adapters.boundedread import FileRefused, read_regular, size_text
from reconciler.desired.envexpand import Expansion, expand
from reconciler.desired.shown import clip
from reconciler.desired.validate import Context, Diagnostics, validate
from reconciler.desired.yamlsource import Positions, YamlSyntaxError, YPath, parse, render_path
from reconciler.errors import Diagnostic, ValidationFailed
from reconciler.model.config import Config

MAX_FILE_BYTES = 256 * 1024
"""Largest desired-state file read (a 1000-entry file is about 100 KiB)."""
MAX_DIAGNOSTICS = 200
"""Problems reported one per line; beyond that, one more line counts the rest."""
MAX_MESSAGE = 400
"""Longest message of one problem line (values in messages are already shortened)."""


def load_config(path: Path, environ: Mapping[str, str], *,
                notes: list[Diagnostic] | None = None) -> Config:
    """The validated desired state of ``path``; ``environ`` feeds ``${VAR}`` and the socket.

    With ``notes`` (``validate``), an unset ``${VAR}`` used only for credentials
    (:data:`CREDENTIALS`) is a note appended there instead of a problem: the file
    is checked without its secrets, and the Config lacks that credential.  Without
    it (``plan``, ``apply``, ...) every unset variable is a problem.
    """
    file = str(path)
    try:
        raw = read_regular(path, MAX_FILE_BYTES)
    except FileRefused as exc:
        raise ValidationFailed([Diagnostic(file, 1, 1, f"the file {exc.reason}")]) from None
    except OSError as exc:
        raise ValidationFailed(
            [Diagnostic(file, 1, 1, f"cannot read the file: {exc.strerror or exc}")]
        ) from None
    return load_config_bytes(raw, file=file, base_dir=path.parent, environ=environ,
                             notes=notes)


def load_config_bytes(
    raw: bytes, *, file: str, base_dir: Path, environ: Mapping[str, str],
    notes: list[Diagnostic] | None = None,
) -> Config:
    """Validate a desired-state file's bytes as if read from ``file`` (diagnostics name it).

    Relative paths in it resolve against ``base_dir``.  ``diff`` uses this for a
    file read from a git revision, without a checkout.
    """
    if len(raw) > MAX_FILE_BYTES:
        raise ValidationFailed([Diagnostic(
            file, 1, 1, f"the file is larger than {size_text(MAX_FILE_BYTES)} ({len(raw)} bytes)")])
    digest = hashlib.sha256(raw).hexdigest()
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        column = exc.start - (raw.rfind(b"\n", 0, exc.start) + 1) + 1
        raise ValidationFailed([Diagnostic(file, line, column, "the file is not UTF-8 text")]) \
            from None
    try:
        doc = parse(text)
    except YamlSyntaxError as exc:
        raise ValidationFailed(bounded(
            [Diagnostic(file, line, column, message) for line, column, message in exc.problems]
        )) from None
    if doc.data is None:
        raise ValidationFailed(
            [Diagnostic(file, 1, 1, "file is empty: a desired-state file starts with 'version: 1'")]
        )
    diags = Diagnostics(file, doc.positions)
    for problem in doc.problems:
        line, column = problem.pos
        diags.diagnostics.append(Diagnostic(file, line, column, problem.message))
        diags.taken.add((line, column))
    # A value the reader refused (an alias, a bad date) was read as null: say nothing more.
    diags.silenced.update(p.path for p in doc.problems if p.path is not None)
    expansion = expand(doc.data, environ)
    deferred = credential_only(expansion) if notes is not None else set()
    if notes is not None:
        notes.extend(_secret_notes(file, doc.positions, expansion.unset, deferred))
    for where, message in expansion.problems:
        if where not in deferred:
            diags.at_value(where, f"{_name(where)}{message}")
    # A value whose variable is missing was expanded to "": say nothing more about it.
    diags.silenced.update(where for where, _ in expansion.problems)
    ctx = Context(
        diagnostics=diags,
        base_dir=base_dir,
        environ=environ,
        from_environment=expansion.from_environment,
    )
    config = validate(expansion.data, ctx, path=file, digest=digest)
    if config is None or diags.diagnostics:
        raise ValidationFailed(bounded(diags.diagnostics))
    return config


CREDENTIALS = frozenset({
    ("targets", "client_cert"), ("targets", "client_key"), ("targets", "server_cert"),
    ("remotes", "certificate"),
})
"""(section, field) of the values that are credentials: key material and trust anchors."""


def is_credential(where: YPath) -> bool:
    """Whether ``where`` is ``targets.NAME.client_cert`` (or key, server_cert) or
    ``remotes.NAME.certificate``."""
    return len(where) == 3 and (where[0], where[2]) in CREDENTIALS


def credential_only(expansion: Expansion) -> set[YPath]:
    """The credential values whose only problems are unset variables that nothing but
    credentials use: what ``validate`` may report as notes."""
    elsewhere = {name for where, names in expansion.from_environment.items()
                 if not is_credential(where) for name in names}
    return {where for where, unset in expansion.unset.items()
            if is_credential(where) and not elsewhere.intersection(unset)}


def _secret_notes(file: str, positions: Positions, unset: Mapping[YPath, tuple[str, ...]],
                  deferred: set[YPath]) -> list[Diagnostic]:
    """One note per credential value whose variables are unset."""
    out = []
    for where in sorted(deferred, key=positions.value):
        names = " and ".join(repr(n) for n in unset[where])
        verb = "are" if len(unset[where]) > 1 else "is"
        line, column = positions.value(where)
        out.append(Diagnostic(file, line, column, (
            f"note: {_name(where)}environment variable {names} {verb} not set: "
            f"validate checks the file without credentials; plan and apply need "
            f"{'them' if len(unset[where]) > 1 else 'it'}")))
    return out


def bounded(diagnostics: list[Diagnostic]) -> list[Diagnostic]:
    """At most :data:`MAX_DIAGNOSTICS` lines (the first by position), each of bounded length.

    A hostile file can hold thousands of problems; the first ones are enough to
    act on, and the last line says how many more there are.
    """
    ordered = sorted(diagnostics, key=lambda d: (d.line, d.column, d.message))
    out = [replace(d, message=clip(d.message, MAX_MESSAGE)) for d in ordered[:MAX_DIAGNOSTICS]]
    rest = ordered[MAX_DIAGNOSTICS:]
    if rest:
        first = rest[0]
        out.append(replace(first, message=f"{len(rest)} more problems, the first of them here "
                                          f"(only {MAX_DIAGNOSTICS} are listed)"))
    return out


def _name(where: YPath) -> str:
    return f"{render_path(where)}: " if where else ""
