"""send(): statuses, nothing sent twice, nothing lost, against the real emulator."""

from __future__ import annotations

import _thread
import json
import threading
import time
import urllib.parse

import pandas as pd
import pytest
import requests
from conftest import SENDER

from kwa_batch import (
    STATUSES,
    ConfigurationError,
    Emulator,
    KaleyraClient,
    load_recipients,
    send,
    validate,
)


def frame(n: int, prefix: str = "+9198765") -> pd.DataFrame:
    return pd.DataFrame(
        {
            "to": pd.array([f"{prefix}{i:05d}" for i in range(n)], dtype="str"),
            "body": pd.array([f"Hello {i}" for i in range(n)], dtype="str"),
        }
    )


def test_sample_file_end_to_end(fresh_emulator: Emulator, sample_csv) -> None:
    df = load_recipients(sample_csv)
    report = validate(df, sender=SENDER)
    results = send(report, fresh_emulator.client(), concurrency=4, progress=False)
    assert list(results.index) == list(df.index)
    assert set(results["status"]) == {"sent", "rejected"}
    sent = results[results["status"] == "sent"]
    assert len(sent) == len(report.valid) == 15
    assert sent["message_id"].notna().all()
    assert (sent["http_status"] == 200).all()
    assert (sent["attempts"] == 1).all()
    ledger = fresh_emulator.messages
    assert sorted(ledger["message_id"]) == sorted(sent["message_id"])
    assert not ledger["to"].isin(["+919811122233", "+919845012399"]).any()  # rows 17, 18
    assert (ledger["to"] == "+919876543210").sum() == 1  # row 19 repeats row 0: sent once
    rejected = results[results["status"] == "rejected"]
    assert rejected["error_code"].tolist() == ["E13009", "KWA004", "E413", "KWA001", "KWA007"]
    assert rejected.loc[16, "to"] == "9.19876543210E+11"  # as written
    assert results.loc[1, "to"] == "+919845012345"  # normalised


def test_results_have_contract_columns_and_dtypes(fresh_emulator: Emulator) -> None:
    results = send(frame(3), fresh_emulator.client(sender=SENDER), progress=False)
    for name in (
        "to",
        "status",
        "message_id",
        "error_code",
        "error_message",
        "http_status",
        "attempts",
        "sent_at",
    ):
        assert name in results.columns
    assert str(results["http_status"].dtype) == "Int64"
    assert str(results["attempts"].dtype) == "Int64"
    assert str(results["sent_at"].dt.tz) == "UTC"
    assert set(results["status"]) <= set(STATUSES)
    assert results.attrs["run"].settings["concurrency"] is None  # driven by the rate
    assert results.attrs["run"].settings["rate_limit"] == 80.0


def test_a_dataframe_is_validated_first_and_invalid_rows_never_sent(
    fresh_emulator: Emulator,
) -> None:
    df = frame(4)
    df.loc[2, "to"] = "not a number"
    results = send(df, fresh_emulator.client(sender=SENDER), progress=False)
    assert results.loc[2, "status"] == "rejected"
    assert results.loc[2, "attempts"] == 0
    assert len(fresh_emulator.messages) == 3


def test_api_refusal_is_failed_with_the_code(fresh_emulator: Emulator) -> None:
    df = frame(2)
    df["ref"] = pd.array(["ok", "ok"], dtype="str")
    client = fresh_emulator.client(sender="+911234567890")
    # A sender the client accepts locally but the API refuses: skip local checks via a report.
    report = validate(df, sender=SENDER)
    report.valid.loc[1, "from"] = "+1"
    results = send(report, client, progress=False)
    assert results.loc[0, "status"] == "sent"
    assert results.loc[1, "status"] == "failed"
    assert results.loc[1, "error_code"] == "E13008"
    assert results.loc[1, "http_status"] == 400


def test_wrong_key_stops_the_run_and_nothing_is_lost(fresh_emulator: Emulator) -> None:
    client = KaleyraClient(fresh_emulator.sid, "wrong", sender=SENDER, base_url=fresh_emulator.url)
    results = send(frame(50), client, concurrency=2, progress=False)
    assert (results["status"] == "not_sent").all()
    assert results["error_code"].str.startswith(("E401", "HTTP401")).all()
    assert fresh_emulator.requests_seen <= 4  # stopped at once, not 50 attempts
    assert len(fresh_emulator.messages) == 0


def test_unreachable_api_is_not_sent_after_safe_retries() -> None:
    client = KaleyraClient("HX", "k", sender=SENDER, base_url="http://127.0.0.1:9")
    results = send(frame(3), client, progress=False, max_attempts=3, backoff=0.01)
    assert (results["status"] == "not_sent").all()
    assert (results["error_code"] == "CONNECT").all()
    assert (results["attempts"] == 3).all()


