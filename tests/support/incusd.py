"""A real ``incusd`` in a throw-away ``INCUS_DIR``, for integration tests.

Invariants:

* The harness starts the daemon itself (``subprocess.Popen`` in a new session, the
  equivalent of ``setsid``) and records that process's PID; it only ever signals
  that PID, never a process found by name.
* The directory comes from ``tempfile.mkdtemp(prefix="ii-", dir="/tmp")`` so the
  socket paths (``DIR/unix.socket``, ``DIR/guestapi/sock``) stay far below the
  108-byte limit of ``AF_UNIX`` addresses.
* Every started daemon runs with ``images.auto_update_interval=0``: no background
  auto-update pass changes the store under a test.
* :meth:`Incusd.stop` removes everything the daemon left: it kills the PID, lazily
  unmounts ``DIR/shmounts`` and ``DIR/guestapi`` and deletes the directory.

The harness talks to the daemon with the standard library only (``http.client``
over the unix socket), so it never depends on the code under test.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import http.client
import json as jsonlib
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from reconciler.model.config import TargetSpec

INCUSD = Path("/usr/libexec/incus/incusd")
START_TIMEOUT = 30.0
STOP_TIMEOUT = 15.0


class DaemonError(RuntimeError):
    """The test daemon did not start, or a raw API call failed."""


class _UnixConnection(http.client.HTTPConnection):
    def __init__(self, path: str, timeout: float) -> None:
        super().__init__("incus", timeout=timeout)
        self._path = path

    def connect(self) -> None:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(self.timeout)
        try:
            sock.connect(self._path)
        except OSError:
            sock.close()
            raise
        self.sock = sock


@dataclass(frozen=True)
class ClientCert:
    """A client certificate made with openssl: PEM texts and the files they live in."""

    name: str
    cert_pem: str
    key_pem: str
    cert_path: Path
    key_path: Path


@dataclass(frozen=True)
class Response:
    """A raw answer of the daemon: HTTP status, headers and the decoded envelope."""

    status: int
    headers: Mapping[str, str]
    body: dict[str, Any]

    @property
    def metadata(self) -> Any:
        return self.body.get("metadata")


class Incusd:
    """One test daemon.  ``start()`` it (or use it as a context manager), ``stop()`` it."""

    def __init__(self, env: Mapping[str, str] | None = None) -> None:
        self.dir = Path(tempfile.mkdtemp(prefix="ii-", dir="/tmp"))
        self.socket = self.dir / "unix.socket"
        self.pid: int | None = None
        self.https_address: str | None = None
        self._proc: subprocess.Popen[bytes] | None = None
        self._env: dict[str, str] = dict(env or {})
        self._certs = self.dir.parent / (self.dir.name + "-certs")

    # -- lifecycle -------------------------------------------------------------------

    def __enter__(self) -> Incusd:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def set_env(self, key: str, value: str | None) -> None:
        """Set (or with None, unset) a variable of incusd's environment, from the next start.

        ``SSL_CERT_FILE`` is the one that matters: Go reads the CA bundle from it once.
        """
        if value is None:
            self._env.pop(key, None)
        else:
            self._env[key] = value

    def start(self) -> None:
        """Start the daemon on this directory and wait until ``/internal/ready`` answers 200."""
        if self.running:
            raise DaemonError(f"incusd in {self.dir} is already running (pid {self.pid})")
        env = {k: v for k, v in os.environ.items() if not k.startswith("INCUS_")}
        env.update(self._env)
        env["INCUS_DIR"] = str(self.dir)
        log = self.dir / "incusd.out"
        with open(log, "ab") as out:
            self._proc = subprocess.Popen(
                [str(INCUSD), "--group", "root", "--logfile", str(self.dir / "incusd.log")],
                env=env, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        self.pid = self._proc.pid
        self._wait_ready()
        if self.https_address is not None:
            # The listener address is stored in the config and comes back by itself.
            self._wait_https()
        self._after_ready()

    def _after_ready(self) -> None:
        """Settle the server settings every test daemon runs with (one ``PATCH /1.0``)."""
        self.set_config({"images.auto_update_interval": "0"})

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            if self._proc is not None and self._proc.poll() is not None:
                raise DaemonError(f"incusd exited with {self._proc.returncode}: {self.log_tail()}")
            try:
                if self._raw("GET", "/internal/ready", None, timeout=2.0)[0] == 200:
                    return
            except OSError:
                pass
            time.sleep(0.05)
        raise DaemonError(f"incusd in {self.dir} not ready after {START_TIMEOUT}s: "
                          f"{self.log_tail()}")

    def log_tail(self, lines: int = 20) -> str:
        text = ""
        for name in ("incusd.log", "incusd.out"):
            with contextlib.suppress(OSError):
                text += (self.dir / name).read_text(errors="replace")
        return "\n".join(text.splitlines()[-lines:])

    def _signal_and_wait(self, sig: signal.Signals, timeout: float) -> None:
        proc = self._proc
        if proc is None:
            return
        if proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(proc.pid, sig)
            try:
                proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(proc.pid, signal.SIGKILL)
                proc.wait(timeout=timeout)
        self._proc = None
        self.pid = None

    def terminate(self) -> None:
        """Stop gracefully: SIGTERM to our PID, wait (about 2 s), SIGKILL if it lingers."""
        self._signal_and_wait(signal.SIGTERM, STOP_TIMEOUT)

    def kill9(self) -> None:
        """SIGKILL our PID (about 20 ms); the directory stays, ready for ``start()``."""
        self._signal_and_wait(signal.SIGKILL, STOP_TIMEOUT)

    def restart(self, *, graceful: bool = True) -> None:
        """Stop (SIGTERM, or SIGKILL with ``graceful=False``) and start again on the same dir."""
        if graceful:
            self.terminate()
        else:
            self.kill9()
        self._unmount()
        self.start()

    def stop(self) -> None:
        """Kill our PID (the directory is thrown away, so no graceful stop), then clean up."""
        self.kill9()
        self._unmount()
        shutil.rmtree(self.dir, ignore_errors=True)
        shutil.rmtree(self._certs, ignore_errors=True)

    def _unmount(self) -> None:
        try:
            mounts = Path("/proc/self/mounts").read_text().split("\n")
        except OSError:
            mounts = []
        mounted = {line.split(" ")[1] for line in mounts if len(line.split(" ")) > 1}
        for sub in ("shmounts", "guestapi"):
            path = str(self.dir / sub)
            if path in mounted:
                subprocess.run(["umount", "-l", path], check=False, capture_output=True)

    # -- raw API ---------------------------------------------------------------------

    def _raw(
        self, method: str, path: str, body: bytes | None, *, timeout: float = 30.0,
        headers: Mapping[str, str] | None = None,
    ) -> tuple[int, dict[str, str], bytes]:
        conn = _UnixConnection(str(self.socket), timeout)
        try:
            hdrs = dict(headers or {})
            if body is not None:
                hdrs.setdefault("Content-Type", "application/json")
            conn.request(method, path, body=body, headers=hdrs)
            resp = conn.getresponse()
            return resp.status, dict(resp.getheaders()), resp.read()
        finally:
            conn.close()

    def api(
        self, method: str, path: str, json: Any = None, *, wait: bool = True,
        check: bool = True, headers: Mapping[str, str] | None = None, timeout: float = 30.0,
    ) -> Response:
        """Call the daemon over its socket; async operations are waited for (``wait``).

        With ``check`` an error envelope (or a failed operation) raises ``DaemonError``.
        ``timeout`` bounds each read of the answer (a list of thousands of images can
        take longer than the default).
        """
        body = None if json is None else jsonlib.dumps(json).encode()
        status, hdrs, raw = self._raw(method, path, body, headers=headers, timeout=timeout)
        envelope: dict[str, Any] = jsonlib.loads(raw) if raw else {}
        if wait and envelope.get("type") == "async":
            op = envelope["operation"]
            sep = "&" if "?" in op else "?"
            w_status, w_hdrs, w_raw = self._raw("GET", f"{op}/wait{sep}timeout=60", None,
                                                timeout=70.0)
            waited: dict[str, Any] = jsonlib.loads(w_raw)
            failed = waited.get("type") == "error" or (
                isinstance(waited.get("metadata"), dict)
                and waited["metadata"].get("status_code") not in (200, None)
            )
            if check and failed:
                raise DaemonError(f"{method} {path}: operation failed: {waited}")
            return Response(w_status, w_hdrs, waited)
        if check and (envelope.get("type") == "error" or status >= 400):
            raise DaemonError(f"{method} {path}: HTTP {status}: {envelope or raw!r}")
        return Response(status, hdrs, envelope)

    def set_config(self, config: Mapping[str, str]) -> None:
        """``PATCH /1.0`` with these server keys (no If-Match)."""
        self.api("PATCH", "/1.0", {"config": dict(config)})

    def config(self) -> dict[str, str]:
        meta = self.api("GET", "/1.0").metadata
        return dict(meta.get("config") or {})

    # -- targets, HTTPS and certificates ---------------------------------------------

    @property
    def unix_url(self) -> str:
        return f"unix://{self.socket}"

    def target(self, name: str = "local", project: str = "default") -> TargetSpec:
        """A target reaching this daemon over its unix socket."""
        return TargetSpec(name=name, url=self.unix_url, project=project)

    def enable_https(self) -> str:
        """Listen on ``127.0.0.1:<free port>``; return ``https://127.0.0.1:<port>``."""
        last: Exception | None = None
        for _ in range(5):
            port = _free_port()
            try:
                self.set_config({"core.https_address": f"127.0.0.1:{port}"})
            except DaemonError as exc:  # the port got taken in between: try another
                last = exc
                continue
            self.https_address = f"127.0.0.1:{port}"
            self._wait_https()
            return self.https_url
        raise DaemonError(f"could not enable the HTTPS listener: {last}")

    def _wait_https(self) -> None:
        assert self.https_address is not None
        host, port = self.https_address.rsplit(":", 1)
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            with contextlib.suppress(OSError), socket.create_connection((host, int(port)), 1):
                return
            time.sleep(0.05)
        raise DaemonError(f"HTTPS listener {self.https_address} never came up")

    @property
    def https_url(self) -> str:
        if self.https_address is None:
            raise DaemonError("the HTTPS listener is not enabled (call enable_https())")
        return f"https://{self.https_address}"

    def server_cert_pem(self) -> str:
        return (self.dir / "server.crt").read_text()

    def https_target(
        self, cert: ClientCert | None, name: str = "remote", project: str = "default",
        *, server_cert: str | None = None,
    ) -> TargetSpec:
        """A target reaching this daemon over HTTPS with ``cert``, pinning its server cert."""
        return TargetSpec(
            name=name, url=self.https_url, project=project,
            client_cert=cert.cert_pem if cert else None,
            client_key=cert.key_pem if cert else None,
            server_cert=server_cert if server_cert is not None else self.server_cert_pem(),
        )

    def make_client_cert(
        self, name: str = "test-client", *, trust: bool = True,
        restricted_projects: list[str] | None = None,
    ) -> ClientCert:
        """Create an EC client certificate with openssl; trust it unless ``trust`` is False.

        ``restricted_projects`` trusts it restricted to those projects.
        """
        self._certs.mkdir(mode=0o700, exist_ok=True)
        crt, key = self._certs / f"{name}.crt", self._certs / f"{name}.key"
        subprocess.run(
            ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
             "ec_paramgen_curve:secp384r1", "-nodes", "-keyout", str(key), "-out", str(crt),
             "-days", "30", "-subj", f"/CN={name}", "-addext", "extendedKeyUsage=clientAuth"],
            check=True, capture_output=True,
        )
        cert = ClientCert(name, crt.read_text(), key.read_text(), crt, key)
        if trust:
            self.trust(cert, restricted_projects=restricted_projects)
        return cert

    def trust(self, cert: ClientCert, *, restricted_projects: list[str] | None = None) -> None:
        """``POST /1.0/certificates`` with the certificate as base64 DER."""
        der = subprocess.run(
            ["openssl", "x509", "-in", str(cert.cert_path), "-outform", "DER"],
            check=True, capture_output=True,
        ).stdout
        body: dict[str, Any] = {
            "type": "client", "name": cert.name,
            "certificate": base64.b64encode(der).decode(),
        }
        if restricted_projects is not None:
            body.update(restricted=True, projects=restricted_projects)
        self.api("POST", "/1.0/certificates", body)

    # -- caches and projects ---------------------------------------------------------

    def flush_stream_cache(self, server_url: str) -> None:
        """Forget the daemon's cached simplestreams index of ``server_url`` (kept for 1 h)."""
        digest = hashlib.sha256(server_url.rstrip("/").encode()).hexdigest()
        shutil.rmtree(self.dir / "cache" / digest, ignore_errors=True)

    def create_project(self, name: str, config: Mapping[str, str] | None = None) -> None:
        self.api("POST", "/1.0/projects", {"name": name, "config": dict(config or {})})


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port
