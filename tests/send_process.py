"""A real ``kwa-batch send`` process against an emulator, for the tests that kill, stop or
run several of them (its output on one pipe, stdout and stderr together)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from kwa_batch import Emulator

SENDER = "+911234567890"


def run_cli(args: list[str], emu: Emulator, cwd: Path, **popen: Any) -> subprocess.Popen[str]:
    """Start ``kwa-batch send ARGS`` in ``cwd`` with the emulator's credentials in its
    environment; ``popen``: more of :class:`subprocess.Popen`'s arguments."""
    env = {
        **os.environ,
        "KALEYRA_SID": emu.sid,
        "KALEYRA_API_KEY": emu.api_key,
        "KALEYRA_BASE_URL": emu.url,
        "KALEYRA_FROM": SENDER,
    }
    return subprocess.Popen(
        [sys.executable, "-m", "kwa_batch", "send", *args],
        cwd=cwd,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        **popen,
    )
