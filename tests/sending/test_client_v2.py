"""The client through Kaleyra's v2 API, against an independent v2 server (tests/v2_server.py,
written from the facts file, not from the emulator): WhatsApp's message object one recipient
a request, the wamid from whatever shape the answer takes, Kaleyra's v2 codes, the WA-401
stop, and the journal's "nothing twice"."""

from __future__ import annotations

import json
import threading
from pathlib import Path

import pandas as pd
import pytest
from v2_server import KEY, NO_ID, SHAPES, SID, V2Server

from kwa_batch import (
    ApiError,
    ApiVersionError,
    AuthenticationError,
    ConfigurationError,
    KaleyraClient,
    Pacing,
    estimate,
    send,
    validate,
)
from kwa_batch.config import credentials_from_env
from kwa_batch.sending.client import parse_response

SENDER = "+911234567890"
ON_V1 = "+911234567899"


def client_for(server: V2Server, **kwargs: object) -> KaleyraClient:
    options: dict = {"sender": SENDER, "api_version": "v2", **kwargs}
    return KaleyraClient(SID, KEY, base_url=server.url, **options)


def mixed() -> pd.DataFrame:
    """A text row, a template with body parameters and a URL button, a media row."""
    return pd.DataFrame(
        {
            "to": ["+919876543210", "+447911123456", "+12025550143"],
            "type": ["text", "template", "media"],
            "body": ["Hi Asha, your order has shipped", None, None],
            "template_name": [None, "order_shipped", None],
            "lang_code": [None, "en", None],
            "params": [None, '"Tan, Wei Ling",A1008', None],
            "param_url": [None, "track/A1008", None],
            "media_url": [None, None, "https://example.com/invoice.pdf"],
            "caption": [None, None, "Your invoice"],
            "ref": ["CUST-1", "CUST-2", None],
            "ref1": [None, "batch-7", None],
        }
    )


@pytest.mark.parametrize("shape", SHAPES)
def test_every_row_ends_sent_with_its_wamid_whatever_the_answer_shape(shape: str) -> None:
    with V2Server(shape=shape) as server:
        results = send(mixed(), client_for(server), progress=False)
    assert results["status"].tolist() == ["sent"] * 3, results[["error_code", "error_message"]]
    by_to = {r.body["messaging_object"]["to"]: r.wamid for r in server.accepted}
    expected = [by_to[to.lstrip("+")] for to in mixed()["to"]]
    assert results["message_id"].tolist() == expected
    assert all(m.startswith("wamid.") for m in expected)


def test_each_row_goes_as_whatsapps_message_object_with_its_refs() -> None:
    with V2Server() as server:
        send(mixed(), client_for(server), progress=False)
    assert {r.path for r in server.requests} == {f"/v2/{SID}/whatsapp/911234567890/messages"}
    bodies = {r.body["messaging_object"]["to"]: r.body for r in server.requests}
    text = bodies["919876543210"]
    assert text["messaging_object"]["type"] == "text"
    assert text["messaging_object"]["text"]["body"] == "Hi Asha, your order has shipped"
    assert text["extra_info"] == {"ref": "CUST-1"}
    template = bodies["447911123456"]["messaging_object"]["template"]
    assert template["name"] == "order_shipped"
    assert template["language"] == {"code": "en"}
    body, button = template["components"]
    assert [p["text"] for p in body["parameters"]] == ["Tan, Wei Ling", "A1008"]
    assert (button["sub_type"], button["index"]) == ("url", "0")
    assert button["parameters"][0]["text"] == "track/A1008"
    assert bodies["447911123456"]["extra_info"] == {"ref": "CUST-2", "ref1": "batch-7"}
    media = bodies["12025550143"]["messaging_object"]
    assert media["type"] == "document"
    assert media["document"] == {
        "link": "https://example.com/invoice.pdf",
        "caption": "Your invoice",
    }


def test_v2_sends_one_recipient_per_request_and_estimate_and_the_plan_agree() -> None:
    same = pd.DataFrame({"to": [f"+9198765{i:05d}" for i in range(6)], "body": ["Sale today"] * 6})
    pacing = Pacing(rate_limit=None, max_recipients_per_request=100)
    report = validate(same, sender=SENDER)
    assert estimate(report, pacing=pacing).attrs["summary"]["requests"] == 1  # v1 groups
    assert estimate(report, pacing=pacing, api_version="v2").attrs["summary"]["requests"] == 6
    report = validate(same, sender=SENDER, api_version="v2")
    with V2Server() as server:
        results = send(report, client_for(server), pacing=pacing, progress=False)
    assert len(server.requests) == 6
    assert (results["recipients"] == 1).all()
    assert (results["status"] == "sent").all()
    settings = results.attrs["run"].settings
    assert (settings["max_recipients_per_request"], settings["api_version"]) == (1, "v2")


