"""Reporters: what a CI log and a terminal see while apply runs."""

from __future__ import annotations

import io
import threading

from reconciler.model.plan import Action, Change
from reconciler.model.result import Outcome, Status
from reconciler.render.progress import (
    PlainReporter,
    TtyReporter,
    change_label,
    make_reporter,
    percent_in,
)
from tests.support.constants import DOWNLOAD_FP as FP

DOWNLOAD = Change(action=Action.IMAGE_DOWNLOAD, target="local", project="default",
                  reason="declared", fingerprint=FP, source="images:debian/12", size=10)
OTHER = DOWNLOAD.model_copy(update={"source": "images:alpine/3.20", "fingerprint": "b" * 64})
ALIAS = Change(action=Action.ALIAS_CREATE, target="local", project="default",
               reason="declared", alias="debian-12", to=FP)


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_labels() -> None:
    assert change_label(DOWNLOAD) == "image.download images:debian/12 4f3a2b1c9d8e"
    assert change_label(ALIAS) == "alias.create debian-12 4f3a2b1c9d8e"
    assert percent_in("rootfs: 42% (12MB/s)") == 42.0
    assert percent_in("metadata: 99.5 %") == 99.5
    assert percent_in("unpacking") is None


def test_plain_first_line_milestones_and_throttle() -> None:
    out, clock = io.StringIO(), Clock()
    rep = PlainReporter(out, clock=clock)
    rep.progress("local", DOWNLOAD, "rootfs: 1%")      # start: printed
    rep.progress("local", DOWNLOAD, "rootfs: 10%")     # throttled
    rep.progress("local", DOWNLOAD, "rootfs: 26%")     # milestone 25
    rep.progress("local", DOWNLOAD, "rootfs: 30%")     # throttled
    clock.now = 5.0
    rep.progress("local", DOWNLOAD, "rootfs: 31%")     # 5 s passed
    clock.now = 6.0
    rep.progress("local", DOWNLOAD, "rootfs: 100%")    # milestones 50, 75 skipped to 100
    rep.progress("local", DOWNLOAD, "rootfs: 100%")    # same milestone, throttled
    rep.done(Outcome(change=DOWNLOAD, status=Status.DONE, via="pull", fingerprint=FP))
    rep.note("local", "inventory\nsaved")
    assert out.getvalue().splitlines() == [
        "local: image.download images:debian/12 4f3a2b1c9d8e: rootfs: 1%",
        "local: image.download images:debian/12 4f3a2b1c9d8e: rootfs: 26%",
        "local: image.download images:debian/12 4f3a2b1c9d8e: rootfs: 31%",
        "local: image.download images:debian/12 4f3a2b1c9d8e: rootfs: 100%",
        "local: image.download images:debian/12 4f3a2b1c9d8e: done (via pull)",
        "local: inventory saved",
    ]


def test_plain_throttles_each_change_separately_and_restarts_after_done() -> None:
    out, clock = io.StringIO(), Clock()
    rep = PlainReporter(out, clock=clock)
    rep.progress("local", DOWNLOAD, "a")
    rep.progress("local", OTHER, "b")          # another change: its own start line
    rep.progress("prod", DOWNLOAD, "c")        # same change on another target: own line
    rep.progress("local", DOWNLOAD, "d")       # throttled
    rep.done(Outcome(change=ALIAS, status=Status.FAILED, message="exists"))
    rep.done(Outcome(change=DOWNLOAD, status=Status.SKIPPED))
    rep.progress("local", DOWNLOAD, "e")       # state was dropped by done
    assert [line.rsplit(": ", 1)[-1] for line in out.getvalue().splitlines()] == [
        "a", "b", "c", "exists", "skipped", "e",
    ]
    assert "FAILED: exists" in out.getvalue()


class FakeTty(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_tty_rewrites_one_status_line() -> None:
    out = FakeTty()
    rep = TtyReporter(out, width=lambda: 200)
    rep.progress("local", DOWNLOAD, "10%")
    rep.progress("local", DOWNLOAD, "20%")
    rep.progress("local", OTHER, "5%")
    rep.done(Outcome(change=DOWNLOAD, status=Status.DONE, via="pull"))
    rep.done(Outcome(change=OTHER, status=Status.DONE))
    written = out.getvalue()
    assert "\n" not in written.split("local: image.download images:debian/12 4f3a2b1c9d8e: done")[0]
    # What a terminal finally shows: the permanent lines, no status left over.
    screen = [line.split("\r")[-1].rstrip() for line in written.split("\n")]
    assert screen == [
        "local: image.download images:debian/12 4f3a2b1c9d8e: done (via pull)",
        "local: image.download images:alpine/3.20 bbbbbbbbbbbb: done",
        "",
    ]
    assert ("local: image.download images:debian/12 4f3a2b1c9d8e: 20% | "
            "local: image.download images:alpine/3.20 bbbbbbbbbbbb: 5%") in written


def test_tty_cuts_the_status_line_to_the_width() -> None:
    out = FakeTty()
    rep = TtyReporter(out, width=lambda: 30)
    rep.progress("local", DOWNLOAD, "x" * 100)
    assert out.getvalue() == "local: image.download imag..."


def test_make_reporter_picks_by_isatty() -> None:
    assert isinstance(make_reporter(FakeTty()), TtyReporter)
    assert isinstance(make_reporter(io.StringIO()), PlainReporter)


def test_reporters_are_thread_safe() -> None:
    out = io.StringIO()
    rep = PlainReporter(out)

    def work(i: int) -> None:
        change = DOWNLOAD.model_copy(update={"fingerprint": f"{i:064x}"})
        for pct in range(0, 101, 5):
            rep.progress("local", change, f"{pct}%")
        rep.done(Outcome(change=change, status=Status.DONE))

    threads = [threading.Thread(target=work, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    lines = out.getvalue().splitlines()
    assert sum(line.endswith(": done") for line in lines) == 8
    assert all(line.startswith("local: image.download ") for line in lines)
