"""Which git commit declared a plan: discover it, and stamp it on the records apply writes.

Invariants:

* Discovery never fails a run: outside a git repository, in one without a
  commit, or without a usable ``git`` executable, there is no provenance (None).
* A repository URL never carries credentials: ``https://user:token@host/x`` is
  recorded as ``https://host/x`` (query and fragment dropped too).  A scp-like
  ``git@host:org/x.git`` names a login, not a secret, and is kept.
* Provenance is information for people (``status``).  It is stamped on the plan's
  records after planning; the planner never sees or compares it, so a new commit
  that changes nothing else never makes a plan show changes.
"""

from __future__ import annotations

from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

from reconciler.model.observed import Inventory, Provenance
from reconciler.model.plan import Plan


def strip_credentials(url: str) -> str:
    """``url`` without user, password, query or fragment (scp-like and local paths as they are)."""
    parts = urlsplit(url)
    if not parts.scheme or not parts.netloc:
        return url
    host = parts.netloc.rpartition("@")[2]
    return urlunsplit((parts.scheme, host, parts.path, "", ""))


def discover(file: Path) -> Provenance | None:
    """The commit, repository and path of ``file`` when it lives in a git work tree."""
    try:
        import git  # gitpython; fails at import when no git executable is found
    except ImportError:
        return None
    path = file.resolve()
    try:
        repo = git.Repo(path.parent, search_parent_directories=True)
    except (git.InvalidGitRepositoryError, git.NoSuchPathError):
        return None
    try:
        top = repo.working_tree_dir
        if top is None or not repo.head.is_valid():
            return None
        rel = path.relative_to(Path(top).resolve()).as_posix()
        commit = repo.head.commit.hexsha
        tracked = bool(repo.git.ls_files("--", rel).strip())
        dirty = not tracked or bool(repo.git.status("--porcelain", "--", rel).strip())
        origin = next((r for r in repo.remotes if r.name == "origin"), None)
        urls = list(origin.urls) if origin is not None else []
        repository = strip_credentials(urls[0]) if urls else str(Path(top).resolve())
    except (git.GitError, ValueError, OSError):
        return None
    finally:
        repo.close()
    return Provenance(commit=commit, repository=repository, path=rel, dirty=dirty)


def stamp(plan: Plan, provenance: Provenance | None) -> Plan:
    """``plan`` recording ``provenance``, on itself and on every record apply will write.

    Records in ``image.download``/``image.adopt``/``image.update`` changes and in the
    final ``ownership`` inventories carry it; nothing else changes.
    """
    if provenance is None:
        return plan.model_copy(update={"provenance": None})
    changes = tuple(
        c.model_copy(update={"record": c.record.model_copy(update={"provenance": provenance})})
        if c.record is not None else c
        for c in plan.changes
    )
    ownership = {t: _stamped(inv, provenance) for t, inv in plan.ownership.items()}
    return plan.model_copy(update={"changes": changes, "ownership": ownership,
                                   "provenance": provenance})


def _stamped(inventory: Inventory, provenance: Provenance) -> Inventory:
    images = {fp: rec.model_copy(update={"provenance": provenance})
              for fp, rec in inventory.images.items()}
    return inventory.model_copy(update={"images": images})