def test_a_v2_client_refuses_several_recipients_in_one_request() -> None:
    client = KaleyraClient(SID, KEY, sender=SENDER, api_version="v2")
    with pytest.raises(ConfigurationError, match="one recipient per request"):
        client.request_for({"to": "+919876543210,+447911123456", "type": "text", "body": "x"})


def test_a_number_on_v1_stops_the_run_with_at_most_the_requests_in_flight() -> None:
    rows = pd.DataFrame(
        {
            "to": [f"+9198765{i:05d}" for i in range(60)],
            "body": [f"Hello {i}" for i in range(60)],
            "from": [ON_V1 if i == 12 else SENDER for i in range(60)],
        }
    )
    concurrency = 4
    pacing = Pacing(rate_limit=None, concurrency=concurrency, per_recipient_interval=0)
    # At 20 ms an answer (a real API's take tens), "in flight when the answer came" is what
    # the server sees: with none, another worker can finish and start again in the moment
    # between the server's answer and the run acting on it.
    with V2Server(v1_senders=frozenset({ON_V1.lstrip("+")}), latency=0.02) as server:
        results = send(rows, client_for(server), pacing=pacing, progress=False)
    (refused,) = [r for r in server.requests if r.code == "WA-401"]
    assert len(server.arrived_after(refused)) <= concurrency - 1
    # The in-flight set moves on while row 12's request waits for its answer, so the
    # requests in all are not 12 + 4; far from the 60 rows, though.
    assert len(server.requests) <= 30
    assert results.loc[12, "error_code"] == "WA-401"
    sent = results["status"] == "sent"
    assert sent.sum() == len(server.accepted)
    assert set(results.loc[~sent, "status"]) == {"not_sent"}
    assert (results.loc[~sent, "error_code"] == "WA-401").all()
    outcome = results.attrs["run"]
    assert outcome.wrong_api_version
    assert not outcome.credentials_refused
    assert outcome.exit_code == 3
    first = outcome.next_step.splitlines()[0]
    assert "on Kaleyra's v1 API, not v2 (WA-401)" in first
    assert "--api-version v1" in first
    assert "KALEYRA_API_VERSION=v1" in first


def test_a_wrong_key_stops_the_run_as_a_credential_refusal() -> None:
    with V2Server() as server:
        client = KaleyraClient(SID, "not-the-key", sender=SENDER, base_url=server.url,
                               api_version="v2")  # fmt: skip
        pacing = Pacing(rate_limit=None, concurrency=1)
        results = send(mixed(), client, pacing=pacing, progress=False)
    assert len(server.requests) == 1
    assert (results["status"] == "not_sent").all()
    assert results.loc[0, "error_code"] == "RBC001"
    assert results.attrs["run"].credentials_refused
    assert not results.attrs["run"].wrong_api_version


def test_a_v2_journal_resumes_without_sending_anything_twice(tmp_path: Path) -> None:
    journal = tmp_path / "run.db"
    rows = pd.DataFrame(
        {
            "to": [f"+9198765{i:05d}" for i in range(20)],
            "body": [f"Hello {i}" for i in range(20)],
            "from": [ON_V1 if i == 5 else SENDER for i in range(20)],
        }
    )
    pacing = Pacing(rate_limit=None, concurrency=1, per_recipient_interval=0)
    with V2Server(v1_senders=frozenset({ON_V1.lstrip("+")})) as server:
        first = send(rows, client_for(server), pacing=pacing, journal=journal, progress=False)
    assert first["status"].value_counts().to_dict() == {"not_sent": 15, "sent": 5}
    with V2Server() as server:  # the number moved to v2 meanwhile
        second = send(rows, client_for(server), pacing=pacing, journal=journal, progress=False)
        third = send(rows, client_for(server), pacing=pacing, journal=journal, progress=False)
        sent_to = [r.body["messaging_object"]["to"] for r in server.accepted]
    assert (second["status"] == "sent").all()
    assert sorted(sent_to) == sorted(n.lstrip("+") for n in rows["to"][5:])  # once each
    assert second["message_id"][:5].tolist() == first["message_id"][:5].tolist()
    assert third["from_journal"].all()
    assert third["message_id"].tolist() == second["message_id"].tolist()


