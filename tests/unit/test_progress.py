"""Reporters: what a CI log and a terminal see while apply runs (clocks moved by hand)."""

from __future__ import annotations

import io
import re
import threading

import pytest

from reconciler.model.plan import Action, Change
from reconciler.model.result import Outcome, Status
from reconciler.render import colour
from reconciler.render.live import TtyReporter
from reconciler.render.progress import (
    PlainReporter,
    change_label,
    doing,
    make_reporter,
    percent_in,
    reporting,
)
from reconciler.render.readings import Reading, read
from tests.support.constants import DOWNLOAD_FP as FP

DOWNLOAD = Change(action=Action.IMAGE_DOWNLOAD, target="local", project="default",
                  reason="declared", fingerprint=FP, source="images:debian/12", size=10)
OTHER = DOWNLOAD.model_copy(update={"source": "images:alpine/3.20", "fingerprint": "b" * 64})
BIG = DOWNLOAD.model_copy(update={"size": 63_000_000})
BIG_TOO = OTHER.model_copy(update={"size": 20_000_000})
ALIAS = Change(action=Action.ALIAS_CREATE, target="local", project="default",
               reason="declared", alias="debian-12", to=FP)
ESC = re.compile(r"\x1b")


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


class FakeTty(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_labels() -> None:
    assert change_label(DOWNLOAD) == "image.download images:debian/12 4f3a2b1c9d8e"
    assert change_label(ALIAS) == "alias.create debian-12 4f3a2b1c9d8e"
    assert doing("local", DOWNLOAD) == "downloading images:debian/12 to local"
    assert doing("prod", ALIAS) == "creating alias debian-12 on prod"
    assert percent_in("rootfs: 42% (12MB/s)") == 42.0
    assert percent_in("metadata: 99.5 %") == 99.5
    assert percent_in("unpacking") is None


@pytest.mark.parametrize(("text", "size", "reading"), [
    ("rootfs: 37% (45.20MB/s)", 1000, Reading("rootfs", 37.0, 370, 45_200_000.0)),
    ("rootfs: 37% (45.20MB/s)", None, Reading("rootfs", 37.0, None, 45_200_000.0)),
    # The metadata file's percentage is not the image's: no bytes from it.
    ("metadata: 100% (1.20MB/s)", 1000, Reading("metadata", 100.0, None, 1_200_000.0)),
    ("37% (45.20MB/s)", 1000, Reading(None, 37.0, 370, 45_200_000.0)),
    ("123.45MB (5.00MB/s)", None, Reading(None, None, 123_450_000, 5_000_000.0)),
    ("upload: 8.4MB", 63_000_000, Reading("upload", None, 8_400_000, None)),
    ("upload: 62.9MB done", None, Reading("upload", None, 62_900_000, None)),
    ("upload: 70.0MB done", 63_000_000, Reading("upload", None, 63_000_000, None)),
    ("rootfs delta: 5%", 200, Reading("rootfs delta", 5.0, 10, None)),
    ("Generating rootfs tarball: 1.2GB (3MB/s)", None,
     Reading("Generating rootfs tarball", None, 1_200_000_000, 3_000_000.0)),
    ("Unpacking the OCI image", None, Reading()),
    ("", None, Reading()),
])
def test_one_parser_reads_daemon_and_upload_progress(
        text: str, size: int | None, reading: Reading) -> None:
    assert read(text, size) == reading


def test_plain_first_line_milestones_throttle_and_elapsed() -> None:
    out, clock = io.StringIO(), Clock()
    rep = PlainReporter(out, clock=clock)
    rep.start("local", DOWNLOAD)
    clock.now = 1.0
    rep.progress("local", DOWNLOAD, "rootfs: 1%")      # first: printed
    rep.progress("local", DOWNLOAD, "rootfs: 10%")     # throttled
    rep.progress("local", DOWNLOAD, "rootfs: 26%")     # milestone 25
    rep.progress("local", DOWNLOAD, "rootfs: 30%")     # throttled
    clock.now = 6.0
    rep.progress("local", DOWNLOAD, "rootfs: 31%")     # 5 s passed
    clock.now = 7.0
    rep.progress("local", DOWNLOAD, "rootfs: 100%")    # milestones 50, 75 skipped to 100
    rep.progress("local", DOWNLOAD, "rootfs: 100%")    # same milestone, throttled
    clock.now = 67.5
    rep.done(Outcome(change=DOWNLOAD, status=Status.DONE, via="pull", fingerprint=FP))
    rep.note("local", "inventory\nsaved")
    rep.done(Outcome(change=ALIAS, status=Status.SKIPPED, message="earlier failure"))
    label = "local: image.download images:debian/12 4f3a2b1c9d8e"
    assert out.getvalue().splitlines() == [
        f"{label}: rootfs: 1% [1s elapsed]",
        f"{label}: rootfs: 26% [1s elapsed]",
        f"{label}: rootfs: 31% [6s elapsed]",
        f"{label}: rootfs: 100% [7s elapsed]",
        f"{label}: done (via pull) [1m07s]",
        "local: inventory saved",
        "local: alias.create debian-12 4f3a2b1c9d8e: skipped (earlier failure)",
    ]


def test_plain_upload_bytes_count_toward_milestones_and_show_the_total() -> None:
    out, clock = io.StringIO(), Clock()
    rep = PlainReporter(out, clock=clock)
    rep.start("local", BIG)
    for mb in (8.4, 16.8, 33.6, 62.9):
        rep.progress("local", BIG, f"upload: {mb}MB")
    lines = out.getvalue().splitlines()
    assert [line.split(": upload: ")[1] for line in lines] == [
        "8.4MB (8.4 MB of 63.0 MB) [0s elapsed]",     # the first
        "16.8MB (16.8 MB of 63.0 MB) [0s elapsed]",   # 26 %: milestone 25
        "33.6MB (33.6 MB of 63.0 MB) [0s elapsed]",   # 53 %: milestone 50
        "62.9MB (62.9 MB of 63.0 MB) [0s elapsed]",   # 99.8 %: milestone 75
    ]


def test_plain_throttles_each_change_separately_and_restarts_after_done() -> None:
    out, clock = io.StringIO(), Clock()
    rep = PlainReporter(out, clock=clock)
    rep.progress("local", DOWNLOAD, "a")
    rep.progress("local", OTHER, "b")          # another change: its own first line
    rep.progress("prod", DOWNLOAD, "c")        # same change on another target: own line
    rep.progress("local", DOWNLOAD, "d")       # throttled
    rep.done(Outcome(change=ALIAS, status=Status.FAILED, message="exists"))
    rep.done(Outcome(change=DOWNLOAD, status=Status.SKIPPED))
    rep.progress("local", DOWNLOAD, "e")       # state was dropped by done
    assert [line.rsplit(": ", 1)[-1] for line in out.getvalue().splitlines()] == [
        "a [0s elapsed]", "b [0s elapsed]", "c [0s elapsed]", "exists", "skipped [0s]",
        "e [0s elapsed]",
    ]
    assert "FAILED: exists" in out.getvalue()


def test_plain_heartbeat_during_a_silent_phase() -> None:
    """At least one line every 30 s per running change, counted from its last line."""
    out, clock = io.StringIO(), Clock()
    rep = PlainReporter(out, clock=clock)
    rep.start("local", BIG)
    rep.start("local", ALIAS)
    clock.now = 29.9
    rep.tick()
    assert out.getvalue() == ""
    clock.now = 30.0
    rep.tick()
    assert out.getvalue().splitlines() == [
        "still downloading images:debian/12 to local... [30s elapsed]",
        "still creating alias debian-12 on local... [30s elapsed]",
    ]
    rep.done(Outcome(change=ALIAS, status=Status.DONE))
    clock.now = 45.0
    rep.tick()                                           # 15 s since the last line
    rep.progress("local", BIG, "rootfs: 10% (1MB/s)")   # a line: the silence restarts
    clock.now = 74.0
    rep.tick()
    clock.now = 75.0
    rep.tick()
    rep.done(Outcome(change=BIG, status=Status.DONE, via="pull"))
    clock.now = 200.0
    rep.tick()                                           # nothing runs: nothing to say
    assert out.getvalue().splitlines()[2:] == [
        "local: alias.create debian-12 4f3a2b1c9d8e: done [30s]",
        "local: image.download images:debian/12 4f3a2b1c9d8e: rootfs: 10% (1MB/s) "
        "[45s elapsed]",
        "still downloading images:debian/12 to local... [1m15s elapsed]",
        "local: image.download images:debian/12 4f3a2b1c9d8e: done (via pull) [1m15s]",
    ]


def test_reporting_on_a_pipe_beats_from_a_thread_until_the_block_ends() -> None:
    out, clock = io.StringIO(), Clock()
    beaten = threading.Event()

    class Watched(io.StringIO):
        def write(self, s: str) -> int:
            if s.startswith("still "):
                beaten.set()
            return out.write(s)

    with reporting(Watched(), environ={}, clock=clock, tick=0.01) as rep:
        assert isinstance(rep, PlainReporter)
        rep.start("local", BIG)
        clock.now = 31.0
        assert beaten.wait(10), "no heartbeat came"
    after = out.getvalue()
    clock.now = 100.0
    assert "still downloading images:debian/12 to local... [31s elapsed]\n" in after
    assert not ESC.search(after)


def _screen(rep: TtyReporter, out: FakeTty) -> str:
    rep.close()
    return out.getvalue()


def test_tty_draws_a_bar_per_download_with_size_percentage_speed_and_eta() -> None:
    out, clock = FakeTty(), Clock()
    rep = TtyReporter(out, clock=clock, width=140)
    rep.start("local", BIG)
    rep.start("local", BIG_TOO)
    rep.progress("local", BIG, "rootfs: 10% (2MB/s)")
    rep.progress("local", BIG_TOO, "rootfs: 5%")
    clock.now = 2.0
    rep.progress("local", BIG, "rootfs: 45% (12.3MB/s)")
    rep.progress("local", BIG_TOO, "rootfs: 50%")
    rep._bars.refresh()
    frame = out.getvalue()
    plain = re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", frame)
    assert "local: images:debian/12" in plain and "local: images:alpine/3.20" in plain
    assert "45%" in plain and "28.4/63.0 MB" in plain      # percentage and size
    assert "50%" in plain and "10.0/20.0 MB" in plain      # the second bar, at once
    # Bytes per second and time left: the daemon's own speed when it gives one
    # (34.65 MB left at 12.3 MB/s: 2.8 s, rounded up), rich's estimate from the bytes otherwise.
    big_line = next(line for line in plain.split("\r")[-1].splitlines() if "debian" in line)
    assert "12.3 MB/s" in big_line and "0:00:03" in big_line, big_line
    assert "4.5 MB/s" in plain                              # (10 - 1) MB in 2 s, estimated
    assert "━" in plain                                     # the bar itself
    clock.now = 9.0
    rep.done(Outcome(change=BIG, status=Status.DONE, via="pull"))
    rep.done(Outcome(change=BIG_TOO, status=Status.FAILED, message="no space"))
    screen = _screen(rep, out)
    assert "local: image.download images:debian/12 4f3a2b1c9d8e: \x1b[32mdone (via pull)" in screen
    assert "\x1b[31mFAILED: no space" in screen
    assert "[9s]" in screen


def test_tty_reads_markup_and_escapes_as_text() -> None:
    out = FakeTty()
    rep = TtyReporter(out, width=120)
    rep.note("local", "[bold red]not markup[/] \x1b[2J")
    odd = BIG.model_copy(update={"source": "r:[red]x[/]"})
    rep.progress("local", odd, "rootfs: 5%")
    rep._bars.refresh()
    screen = _screen(rep, out)
    assert "[bold red]not markup[/] \\u001b[2J" in screen
    assert "local: r:[red]x[/]" in screen


@pytest.mark.parametrize(("stream", "environ", "off", "kind"), [
    (FakeTty(), {}, False, TtyReporter),
    (FakeTty(), {"TERM": "xterm-256color", "NO_COLOR": ""}, False, TtyReporter),
    (FakeTty(), {"NO_COLOR": "1"}, False, PlainReporter),
    (FakeTty(), {"NO_COLOR": "0"}, False, PlainReporter),   # any non-empty value
    (FakeTty(), {"TERM": "dumb"}, False, PlainReporter),
    (FakeTty(), {}, True, PlainReporter),                   # --no-color
    (io.StringIO(), {}, False, PlainReporter),              # a pipe, a file
])
def test_make_reporter_picks_bars_only_for_a_terminal_that_wants_colour(
        stream: io.StringIO, environ: dict[str, str], off: bool, kind: type) -> None:
    with colour.disabled(off):
        assert isinstance(make_reporter(stream, environ=environ), kind)
        assert colour.wanted(stream, environ) is (kind is TtyReporter)


@pytest.mark.parametrize("kind", ["plain", "tty"])
def test_reporters_are_thread_safe(kind: str) -> None:
    out = FakeTty()
    rep: PlainReporter | TtyReporter = (
        PlainReporter(out) if kind == "plain" else TtyReporter(out, width=200))

    def work(i: int) -> None:
        change = BIG.model_copy(update={"fingerprint": f"{i:064x}"})
        rep.start("local", change)
        for pct in range(0, 101, 5):
            rep.progress("local", change, f"rootfs: {pct}%")
        rep.done(Outcome(change=change, status=Status.DONE))

    threads = [threading.Thread(target=work, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if isinstance(rep, TtyReporter):
        rep.close()
        assert not rep._tasks
    text = re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", out.getvalue())
    assert sum(": done [" in line for line in text.splitlines()) == 8
