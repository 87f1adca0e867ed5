"""v2 personalised sending against v1, at the same latency (issue #20: v2 at least 0.9x v1's
per-row rate).

    python benchmarks/bench_v2.py                  # 3,000 rows, 20 ms (about half a minute)
    python benchmarks/bench_v2.py --rows 600 --latency 50

Personalised rows (each body its own) go one per request in both versions, so the figure
compares what differs: v1's form against v2's JSON message object (built per row by
``kwa_batch.message_objects``), and the answers' parsing. Both versions are sent to one
small server in its own process (so the client's CPU time is measured alone) that answers
each request after the same ``--latency``: ``/v1/<SID>/messages`` as v1's document does,
``/v2/<SID>/whatsapp/<sender>/messages`` with 202 and WhatsApp's ``messages[].id``. The
order of the two runs alternates over ``--repeat`` rounds and the best of each is kept.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import time
import uuid
from typing import Any

import pandas as pd
from werkzeug.serving import WSGIRequestHandler, make_server
from werkzeug.wrappers import Request, Response

import kwa_batch as kb

SID, KEY, SENDER = "HXBENCH", "bench-key", "+911234567890"


class _Quiet(WSGIRequestHandler):
    def log_request(self, *args: Any, **kwargs: Any) -> None:
        pass


def _serve(latency: float, port: Any, ready: Any) -> None:
    """Answer v1 and v2 sends after ``latency`` seconds (in a child process)."""

    def app(environ: Any, start_response: Any) -> Any:
        request = Request(environ)
        time.sleep(latency)
        if request.path == f"/v1/{SID}/messages":
            to = request.form["to"]
            rid = str(uuid.uuid4())
            body: dict[str, Any] = {
                "id": rid,
                "data": [{"recipient": to, "message_id": f"{rid}:0"}],
            }
            status = 200
        elif request.path.startswith(f"/v2/{SID}/whatsapp/"):
            message = json.loads(request.get_data())["messaging_object"]
            body = {
                "messaging_product": "whatsapp",
                "contacts": [{"input": message["to"], "wa_id": message["to"]}],
                "messages": [{"id": "wamid." + uuid.uuid4().hex}],
            }
            status = 202
        else:
            body, status = {"error": "no such path"}, 404
        response = Response(json.dumps(body), status=status, content_type="application/json")
        return response(environ, start_response)

    server = make_server("127.0.0.1", 0, app, threaded=True, request_handler=_Quiet)
    port.value = server.server_port
    ready.set()
    server.serve_forever()


def personalised(n: int) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "to": [f"+9198{i:08d}" for i in range(n)],
            "body": [f"Hi customer {i}, your order A{i:06d} has shipped." for i in range(n)],
            "ref": [f"CUST-{i}" for i in range(n)],
        }
    )


def rate(url: str, report: kb.ValidationReport, version: str, concurrency: int) -> float:
    """Rows per second of one send() of ``report`` through ``version``."""
    client = kb.KaleyraClient(SID, KEY, sender=SENDER, base_url=url, api_version=version)
    pacing = kb.Pacing(rate_limit=None, concurrency=concurrency, per_recipient_interval=0)
    with client:
        start = time.perf_counter()
        results = kb.send(report, client, pacing=pacing, progress=False)
        elapsed = time.perf_counter() - start
    sent = int((results["status"] == "sent").sum())
    if sent != len(report.valid):
        raise SystemExit(f"{version}: only {sent} of {len(report.valid)} rows sent")
    return sent / elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=3000)
    parser.add_argument("--latency", type=float, default=20.0, help="milliseconds")
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()

    port = multiprocessing.Value("i", 0)
    ready = multiprocessing.Event()
    server = multiprocessing.Process(
        target=_serve, args=(args.latency / 1000, port, ready), daemon=True
    )
    server.start()
    ready.wait(10)
    url = f"http://127.0.0.1:{port.value}"
    report = kb.validate(personalised(args.rows), sender=SENDER)
    best = {"v1": 0.0, "v2": 0.0}
    rate(url, kb.validate(personalised(100), sender=SENDER), "v1", args.concurrency)  # warm up
    try:
        for round_ in range(args.repeat):
            order = ("v1", "v2") if round_ % 2 == 0 else ("v2", "v1")
            for version in order:
                best[version] = max(best[version], rate(url, report, version, args.concurrency))
    finally:
        server.terminate()
        server.join(5)
    print(
        f"{args.rows:,} personalised rows, {args.latency:g} ms latency, "
        f"{args.concurrency} in flight, best of {args.repeat}:"
    )
    for version, value in best.items():
        print(f"  {version}: {value:,.0f} rows/s")
    ratio = best["v2"] / best["v1"]
    verdict = "meets" if ratio >= 0.9 else "misses"
    print(f"  v2 / v1: {ratio:.2f}x ({verdict} the target of 0.9x)")


if __name__ == "__main__":
    main()