@pytest.mark.parametrize(
    "body",
    [
        '{"code": "WA400", "message": "bad payload"}',
        '{"error": {"code": "WA400", "message": "bad payload"}}',
        '{"errors": [{"code": "WA400", "message": "bad payload"}]}',
    ],
)
def test_kaleyras_code_is_read_wherever_the_error_body_puts_it(body: str) -> None:
    with pytest.raises(ApiError) as info:
        parse_response(400, body, {}, ["+919876543210"], api_version="v2")
    assert info.value.code == "WA400"
    assert "bad payload" in info.value.message


def test_the_codes_that_stop_a_run_whatever_the_http_status() -> None:
    with pytest.raises(ApiVersionError):
        parse_response(400, '{"code": "WA-401"}', {}, ["+919876543210"], api_version="v2")
    with pytest.raises(ApiVersionError):  # v1 answers it too, for a number on v2
        parse_response(401, '{"error": {"code": "WA-401"}}', {}, ["+919876543210"])
    with pytest.raises(AuthenticationError):
        parse_response(400, '{"code": "RBC001"}', {}, ["+919876543210"], api_version="v2")


def test_an_accepted_answer_without_an_id_leaves_the_row_unknown() -> None:
    with V2Server(shape=NO_ID) as server:
        results = send(mixed(), client_for(server), progress=False)
    assert len(server.accepted) == 3
    assert results["status"].tolist() == ["unknown"] * 3
    assert results["error_code"].tolist() == ["NORECIPIENT"] * 3
    result = parse_response(202, '{"code": "WA202"}', {}, ["+919876543210"], api_version="v2")
    assert result.message_ids == {}
    assert result.raw == {"code": "WA202"}
    empty = parse_response(202, "", {}, ["+919876543210"], api_version="v2")
    assert (empty.message_ids, empty.raw) == ({}, {})
    plain = parse_response(202, "Accepted", {}, ["+919876543210"], api_version="v2")
    assert (plain.message_ids, plain.raw) == ({}, {"body": "Accepted"})
    # v1 reads no bare id without its ":n" as a message id; v2 takes it.
    bare = '{"id": "wamid.ABC"}'
    assert parse_response(202, bare, {}, ["+919876543210"]).message_ids == {}
    v2 = parse_response(202, bare, {}, ["+919876543210"], api_version="v2")
    assert v2.message_ids == {"+919876543210": "wamid.ABC"}


def test_the_api_version_comes_from_the_argument_then_the_environment() -> None:
    env = {"KALEYRA_SID": "HX", "KALEYRA_API_KEY": "k"}
    assert credentials_from_env(environ=env).api_version == "v1"
    assert credentials_from_env(environ={**env, "KALEYRA_API_VERSION": " V2"}).api_version == "v2"
    given = credentials_from_env(api_version="v1", environ={**env, "KALEYRA_API_VERSION": "v2"})
    assert given.api_version == "v1"
    with pytest.raises(ConfigurationError, match=r"KALEYRA_API_VERSION 'v3'.*v1 or v2"):
        credentials_from_env(environ={**env, "KALEYRA_API_VERSION": "v3"})
    with pytest.raises(ConfigurationError, match=r"api_version '2'.*v1 or v2"):
        KaleyraClient(SID, KEY, api_version="2")


def test_v2_codes_are_explained_in_the_workbook_which_says_the_stop_again(tmp_path: Path) -> None:
    from openpyxl import load_workbook

    from kwa_batch import describe_code, export_results, load_results

    assert describe_code("WA-401") == ""  # the code table does not know v2's codes...
    with V2Server(v1_senders=frozenset({"911234567890"})) as server:
        results = send(mixed(), client_for(server), progress=False)
    path = export_results(results, tmp_path / "r.xlsx")
    back = load_results(path).attrs["run"]  # the stop line is said again from the file
    assert back.wrong_api_version
    assert "--api-version v1" in back.next_step
    book = load_workbook(path)
    errors = book["Errors"]
    header = [c.value for c in errors[1]]
    fixes = {errors.cell(r, header.index("fix") + 1).value for r in range(2, errors.max_row + 1)}
    (fix,) = fixes  # ...the outcome policy does
    assert fix.startswith("the number is on the other API version")
    assert "--api-version" in fix


