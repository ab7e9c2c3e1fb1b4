"""Load the desired-state file: ``load_config(path, environ) -> Config``.

Reads the file once, never touches the network, and raises
:class:`ValidationFailed` listing every problem found (``FILE:LINE:COLUMN``,
1-based, at the offending key or value).  ``Config.digest`` is the SHA-256 of
the file's bytes; ``Config.path`` is ``str(path)``.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from pathlib import Path

from reconciler.envexpand import expand
from reconciler.errors import Diagnostic, ValidationFailed
from reconciler.model.config import Config
from reconciler.validate import Context, Reporter, validate
from reconciler.yamlsource import YamlSyntaxError, YPath, parse, render_path


def load_config(path: Path, environ: Mapping[str, str]) -> Config:
    """The validated desired state of ``path``; ``environ`` feeds ``${VAR}`` and the socket."""
    file = str(path)
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise ValidationFailed(
            [Diagnostic(file, 1, 1, f"cannot read the file: {exc.strerror or exc}")]
        ) from None
    return load_config_bytes(raw, file=file, base_dir=path.parent, environ=environ)


def load_config_bytes(
    raw: bytes, *, file: str, base_dir: Path, environ: Mapping[str, str]
) -> Config:
    """Validate a desired-state file's bytes as if read from ``file`` (diagnostics name it).

    Relative paths in it resolve against ``base_dir``.  ``diff`` uses this for a
    file read from a git revision, without a checkout.
    """
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
        raise ValidationFailed([Diagnostic(file, exc.line, exc.column, exc.message)]) from None
    if doc.data is None:
        raise ValidationFailed(
            [Diagnostic(file, 1, 1, "file is empty: a desired-state file starts with 'version: 1'")]
        )
    reporter = Reporter(file, doc.positions)
    for where, message in doc.problems:
        reporter.at_value(where, message)
    expansion = expand(doc.data, environ)
    for where, message in expansion.problems:
        reporter.at_value(where, f"{_name(where)}{message}")
    # A value whose variable is missing was expanded to "": say nothing more about it.
    reporter.silenced.update(where for where, _ in expansion.problems)
    ctx = Context(
        reporter=reporter,
        base_dir=base_dir,
        environ=environ,
        from_environment=expansion.from_environment,
    )
    config = validate(expansion.data, ctx, path=file, digest=digest)
    if config is None or reporter.diagnostics:
        raise ValidationFailed(reporter.diagnostics)
    return config


def _name(where: YPath) -> str:
    return f"{render_path(where)}: " if where else ""
