"""``app.py`` as a real server process for the tests: started on 127.0.0.1 on a free port (``--port 0``; the
address is read from the line it prints), waited for with a deadline, stopped at the end."""
from __future__ import annotations

import os
import re
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Iterator

from tests.conftest import ROOT

START_TIMEOUT = 180     # Paddle's import and the model's load take ~10 s alone; the machine may be busy


@dataclass
class Server:
    url: str
    process: subprocess.Popen
    lines: list[str] = field(default_factory=list)    # what it printed on stdout so far
    errors: str = ""                                   # its stderr file

    def log(self) -> str:
        with open(self.errors, encoding="utf-8", errors="replace") as handle:
            return "".join(self.lines) + handle.read()

    def logged(self, text: str, timeout: float = 10) -> bool:
        """Whether the server prints ``text`` within ``timeout`` seconds (its output is read by a thread, so
        a line printed just before an answer may reach ``log`` just after it)."""
        deadline = time.monotonic() + timeout
        while text not in self.log():
            if time.monotonic() > deadline:
                return False
            time.sleep(0.05)
        return True


def _drain(process: subprocess.Popen, lines: list[str], started: threading.Event) -> None:
    for line in process.stdout:
        lines.append(line)
        if "http://" in line:
            started.set()
    started.set()


@contextmanager
def serving(checkpoint: str, *extra: str, cwd: str = ROOT, env: dict[str, str] | None = None) -> Iterator[Server]:
    """Run ``app.py --checkpoint CHECKPOINT --port 0 EXTRA...`` (with ``env`` added to the environment) until
    the block ends."""
    env = {**os.environ, **(env or {}),
           "PYTHONPATH": os.pathsep.join(filter(None, (ROOT, os.environ.get("PYTHONPATH"))))}
    with tempfile.NamedTemporaryFile("w+", prefix="app_stderr_", suffix=".txt", delete=False) as errors:
        pass
    with open(errors.name, "w") as stderr:
        process = subprocess.Popen([sys.executable, os.path.join(ROOT, "app.py"), "--checkpoint", checkpoint,
                                    "--host", "127.0.0.1", "--port", "0", *extra],
                                   cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=stderr, text=True)
    server = Server("", process, errors=errors.name)
    started = threading.Event()
    threading.Thread(target=_drain, args=(process, server.lines, started), daemon=True).start()
    try:
        if not started.wait(START_TIMEOUT) or process.poll() is not None:
            raise RuntimeError(f"app.py did not start:\n{server.log()}")
        server.url = re.search(r"(http://127\.0\.0\.1:\d+)/", "".join(server.lines)).group(1)
        deadline = time.monotonic() + 30
        while True:
            try:
                with urllib.request.urlopen(server.url + "/health", timeout=5) as answer:
                    if answer.status == 200:
                        break
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.2)
        yield server
    finally:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=20)
        os.unlink(errors.name)