def test_timeout_is_unknown_and_never_resent() -> None:
    with Emulator(latency=0.4) as emu:
        client = emu.client(sender=SENDER, timeout=(2, 0.05))
        results = send(frame(3), client, progress=False, max_attempts=5, backoff=0.01)
        time.sleep(0.6)
        assert (results["status"] == "unknown").all()
        assert (results["error_code"] == "TIMEOUT").all()
        assert (results["attempts"] == 1).all()
        assert len(emu.messages) == 3  # each accepted exactly once


def test_rows_without_any_sender_are_a_configuration_error(fresh_emulator: Emulator) -> None:
    with pytest.raises(ConfigurationError, match="no sender"):
        send(frame(2), fresh_emulator.client(), progress=False)
    assert fresh_emulator.requests_seen == 0


# -- grouping ------------------------------------------------------------------------------


def test_broadcast_goes_100_recipients_per_request(fresh_emulator: Emulator) -> None:
    df = frame(250)
    df["body"] = "Our sale starts today"
    results = send(df, fresh_emulator.client(sender=SENDER), rate_limit=None, progress=False)
    assert (results["status"] == "sent").all()
    assert fresh_emulator.requests_seen == 3
    assert results["recipients"].tolist() == [100] * 200 + [50] * 50
    ledger = fresh_emulator.messages.set_index("message_id")
    # Every row got the message id of its own recipient.
    assert (ledger.loc[results["message_id"], "to"].to_numpy() == results["to"].to_numpy()).all()
    assert results["request_id"].nunique() == 3


def test_grouped_request_refused_as_a_whole_is_split(fresh_emulator: Emulator) -> None:
    df = frame(3)
    df["body"] = "Same for all"
    report = validate(df, sender=SENDER)
    report.valid.loc[1, "to"] = "+12"  # the API refuses it, and with it the whole request
    results = send(report, fresh_emulator.client(), progress=False)
    assert results["status"].tolist() == ["sent", "failed", "sent"]
    assert results.loc[1, "error_code"] == "E13009"
    assert fresh_emulator.requests_seen == 4  # the grouped try, then one by one
    assert len(fresh_emulator.messages) == 2


class _PartialAnswer(requests.adapters.BaseAdapter):
    """A server that acknowledges only the first recipient of each request."""

    def send(self, request, **kwargs):  # type: ignore[no-untyped-def]
        fields = dict(urllib.parse.parse_qsl(request.body))
        first = fields["to"].split(",")[0].lstrip("+")
        response = requests.models.Response()
        response.status_code = 200
        response._content = json.dumps(
            {"id": "r1", "data": [{"message_id": "r1:0", "recipient": first}], "error": {}}
        ).encode()
        response.request = request
        return response

    def close(self) -> None:
        pass


def test_recipients_missing_from_the_answer_are_unknown() -> None:
    def session() -> requests.Session:
        s = requests.Session()
        s.mount("https://partial.test/", _PartialAnswer())
        return s

    client = KaleyraClient(
        "HX", "k", sender=SENDER, base_url="https://partial.test", session_factory=session
    )
    df = frame(3)
    df["body"] = "Same"
    results = send(df, client, progress=False)
    assert results["status"].tolist() == ["sent", "unknown", "unknown"]
    assert results["error_code"].tolist()[1:] == ["NORECIPIENT", "NORECIPIENT"]
    assert results.loc[0, "message_id"] == "r1:0"


# -- stopping ------------------------------------------------------------------------------


class _AfterN(KaleyraClient):
    """A client that does something to the run when its ``n``-th request goes out."""

    def __init__(self, *args, n: int, **kwargs) -> None:  # type: ignore[no-untyped-def]
        super().__init__(*args, **kwargs)
        self._n = n
        self._calls = 0
        self._calls_lock = threading.Lock()

    def on_call(self, count: int) -> None:
        raise NotImplementedError

    def post(self, data):  # type: ignore[no-untyped-def]
        with self._calls_lock:
            self._calls += 1
            self.on_call(self._calls)
        return super().post(data)


class _KeyRevokedAfter(_AfterN):
    """The account revokes the key after ``n`` requests (a real 401 follows)."""

    def on_call(self, count: int) -> None:
        if count > self._n:
            from kwa_batch.config import Secret

            self._key = Secret("revoked")


def test_401_mid_run_stops_at_once_and_the_rest_is_not_sent(fresh_emulator: Emulator) -> None:
    client = _KeyRevokedAfter(
        fresh_emulator.sid, fresh_emulator.api_key, sender=SENDER, base_url=fresh_emulator.url, n=10
    )
    results = send(frame(200), client, concurrency=4, progress=False)
    counts = results["status"].value_counts().to_dict()
    assert counts.get("sent") == len(fresh_emulator.messages) >= 10
    assert counts["sent"] + counts["not_sent"] == 200
    stopped = results[results["status"] == "not_sent"]
    assert stopped["error_code"].eq("E401").all()
    assert fresh_emulator.requests_seen < 30  # stopped at once, not 190 more refusals


class _InterruptAfter(_AfterN):
    """Presses Ctrl-C (a real SIGINT-like interrupt of the main thread) at the n-th post."""

    def on_call(self, count: int) -> None:
        if count == self._n:
            _thread.interrupt_main()


