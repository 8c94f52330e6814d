"""Render an HTML file in real headless Chromium and report what the page did.

``render(html, folder)`` opens the file once, drives the browser over the DevTools
protocol (``--remote-debugging-pipe``: NUL-separated JSON on file descriptors 3 and 4,
no port, no websocket), and returns a PNG screenshot, a PDF printed with the page's
own print stylesheet and @page size, every console message, uncaught exception and
browser log entry, and every network request the browser attempted.

Network requests are observed outside the browser, by recording proxies on 127.0.0.1
that write down each request line and answer 502, so nothing is ever fetched. The page
is opened in a browser context of its own whose proxy is the *page* recorder, for every
scheme and host, loopback included; the browser's own background traffic (update
checks, sign-in, which flags do not fully silence) goes to a second recorder through
``--proxy-server``. Host names resolve to nothing, so no request leaves the machine
either way, and whatever the page recorder lists, the page asked for."""

from __future__ import annotations

import base64
import fcntl
import json
import os
import queue
import shutil
import socketserver
import subprocess
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
BASH = shutil.which("bash") or "/bin/bash"  # dash takes only one-digit descriptors
WINDOW = (1280, 1600)
TIMEOUT = 60.0
REFUSAL = b"HTTP/1.1 502 Bad Gateway\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"

QUIET_FLAGS = (
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-default-apps",
    "--disable-extensions",
    "--disable-breakpad",
    "--disable-client-side-phishing-detection",
    "--disable-domain-reliability",
    "--disable-features=NetworkTimeServiceQuerying,Translate,OptimizationHints,MediaRouter",
    "--no-default-browser-check",
    "--no-first-run",
    "--no-pings",
    "--metrics-recording-only",
    "--safebrowsing-disable-auto-update",
    "--password-store=basic",
    "--use-mock-keychain",
)


@dataclass
class Rendering:
    """What one page did in the browser."""

    png: Path
    pdf: Path
    console: list[tuple[str, str]] = field(default_factory=list)  # (level, text)
    requests: list[str] = field(default_factory=list)  # seen by the recording proxy
    loads: list[str] = field(default_factory=list)  # URLs the page asked for, but its own
    background: list[str] = field(default_factory=list)  # the browser's own, not the page's

    @property
    def problems(self) -> list[tuple[str, str]]:
        """Console messages at level warning or error (exceptions count as errors)."""
        return [(level, text) for level, text in self.console if level in ("warning", "error")]


# --- the recording proxy ----------------------------------------------------------------


class _Recorder(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _RecordRequest)
        self.seen: list[str] = []
        self.lock = threading.Lock()

    @property
    def port(self) -> int:
        return self.server_address[1]


class _RecordRequest(socketserver.StreamRequestHandler):
    """Writes down the request line (``GET http://host/path``, ``CONNECT host:443``) and
    answers 502, so nothing is ever fetched."""

    def handle(self) -> None:
        self.request.settimeout(5)
        try:
            line = self.rfile.readline(8192).decode("latin-1").strip()
        except OSError:
            return
        if line:
            with self.server.lock:
                self.server.seen.append(" ".join(line.split()[:2]))
        self.wfile.write(REFUSAL)


# --- the DevTools pipe ------------------------------------------------------------------


class _Pipe:
    """Commands go to the browser's fd 3, replies and events come back on its fd 4."""

    def __init__(self, to_browser: int, from_browser: int, deadline: float) -> None:
        self.out = os.fdopen(to_browser, "wb", buffering=0)
        self.inbox: queue.Queue[dict | None] = queue.Queue()
        self.events: list[dict] = []
        self.deadline = deadline
        self.next_id = 0
        threading.Thread(target=self._read, args=(from_browser,), daemon=True).start()

    def _read(self, fd: int) -> None:
        buffer = b""
        with os.fdopen(fd, "rb", buffering=0) as stream:
            while chunk := stream.read(65536):
                buffer += chunk
                *messages, buffer = buffer.split(b"\0")
                for message in messages:
                    self.inbox.put(json.loads(message))
        self.inbox.put(None)

    def _next(self) -> dict:
        remaining = self.deadline - time.monotonic()
        try:
            message = self.inbox.get(timeout=max(remaining, 0.01))
        except queue.Empty:
            raise TimeoutError("Chromium did not answer in time") from None
        if message is None:
            raise RuntimeError("Chromium closed the DevTools pipe")
        return message

    def call(self, method: str, session: str | None = None, **params) -> dict:
        self.next_id += 1
        message = {"id": self.next_id, "method": method, "params": params}
        if session:
            message["sessionId"] = session
        self.out.write(json.dumps(message).encode() + b"\0")
        while True:
            reply = self._next()
            if reply.get("id") != self.next_id:
                self.events.append(reply)
            elif "error" in reply:
                raise RuntimeError(f"{method}: {reply['error']}")
            else:
                return reply["result"]

    def wait_for(self, method: str, since: int) -> dict:
        """The first ``method`` event from ``events[since]`` on, waiting for it if need be."""
        for event in self.events[since:]:
            if event.get("method") == method:
                return event
        while True:
            event = self._next()
            self.events.append(event)
            if event.get("method") == method:
                return event

    def close(self) -> None:
        self.out.close()


