"""From the expanded YAML data to a :class:`Config`: every rule, every problem at once.

Three passes, all of which always run so that one report lists everything:

1. ``expires_at`` values are parsed (a date is 00:00 UTC; a time without a
   timezone is taken as UTC) and replaced by aware UTC datetimes;
2. the shape is checked with the pydantic model (:mod:`reconciler.desired.shapecheck`);
3. the cross-references and value rules the model cannot express are checked
   on the raw data, defensively (any part may have the wrong shape), and
   certificate files are read.

A :class:`Config` is built only when no pass found anything.  Messages never
contain PEM text, nor the values of variables used for ``client_cert`` or
``client_key``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from reconciler.adapters.material import read_material
from reconciler.desired.assemble import Materials, build_config
from reconciler.desired.fieldvalues import (
    alias_problem,
    days_problem,
    fingerprint_problem,
    parse_expiry,
    profile_problem,
    project_problem,
    property_key_problem,
    property_value_problem,
    remote_url_problem,
    source_problem,
    target_url,
    target_url_problem,
    text_problem,
)
from reconciler.desired.serverkeys import server_key_problem, server_value_problem
from reconciler.desired.shapecheck import check_shape, describe
from reconciler.desired.shown import shown
from reconciler.desired.stores import same_store_problems
from reconciler.desired.yamlsource import Positions, YPath, render_path
from reconciler.errors import Diagnostic
from reconciler.model import arch
from reconciler.model.config import Config

SECRET_FIELDS = ("client_cert", "client_key")
_TARGET_MATERIAL = ("client_cert", "client_key", "server_cert")


@dataclass
class Diagnostics:
    """Collects diagnostics for one file, placing each at a key or value."""

    file: str
    positions: Positions
    diagnostics: list[Diagnostic] = field(default_factory=list)
    silenced: set[YPath] = field(default_factory=set)
    """Values already reported (an unset variable): later problems there are noise."""

    taken: set[tuple[int, int]] = field(default_factory=set)
    """Places the YAML reader already reported (a refused character): one line each."""

    def at_key(self, path: YPath, message: str) -> None:
        line, column = self.positions.key(path)
        if (line, column) in self.taken:
            return
        self.diagnostics.append(Diagnostic(self.file, line, column, message))

    def at_value(self, path: YPath, message: str) -> None:
        if path in self.silenced:
            return
        line, column = self.positions.value(path)
        if (line, column) in self.taken:
            return
        self.diagnostics.append(Diagnostic(self.file, line, column, message))


@dataclass
class Context:
    """What validation needs besides the data."""

    diagnostics: Diagnostics
    base_dir: Path
    environ: Mapping[str, str]
    from_environment: Mapping[YPath, tuple[str, ...]] = field(default_factory=dict)


def validate(data: Any, ctx: Context, *, path: str, digest: str) -> Config | None:
    """Check ``data`` (expanded plain YAML data); the Config when no problem was found."""
    rep = ctx.diagnostics
    if not isinstance(data, dict):
        rep.at_value((), f"the file must be a mapping with keys such as version and images, "
                         f"not {describe(data)}")
        return None
    data = _normalize_expiries(data, rep)
    model, shape_problems = check_shape(data)
    for problem in shape_problems:
        (rep.at_key if problem.where == "key" else rep.at_value)(problem.path, problem.message)
    materials = Materials()
    _Semantics(data, ctx, materials).run()
    if model is None or rep.diagnostics:
        return None
    return build_config(model, materials, ctx.environ, path=path, digest=digest)


def _normalize_expiries(data: dict[str, Any], rep: Diagnostics) -> dict[str, Any]:
    images = data.get("images")
    if not isinstance(images, list):
        return data
    out: list[Any] = []
    for i, entry in enumerate(images):
        if isinstance(entry, dict) and entry.get("expires_at") is not None:
            raw = entry["expires_at"]
            moment = parse_expiry(raw)
            if moment is None:
                rep.at_value(
                    ("images", i, "expires_at"),
                    f"{render_path(('images', i, 'expires_at'))}: "
                    f"not a date or RFC 3339 time: {shown(str(raw))}",
                )
            else:
                entry = {**entry, "expires_at": moment}
        out.append(entry)
    return {**data, "images": out}


def _targets_phrase(names: list[str]) -> str:
    quoted = ", ".join(shown(n) for n in names[:10]) + (", ..." if len(names) > 10 else "")
    return f"targets {quoted}" if len(names) > 1 else f"target {quoted}"


def _names(names: list[str]) -> str:
    listed = ", ".join(n if len(n) <= 40 else shown(n, 40) for n in names[:10])
    return (listed + (", ..." if len(names) > 10 else "")) if names else "none"


class _Semantics:
    """The rules beyond the schema; reads raw data and tolerates any wrong shape."""

    def __init__(self, data: dict[str, Any], ctx: Context, materials: Materials) -> None:
        self.data = data
        self.ctx = ctx
        self.rep = ctx.diagnostics
        self.materials = materials
        remotes = data.get("remotes", {})
        self.remotes: list[str] | None = list(remotes) if isinstance(remotes, dict) else None
        targets = data.get("targets")
        self.targets: list[str] | None
        if targets is None or targets == {}:
            self.targets = ["local"]
        else:
            self.targets = list(targets) if isinstance(targets, dict) else None
        defaults = data.get("defaults")
        self.defaults: dict[str, Any] = defaults if isinstance(defaults, dict) else {}

    def run(self) -> None:
        self._version()
        self._remotes()
        self._targets()
        self._server()
        self._durations()
        self._architecture(("defaults", "architecture"), self.defaults.get("architecture"))
        self.names(("defaults",), self.defaults)
        images = self.data.get("images")
        if isinstance(images, list):
            _EntryRules(self, images).run()

    def names(self, base: YPath, mapping: dict[str, Any]) -> None:
        """``profiles`` and ``properties`` of ``defaults`` or an entry: what Incus would
        refuse or not keep as written (see :mod:`reconciler.desired.fieldvalues`)."""
        profiles = mapping.get("profiles")
        if isinstance(profiles, list):
            for j, name in enumerate(profiles):
                path: YPath = (*base, "profiles", j)
                if isinstance(name, str) and (problem := profile_problem(name)):
                    self.rep.at_value(path, f"{render_path(path)}: {problem}")
        properties = mapping.get("properties")
        if isinstance(properties, dict):
            for key, value in properties.items():
                if not isinstance(key, str):
                    continue
                path = (*base, "properties", key)
                if problem := property_key_problem(key):
                    self.rep.at_key(path, f"{render_path((*base, 'properties'))}: {problem}")
                elif isinstance(value, str) and (problem := property_value_problem(key, value)):
                    self.rep.at_value(path, f"{render_path(path)}: {problem}")

    def material(self, path: YPath, value: Any) -> None:
        if not isinstance(value, str):
            return
        hidden = self.ctx.from_environment.get(path, ()) if path[-1] in SECRET_FIELDS else ()
        found = read_material(value, self.ctx.base_dir, hidden_by=hidden)
        if found.text is not None:
            self.materials.pem[path] = found.text
        else:
            self.rep.at_value(path, f"{render_path(path)}: {found.problem}")

    def _remotes(self) -> None:
        remotes = self.data.get("remotes")
        if not isinstance(remotes, dict):
            return
        for name, remote in remotes.items():
            if not isinstance(remote, dict):
                continue
            base: YPath = ("remotes", name)
            url = remote.get("url")
            if isinstance(url, str) and (problem := remote_url_problem(url)):
                self.rep.at_value((*base, "url"), f"{render_path((*base, 'url'))} {problem}")
            self.material((*base, "certificate"), remote.get("certificate"))

    def _targets(self) -> None:
        targets = self.data.get("targets")
        if not isinstance(targets, dict):
            return
        for name, target in targets.items():
            if not isinstance(target, dict):
                continue
            base: YPath = ("targets", name)
            self._target_urls(base, target)
            project = target.get("project")
            if isinstance(project, str) and (problem := project_problem(project)):
                path = (*base, "project")
                self.rep.at_value(path, f"{render_path(path)} {problem}")
            for field_name in _TARGET_MATERIAL:
                self.material((*base, field_name), target.get(field_name))
            has_cert = target.get("client_cert") is not None
            if has_cert != (target.get("client_key") is not None):
                given, other = ("client_cert", "client_key") if has_cert else (
                    "client_key", "client_cert")
                self.rep.at_key(
                    (*base, given),
                    f"{render_path(base)} sets {given} without {other}: give both or neither",
                )
        environ = self.ctx.environ
        for path, message in same_store_problems(targets, lambda u: target_url(u, environ)):
            self.rep.at_key(path, message)

    def _target_urls(self, base: YPath, target: dict[str, Any]) -> None:
        """``url``, or each of ``urls`` (never both), as a target URL."""
        places: list[tuple[YPath, Any]] = [((*base, "url"), target.get("url"))]
        urls = target.get("urls")
        if isinstance(urls, list):
            places += [((*base, "urls", i), u) for i, u in enumerate(urls)]
            if "url" in target:
                self.rep.at_key((*base, "urls"), f"{render_path(base)} sets both url and urls: "
                                "keep one (urls lists every address to try)")
        for path, url in places:
            if isinstance(url, str) and (problem := target_url_problem(url)):
                self.rep.at_value(path, f"{render_path(path)} {problem}")

    def _version(self) -> None:
        # The shape check compares with ==, so true and 1.0 would pass for 1.
        version = self.data.get("version")
        if version == 1 and type(version) is not int:
            self.rep.at_value(("version",), f"version must be 1, not {shown(version)}")

    def _server(self) -> None:
        server = self.data.get("server")
        if not isinstance(server, dict):
            return
        for key, value in server.items():
            path: YPath = ("server", key)
            if problem := server_key_problem(key):
                self.rep.at_key(path, problem)
            elif isinstance(value, str | int) and (problem := server_value_problem(key, value)):
                self.rep.at_value(path, f"{render_path(path)} {problem}")
            elif isinstance(value, str) and (problem := text_problem(value)):
                self.rep.at_value(path, f"{render_path(path)}: {problem}")

    def _durations(self) -> None:
        places: list[tuple[YPath, Any]] = [
            (("defaults", "expires_after"), self.defaults.get("expires_after"))]
        policy = self.data.get("policy")
        cached = policy.get("cached") if isinstance(policy, dict) else None
        if isinstance(cached, dict):
            places.append((("policy", "cached", "delete_unused_after"),
                           cached.get("delete_unused_after")))
        images = self.data.get("images")
        for i, entry in enumerate(images if isinstance(images, list) else []):
            if isinstance(entry, dict):
                places.append((("images", i, "expires_after"), entry.get("expires_after")))
        for path, value in places:
            if isinstance(value, str) and (problem := days_problem(value)):
                self.rep.at_value(path, f"{render_path(path)} {problem}")

    def _architecture(self, path: YPath, value: Any) -> None:
        if isinstance(value, str) and arch.canonical(value) is None:
            self.rep.at_value(
                path,
                f"{render_path(path)}: unknown architecture {shown(value)} "
                f"(use an Incus name such as x86_64 or aarch64, or amd64, arm64)",
            )


class _EntryRules:
    """Rules for ``images``: per entry, then across entries per target."""

    def __init__(self, sem: _Semantics, images: list[Any]) -> None:
        self.sem = sem
        self.rep = sem.rep
        self.images = images
        # (target, identity) -> first entry index; (target, alias) -> first alias path
        self.identities: dict[tuple[str, tuple[Any, ...]], int] = {}
        self.aliases: dict[tuple[str, str], YPath] = {}

    def run(self) -> None:
        for i, entry in enumerate(self.images):
            if isinstance(entry, dict):
                self._entry(i, entry)

    def _entry(self, i: int, entry: dict[str, Any]) -> None:
        base: YPath = ("images", i)
        source = entry.get("source")
        if isinstance(source, str):
            self._source(base, source)
        self.sem._architecture((*base, "architecture"), entry.get("architecture"))
        self.sem.names(base, entry)
        fingerprint = entry.get("fingerprint")
        if isinstance(fingerprint, str):
            if problem := fingerprint_problem(fingerprint):
                self.rep.at_value((*base, "fingerprint"),
                                  f"{render_path((*base, 'fingerprint'))} {problem}")
            if entry.get("auto_update") is True:
                self.rep.at_value(
                    (*base, "auto_update"),
                    f"{render_path((*base, 'auto_update'))} must be false for a pinned entry "
                    f"(it sets fingerprint)",
                )
        if entry.get("expires_at") is not None and entry.get("expires_after") is not None:
            self.rep.at_key(
                (*base, "expires_after"),
                f"{render_path(base)} sets both expires_at and expires_after: keep one",
            )
        names = self._alias_names(base, entry.get("aliases"))
        targets = self._entry_targets(base, entry)
        if targets is None:
            return
        if isinstance(source, str):
            self._identity(i, entry, source, targets)
        self._duplicate_aliases(names, targets)

    def _source(self, base: YPath, source: str) -> None:
        path = (*base, "source")
        if problem := source_problem(source):
            self.rep.at_value(path, f"{render_path(path)} {problem}")
            return
        remote = source.split(":", 1)[0]
        known = self.sem.remotes
        if known is not None and remote not in known:
            self.rep.at_value(
                path,
                f"{render_path(path)}: unknown remote {shown(remote)} "
                f"(declared remotes: {_names(known)})",
            )

    def _alias_names(self, base: YPath, aliases: Any) -> list[tuple[YPath, str]]:
        if not isinstance(aliases, list):
            return []
        found: list[tuple[YPath, str]] = []
        for j, item in enumerate(aliases):
            path: YPath = (*base, "aliases", j)
            if isinstance(item, dict):
                description = item.get("description")
                where: YPath = (*path, "description")
                if isinstance(description, str) and (problem := text_problem(description)):
                    self.rep.at_value(where, f"{render_path(where)}: {problem}")
                item, path = item.get("name"), (*path, "name")
            if not isinstance(item, str):
                continue
            if problem := alias_problem(item):
                self.rep.at_value(path, f"{render_path(path)}: {problem}")
            found.append((path, item))
        return found

    def _entry_targets(self, base: YPath, entry: dict[str, Any]) -> list[str] | None:
        declared = self.sem.targets
        listed = entry.get("targets")
        if declared is None:
            return None
        if listed is None:
            return declared
        if not isinstance(listed, list):
            return None
        out: list[str] = []
        for j, name in enumerate(listed):
            path: YPath = (*base, "targets", j)
            if not isinstance(name, str):
                continue
            if name not in declared:
                self.rep.at_value(
                    path,
                    f"{render_path(path)}: unknown target {shown(name)} "
                    f"(declared targets: {_names(declared)})",
                )
            elif name in out:
                self.rep.at_value(
                    path, f"{render_path(path)}: target {shown(name)} is listed twice")
            else:
                out.append(name)
        return out

    def _identity(self, i: int, entry: dict[str, Any], source: str, targets: list[str]) -> None:
        defaults = self.sem.defaults
        kind = entry.get("type") or defaults.get("type") or "container"
        raw_arch = entry.get("architecture") or defaults.get("architecture")
        if not isinstance(kind, str):
            return  # the shape check reports it; a list is not even hashable
        machine = (arch.canonical(raw_arch) or raw_arch) if isinstance(raw_arch, str) else None
        identity = (source, kind, machine)
        clashes: dict[int, list[str]] = {}
        for target in targets:
            first = self.identities.setdefault((target, identity), i)
            if first != i:
                clashes.setdefault(first, []).append(target)
        for first, names in clashes.items():
            line = self.rep.positions.value(("images", first))[0]
            self.rep.at_value(
                ("images", i, "source"),
                f"images[{i}] has the same source, type and architecture as images[{first}] "
                f"(line {line}) for {_targets_phrase(names)}",
            )

    def _duplicate_aliases(self, names: list[tuple[YPath, str]], targets: list[str]) -> None:
        for path, name in names:
            clashes: dict[YPath, list[str]] = {}
            for target in targets:
                first = self.aliases.setdefault((target, name), path)
                if first != path:
                    clashes.setdefault(first, []).append(target)
            for first, where in clashes.items():
                line = self.rep.positions.value(first)[0]
                self.rep.at_value(
                    path,
                    f"{render_path(path)}: alias {name!r} is declared twice for "
                    f"{_targets_phrase(where)} "
                    f"(first at {render_path(first)}, line {line})",
                )