def test_a_v2_campaigns_callbacks_reach_the_receiver_through_the_emulator(
    tmp_path: Path,
) -> None:
    from kwa_batch import CallbackStore, Emulator, Receiver, merge_receipts

    store = tmp_path / "receipts.db"
    with Receiver(store) as receiver, Emulator() as emu:
        rows = mixed().assign(callback_url=receiver.callback_url)
        results = send(rows, emu.client(sender=SENDER, api_version="v2"), progress=False)
        assert emu.wait_for_callbacks(10)
    assert (results["status"] == "sent").all()
    with CallbackStore(store) as receipts:
        merged = merge_receipts(results, receipts)
    assert merged["delivery_status"].notna().all(), merged[["message_id", "delivery_status"]]


def test_a_report_goes_only_through_the_api_version_it_was_validated_for() -> None:
    """Review of #20: a report validated for v2 went through a v1 client and lost its
    buttons and cards; a frame sent through a v2 client was validated for v1."""
    rich = pd.DataFrame(
        {
            "to": ["+919876500001"],
            "type": ["interactive"],
            "body": ["Arrived?"],
            "buttons": ["Yes|No"],
        }
    )
    report = validate(rich, sender=SENDER, api_version="v2")
    assert report.ok
    with V2Server() as server:
        v1 = KaleyraClient(SID, KEY, base_url=server.url, sender=SENDER)
        with pytest.raises(ConfigurationError, match="validated for Kaleyra's v2 API"):
            send(report, v1, progress=False)
        with pytest.raises(ConfigurationError, match="api_version='v1'"):
            send(rich, client_for(server), api_version="v1", progress=False)
        results = send(rich, client_for(server), progress=False)  # validated for v2 itself
    assert results["status"].tolist() == ["sent"]
    assert server.accepted[0].body["messaging_object"]["type"] == "interactive"


@pytest.mark.parametrize(
    ("status", "body", "error"),
    [
        (
            200,
            '{"code": "WA-401", "message": "associated with different Version"}',
            ApiVersionError,
        ),
        (202, '{"error": {"message": "x"}, "code": "WA-401"}', ApiVersionError),
        (202, '{"code": "RBC001"}', AuthenticationError),
        (202, '{"code": "WAV2101", "message": "daily limit"}', ApiError),
    ],
)
def test_a_refusal_code_in_a_2xx_answer_is_a_refusal(status: int, body: str, error: type) -> None:
    """Review of #20: a WA-401 or WAV2101 in a 2xx answer was taken as accepted."""
    with pytest.raises(error) as raised:
        parse_response(status, body, {}, ["+919876543210"], api_version="v2")
    assert raised.value.code in body


def test_the_success_code_with_an_id_is_accepted() -> None:
    found = parse_response(
        202, '{"code": "WA202", "messages": [{"id": "wamid.A"}]}', {}, ["+919876543210"],
        api_version="v2",
    )  # fmt: skip
    assert found.message_ids == {"+919876543210": "wamid.A"}


def test_an_account_stop_code_in_an_answer_stops_the_run() -> None:
    """WAV2101 (the account's daily limit): every later request would fail the same way."""
    from werkzeug.serving import make_server
    from werkzeug.wrappers import Request, Response

    seen: list[int] = []

    @Request.application  # type: ignore[misc]
    def app(request: Request) -> Response:
        seen.append(1)
        if len(seen) == 3:
            return Response('{"code": "WAV2101", "message": "daily limit reached"}', status=400)
        wamid = f"wamid.{len(seen)}"
        return Response(json.dumps({"messages": [{"id": wamid}]}), status=202)

    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        rows = pd.DataFrame({"to": [f"+9198765{i:05d}" for i in range(20)], "body": "Hi"})
        client = KaleyraClient(SID, KEY, base_url=f"http://127.0.0.1:{server.server_port}",
                               sender=SENDER, api_version="v2")  # fmt: skip
        pacing = Pacing(rate_limit=None, concurrency=1)
        results = send(rows, client, pacing=pacing, progress=False)
    finally:
        server.shutdown()
        server.server_close()
    assert len(seen) == 3
    assert results["status"].tolist()[:3] == ["sent", "sent", "failed"]
    assert set(results["status"].iloc[3:]) == {"not_sent"}
    assert (results["error_code"].iloc[2:] == "WAV2101").all()
    assert "daily limit" in results["error_message"].iloc[3]
    assert results.attrs["run"].exit_code == 3
