"""Start ``kwa-batch emulator`` in its own process for a benchmark, and stop it after."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager

SID = "HXBENCH0001"
KEY = "bench-key-0123456789abcdef"


@contextmanager
def emulator_process(*, latency_ms: float = 0.0) -> Iterator[str]:
    """Yield the base URL of an emulator running in a child process."""
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "kwa_batch",
            "emulator",
            "--sid",
            SID,
            "--api-key",
            KEY,
            "--latency",
            str(latency_ms),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    try:
        assert proc.stdout is not None
        deadline = time.monotonic() + 30
        url = None
        while time.monotonic() < deadline and url is None:
            line = proc.stdout.readline()
            if not line:
                break
            found = re.search(r"KALEYRA_BASE_URL=(\S+)", line)
            url = found.group(1) if found else None
        if url is None:
            raise RuntimeError("the emulator did not start")
        yield url
    finally:
        proc.terminate()
        proc.wait(timeout=10)
        if proc.stdout is not None:
            proc.stdout.close()
