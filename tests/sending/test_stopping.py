"""The stop button: Ctrl-C, SIGTERM and SIGHUP stop a run the same way, and nothing else."""

from __future__ import annotations

import os
import signal
import threading

import pandas as pd
import pytest
from conftest import SENDER

from kwa_batch import Emulator, KaleyraClient, send
from kwa_batch.sending.stopping import STOP_SIGNALS, StopButton, exit_status


def frame(n: int) -> pd.DataFrame:
    return pd.DataFrame({"to": [f"+9198765{i:05d}" for i in range(n)], "body": "Hi"})


class _SignalAfter(KaleyraClient):
    """Sends a real signal to this process when its n-th request goes out."""

    def __init__(self, *args, n: int, signum: int, **kwargs) -> None:  # type: ignore[no-untyped-def]
        super().__init__(*args, **kwargs)
        self._n, self._signum, self._calls = n, signum, 0
        self._lock = threading.Lock()

    def post(self, data):  # type: ignore[no-untyped-def]
        with self._lock:
            self._calls += 1
            if self._calls == self._n:
                os.kill(os.getpid(), self._signum)
        return super().post(data)


@pytest.mark.parametrize("signum", STOP_SIGNALS, ids=lambda s: signal.Signals(s).name)
def test_every_stop_signal_stops_the_run_gracefully(fresh_emulator: Emulator, signum) -> None:
    before = signal.getsignal(signum)
    client = _SignalAfter(
        fresh_emulator.sid,
        fresh_emulator.api_key,
        sender=SENDER,
        base_url=fresh_emulator.url,
        n=10,
        signum=signum,
    )
    results = send(frame(200), client, concurrency=2, progress=False, max_recipients_per_request=1)
    run = results.attrs["run"]
    assert run.interrupted is True
    assert run.stopped_by == signal.Signals(signum).name
    assert run.exit_code == 128 + signum
    counts = results["status"].value_counts().to_dict()
    assert counts.get("unknown", 0) == 0  # what was in flight was awaited
    assert counts["sent"] == len(fresh_emulator.messages)
    assert counts["not_sent"] == 200 - counts["sent"]
    assert signal.getsignal(signum) == before  # the caller's handler is back


def test_a_run_that_is_not_stopped_says_so(fresh_emulator: Emulator) -> None:
    results = send(frame(3), fresh_emulator.client(sender=SENDER), progress=False)
    assert results.attrs["run"].interrupted is False
    assert results.attrs["run"].stopped_by is None


def test_the_button_counts_presses_and_remembers_the_first() -> None:
    pressed: list[tuple[int, int]] = []
    with StopButton(on_press=lambda signum, count: pressed.append((signum, count))) as button:
        os.kill(os.getpid(), signal.SIGTERM)
        os.kill(os.getpid(), signal.SIGINT)
    assert button.pressed == 2
    assert button.first == signal.SIGTERM
    assert pressed == [(signal.SIGTERM, 1), (signal.SIGINT, 2)]


def test_exit_status_is_the_shells() -> None:
    assert [exit_status(s) for s in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)] == [
        130,
        143,
        129,
    ]
