"""Everything this tool asks of git (gitpython): a file at a revision, and its provenance.

Invariants:

* :func:`read_at` reads ``repo.commit(rev).tree / path``: no checkout, the working
  tree is not touched; a file missing at a revision is None, never an error.
* :func:`discover` never fails a run: outside a git repository, in one without a
  commit, or without a usable ``git`` executable, there is no provenance (None).
* A repository URL never carries credentials: ``https://user:token@host/x`` is
  recorded as ``https://host/x`` (query and fragment dropped too).  A scp-like
  ``git@host:org/x.git`` names a login, not a secret, and is kept.
"""

from __future__ import annotations

from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

from reconciler.errors import IncusImagesError
from reconciler.model.observed import Provenance


def read_at(path: Path, rev: str) -> bytes | None:
    """``path``'s bytes at revision ``rev`` of the repository holding it; None if absent there."""
    import git

    try:
        repo = git.Repo(path.resolve().parent, search_parent_directories=True)
    except (git.InvalidGitRepositoryError, git.NoSuchPathError):
        raise IncusImagesError(f"{path} is not in a git repository") from None
    try:
        root = Path(str(repo.working_tree_dir)).resolve()
        rel = path.resolve().relative_to(root).as_posix()
        try:
            commit = repo.commit(rev)
        except (git.BadName, ValueError, git.GitCommandError):
            raise IncusImagesError(f"unknown git revision {rev!r}") from None
        try:
            blob = commit.tree / rel
        except KeyError:
            return None
        data: bytes = blob.data_stream.read()
        return data
    finally:
        repo.close()


def strip_credentials(url: str) -> str:
    """``url`` without user, password, query or fragment (scp-like and local paths as they are)."""
    parts = urlsplit(url)
    if not parts.scheme or not parts.netloc:
        return url
    host = parts.netloc.rpartition("@")[2]
    return urlunsplit((parts.scheme, host, parts.path, "", ""))


def _may_be_in_git(path: Path) -> bool:
    """Whether gitpython could find a repository for ``path``: ``.git`` (a directory, or
    the file a worktree or submodule has) is in the file's folder or one above it.
    False spares importing gitpython (about 0.1 s) for a file outside git."""
    return any((folder / ".git").exists() for folder in path.parents)


def discover(file: Path) -> Provenance | None:
    """The commit, repository and path of ``file`` when it lives in a git work tree."""
    path = file.resolve()
    if not _may_be_in_git(path):
        return None
    try:
        import git  # gitpython; fails at import when no git executable is found
    except ImportError:
        return None
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
