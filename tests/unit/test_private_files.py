"""Key material for path-only libraries: memory files that die with the process."""

from __future__ import annotations

import os
import signal
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from reconciler.adapters.private_files import PrivateFiles, memfd_supported

KEY = "-----BEGIN PRIVATE KEY-----\nnot-a-real-key\n-----END PRIVATE KEY-----\n"
REPO = Path(__file__).resolve().parents[2]


def test_memory_files_hold_the_text_and_close() -> None:
    if not memfd_supported():
        pytest.skip("no memfd_create here: the fallback is tested below")
    files = PrivateFiles("incus-images-test-")
    path = files.add("client.key", KEY)
    assert files.in_memory
    assert os.readlink(path) == "/memfd:incus-images-client.key (deleted)"
    assert Path(path).read_text() == KEY
    assert Path(path).read_text() == KEY  # every open reads from the start
    fd = int(path.rsplit("/", 1)[1])
    assert not os.get_inheritable(fd)  # never passed on to child processes
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    files.close()
    files.close()  # idempotent
    with pytest.raises(OSError):
        os.fstat(fd)


def test_the_fallback_is_a_private_directory_removed_on_close(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TMPDIR", str(tmp_path))
    import tempfile

    monkeypatch.setattr(tempfile, "tempdir", None)
    files = PrivateFiles("incus-images-test-", memory=False)
    path = Path(files.add("client.key", KEY))
    assert not files.in_memory and path.read_text() == KEY
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    assert path.parent.parent == tmp_path
    files.close()
    assert list(tmp_path.iterdir()) == []


def test_a_killed_process_leaves_no_key_on_disk(tmp_path: Path) -> None:
    """SIGKILL: no finalizer runs, yet nothing is left in the temporary directory."""
    if not memfd_supported():
        pytest.skip("no memfd_create here")
    code = ("import sys, time\n"
            "from reconciler.adapters.private_files import PrivateFiles\n"
            "files = PrivateFiles('incus-images-tls-')\n"
            f"print(files.add('client.key', {KEY!r}), flush=True)\n"
            "time.sleep(60)\n")
    env = {**os.environ, "PYTHONPATH": str(REPO), "TMPDIR": str(tmp_path)}
    child = subprocess.Popen([sys.executable, "-c", code], env=env, text=True,
                             stdout=subprocess.PIPE)
    try:
        assert child.stdout is not None
        path = child.stdout.readline().strip()
        assert path.startswith("/proc/self/fd/")
        fd = path.rsplit("/", 1)[1]
        assert os.readlink(f"/proc/{child.pid}/fd/{fd}").startswith("/memfd:")
        assert list(tmp_path.iterdir()) == []  # nothing on disk even while it runs
    finally:
        os.kill(child.pid, signal.SIGKILL)
        child.communicate(timeout=30)
    assert child.returncode == -signal.SIGKILL
    assert list(tmp_path.iterdir()) == []