def test_ctrl_c_returns_partial_results_and_resume_finishes(
    fresh_emulator: Emulator, tmp_path
) -> None:
    journal = tmp_path / "run.db"
    client = _InterruptAfter(
        fresh_emulator.sid, fresh_emulator.api_key, sender=SENDER, base_url=fresh_emulator.url, n=20
    )
    results = send(frame(150), client, concurrency=4, progress=False, journal=journal)
    assert results.attrs["run"].interrupted is True
    counts = results["status"].value_counts().to_dict()
    assert set(counts) <= {"sent", "not_sent", "unknown"}
    assert counts["not_sent"] > 100
    assert counts["sent"] == len(fresh_emulator.messages)
    again = send(
        frame(150),
        fresh_emulator.client(sender=SENDER),
        rate_limit=None,  # the pace is not the point: the resume sends the rest at once
        progress=False,
        journal=journal,
    )
    assert (again["status"] == "sent").all()
    ledger = fresh_emulator.messages
    assert len(ledger) == 150
    assert not ledger["to"].duplicated().any()


def test_rate_limit_holds_over_every_one_second_window(fresh_emulator: Emulator) -> None:
    stamps: list[float] = []

    class Stamping(KaleyraClient):
        def post(self, data):  # type: ignore[no-untyped-def]
            stamps.append(time.monotonic())
            return super().post(data)

    client = Stamping(
        fresh_emulator.sid, fresh_emulator.api_key, sender=SENDER, base_url=fresh_emulator.url
    )
    results = send(frame(45), client, rate_limit=20, concurrency=8, progress=False)
    assert (results["status"] == "sent").all()
    stamps.sort()
    worst = max(sum(1 for t in stamps if s <= t < s + 1.0) for s in stamps)
    assert worst <= 20
    assert stamps[-1] - stamps[0] >= 2.0  # 45 messages at 20/s span more than two seconds


# -- the sender, resolved once ---------------------------------------------------------


def test_a_clients_invalid_sender_rejects_rows_locally_never_at_the_api(
    fresh_emulator: Emulator,
) -> None:
    report = validate(frame(3))  # no sender here: rows without 'from' count valid for now
    results = send(report, fresh_emulator.client(sender="12345"), progress=False)
    assert (results["status"] == "rejected").all()
    assert (results["error_code"] == "E13008").all()
    assert fresh_emulator.requests_seen == 0


def test_send_sender_is_validated_like_validates(fresh_emulator: Emulator) -> None:
    report = validate(frame(2))
    given = send(report, fresh_emulator.client(), sender="12345", progress=False)
    direct = validate(frame(2), sender="12345")
    assert given["status"].tolist() == ["rejected"] * 2
    assert given["error_message"].tolist() == direct.invalid["errors"].tolist()
    assert fresh_emulator.requests_seen == 0


@pytest.mark.parametrize(
    ("validated", "given", "client", "expected"),
    [
        (None, None, SENDER, SENDER),  # the client's fills what nobody else did
        ("+14155550123", None, SENDER, "+14155550123"),  # validate()'s before the client's
        (None, "+447911123456", SENDER, "+447911123456"),  # send()'s before the client's
    ],
)
def test_sender_precedence(fresh_emulator: Emulator, validated, given, client, expected) -> None:
    df = frame(2).assign(**{"from": [pd.NA, "+919845012345"]})
    report = validate(df, sender=validated)
    results = send(report, fresh_emulator.client(sender=client), sender=given, progress=False)
    assert (results["status"] == "sent").all()
    ledger = fresh_emulator.messages.set_index("to")["from"]
    assert ledger["+919876500000"] == expected
    assert ledger["+919876500001"] == "+919845012345"  # the row's own always wins


def test_send_refuses_a_sender_that_contradicts_the_reports(fresh_emulator: Emulator) -> None:
    report = validate(frame(1), sender=SENDER)
    with pytest.raises(ConfigurationError, match="validated with sender"):
        send(report, fresh_emulator.client(), sender="+447911123456", progress=False)
    assert fresh_emulator.requests_seen == 0


def test_a_clients_invalid_sender_rejects_a_frames_rows_too(
    fresh_emulator: Emulator,
) -> None:
    results = send(frame(2), fresh_emulator.client(sender="0000"), progress=False)
    assert (results["error_code"] == "E13008").all()
    assert fresh_emulator.requests_seen == 0


def test_send_takes_the_reports_sender_however_it_is_written(fresh_emulator: Emulator) -> None:
    """The same number, spaced otherwise, is the same sender (the sender rule compares
    numbers, not spellings)."""
    report = validate(frame(1), sender=SENDER)
    spaced = f"{SENDER[:3]} {SENDER[3:8]} {SENDER[8:]}"
    results = send(report, fresh_emulator.client(), sender=spaced, progress=False)
    assert (results["status"] == "sent").all()
    assert fresh_emulator.messages["from"].tolist() == [SENDER]
