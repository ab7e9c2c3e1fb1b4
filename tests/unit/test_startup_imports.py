"""`--help`, `--version` and `validate` start without what only reaching the stores needs."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

PROBE = """
import sys
from reconciler.cli import main
try:
    main(sys.argv[1:])
except SystemExit:
    pass
heavy = ["jsonschema", "requests", "urllib3", "git", "reconciler.apply.executor",
         "reconciler.core.planner", "reconciler.adapters.incus"]
print(" ".join(m for m in heavy if m in sys.modules))
"""

FILE = """\
version: 1
remotes: {r: {url: "https://127.0.0.1:1"}}
targets: {local: {url: "unix:///nonexistent.socket"}}
images:
  - {source: "r:a/1"}
"""


@pytest.mark.parametrize("args", [["--help"], ["--version"], ["plan", "--help"],
                                  ["validate", "-f", "{file}"]])
def test_these_commands_import_nothing_that_reaches_the_stores(args: list[str],
                                                                tmp_path: Path) -> None:
    file = tmp_path / "images.yaml"
    file.write_text(FILE)
    argv = [a.format(file=file) for a in args]
    done = subprocess.run([sys.executable, "-c", PROBE, *argv], capture_output=True,
                          text=True, check=True, cwd=Path(__file__).parents[2])
    assert done.stdout.splitlines()[-1] == "", done.stdout + done.stderr


ENDING = """
import atexit, sys
from reconciler import __main__ as m

atexit.register(lambda: print("an exit handler from before the script ran"))

def entry():
    atexit.register(lambda: print("a later exit handler ran"))
    print("the command's output", end="")  # unflushed until the end
    return 3

m.entry = entry
m.script()
"""


def test_the_script_ends_with_its_status_after_every_exit_handler() -> None:
    """The process ends without tearing the interpreter down, but only after every exit
    handler ran (leases left, private files, a wrapper's), last registered first, and
    the output was flushed."""
    done = subprocess.run([sys.executable, "-c", ENDING], capture_output=True, text=True,
                          check=False, cwd=Path(__file__).parents[2])
    assert done.returncode == 3, done.stderr
    assert done.stdout == ("the command's outputa later exit handler ran\n"
                           "an exit handler from before the script ran\n")


def test_an_uncaught_error_still_ends_the_usual_way() -> None:
    probe = ENDING.replace("    return 3", "    raise RuntimeError('boom')")
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                          check=False, cwd=Path(__file__).parents[2])
    assert done.returncode == 1 and "RuntimeError: boom" in done.stderr


LOST = """
import os, signal, sys, weakref
from reconciler import __main__ as m

m._catch_early()

class Thing:
    pass

thing = Thing()

def callback(_ref):  # the handler runs in here, where Python drops its exception
    os.kill(os.getpid(), signal.SIGTERM)
    for _ in range(10_000):
        pass

ref = weakref.ref(thing, callback)
del thing
print("went on", flush=True)
sys.argv = ["incus-images", "--version"]
sys.exit(m.entry())
"""


def test_a_start_up_signal_whose_exception_python_dropped_still_stops_the_run() -> None:
    """A signal landing in a weakref callback (importlib's module locks have one) raises
    where Python only prints the exception: the run still stops, with its one line."""
    done = subprocess.run([sys.executable, "-c", LOST], capture_output=True, text=True,
                          check=False, cwd=Path(__file__).parents[2])
    assert done.returncode == 143, done.stdout + done.stderr
    assert done.stdout == "went on\n"  # --version did not run
    assert done.stderr == "incus-images: interrupted (SIGTERM)\n"