def _high_fd(fd: int) -> int:
    """A copy of fd numbered 10 or above, so the shell's 3<& and 4>& cannot clobber it."""
    copy = fcntl.fcntl(fd, fcntl.F_DUPFD_CLOEXEC, 10)
    os.close(fd)
    return copy


def _launch(folder: Path, proxy_port: int) -> tuple[subprocess.Popen, int, int]:
    commands_r, commands_w = os.pipe()
    replies_r, replies_w = os.pipe()
    commands_r, replies_w = _high_fd(commands_r), _high_fd(replies_w)
    flags = [
        "--headless",
        "--no-sandbox",  # CI runs as root, where the sandbox cannot start
        "--disable-gpu",
        f"--user-data-dir={folder / 'profile'}",
        "--remote-debugging-pipe",
        f"--proxy-server=http://127.0.0.1:{proxy_port}",
        "--proxy-bypass-list=<-loopback>",
        "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1",
        *QUIET_FLAGS,
        "about:blank",
    ]
    shell = f'exec "$@" 3<&{commands_r} 4>&{replies_w}'
    with open(folder / "chromium.log", "wb") as log:
        process = subprocess.Popen(
            [BASH, "-c", shell, "bash", CHROMIUM, *flags],
            pass_fds=(commands_r, replies_w),
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=log,
        )
    os.close(commands_r)
    os.close(replies_w)
    return process, commands_w, replies_r


# --- rendering --------------------------------------------------------------------------


def render(html: Path, folder: Path, timeout: float = TIMEOUT) -> Rendering:
    """Open ``html`` in headless Chromium; write ``folder``/page.png and page.pdf (and
    chromium.log, the browser's own output, for when something goes wrong)."""
    if CHROMIUM is None:
        raise RuntimeError("chromium is not installed")
    folder.mkdir(parents=True, exist_ok=True)
    result = Rendering(png=folder / "page.png", pdf=folder / "page.pdf")
    page, background = _Recorder(), _Recorder()
    for recorder in (page, background):
        threading.Thread(target=recorder.serve_forever, daemon=True).start()
    process, to_browser, from_browser = _launch(folder, background.port)
    pipe = _Pipe(to_browser, from_browser, time.monotonic() + timeout)
    try:
        session = _open(pipe, html.resolve().as_uri(), f"http://127.0.0.1:{page.port}")
        _capture(pipe, session, result)
        pipe.call("Browser.close")
    finally:
        pipe.close()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        for recorder in (page, background):
            recorder.shutdown()
            recorder.server_close()
    result.console = _console(pipe.events)
    result.loads = _loads(pipe.events, html.resolve().as_uri())
    result.requests, result.background = list(page.seen), list(background.seen)
    return result


def _open(pipe: _Pipe, url: str, proxy: str) -> str:
    """Load url in a tab of a fresh browser context that uses ``proxy``; its session."""
    context = pipe.call(
        "Target.createBrowserContext", proxyServer=proxy, proxyBypassList="<-loopback>"
    )["browserContextId"]
    target = pipe.call("Target.createTarget", url="about:blank", browserContextId=context)
    session = pipe.call("Target.attachToTarget", targetId=target["targetId"], flatten=True)
    session = session["sessionId"]
    for domain in ("Page", "Runtime", "Log", "Network"):
        pipe.call(f"{domain}.enable", session)
    width, height = WINDOW
    pipe.call(
        "Emulation.setDeviceMetricsOverride", session,
        width=width, height=height, deviceScaleFactor=1, mobile=False,
    )  # fmt: skip
    since = len(pipe.events)  # so a load event of the blank tab cannot count
    navigation = pipe.call("Page.navigate", session, url=url)
    if navigation.get("errorText"):
        raise RuntimeError(f"Chromium could not open {url}: {navigation['errorText']}")
    pipe.wait_for("Page.loadEventFired", since)
    return session


def _capture(pipe: _Pipe, session: str, result: Rendering) -> None:
    shot = pipe.call("Page.captureScreenshot", session, format="png")
    result.png.write_bytes(base64.b64decode(shot["data"]))
    pipe.call("Emulation.clearDeviceMetricsOverride", session)
    pdf = pipe.call(
        "Page.printToPDF", session,
        printBackground=True, preferCSSPageSize=True, displayHeaderFooter=False,
    )  # fmt: skip
    result.pdf.write_bytes(base64.b64decode(pdf["data"]))


def _console(events: list[dict]) -> list[tuple[str, str]]:
    found = []
    for event in events:
        method, params = event.get("method"), event.get("params", {})
        if method == "Runtime.consoleAPICalled":
            text = " ".join(str(a.get("value", a.get("description", ""))) for a in params["args"])
            level = {"warn": "warning", "assert": "error"}.get(params["type"], params["type"])
            found.append((level, text))
        elif method == "Runtime.exceptionThrown":
            details = params["exceptionDetails"]
            text = details.get("exception", {}).get("description") or details.get("text", "")
            found.append(("error", text))
        elif method == "Log.entryAdded":
            found.append((params["entry"]["level"], params["entry"]["text"]))
    return found


def _loads(events: list[dict], own_url: str) -> list[str]:
    return [
        event["params"]["request"]["url"]
        for event in events
        if event.get("method") == "Network.requestWillBeSent"
        and event["params"]["request"]["url"] != own_url
    ]
