"""The gateway's contract (docs/api.md) against a real solo node: a problem+json for every error
class, wait=check vs wait=commit, block pagination, OpenAPI examples, Prometheus metrics, and the
`citychain api` command's guard rails."""

from __future__ import annotations

import base64
import http.server
import re
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from api_harness import SoloCity
from typer.testing import CliRunner

from citychain.api.gateway import GatewaySettings
from citychain.api.problems import PROBLEM_JSON
from citychain.cli.main import app as cli_app
from citychain.core.errors import SequenceFutureError
from citychain.core.tx import build_tx
from citychain.modules.bank.messages import MsgTransfer

UNKNOWN_HASH = "ab" * 32


def transfer(city: SoloCity, sequence: int, amount: int = 1) -> str:
    """alice -> bob, base64 as POST /v1/txs takes it."""
    raw = build_tx(city.key("alice"), city.chain_id, sequence,
                   MsgTransfer(to=f"did:city:{city.key('bob').address}", denom="ucity",
                               amount=amount))
    return base64.b64encode(raw).decode()


def assert_problem(answer: httpx.Response, status: int, codespace: str, code: int,
                   field: str) -> dict[str, Any]:
    """``answer`` is an RFC 9457 problem with the chain's codespace, code and field."""
    assert answer.status_code == status, answer.text
    assert answer.headers["content-type"].startswith(PROBLEM_JSON), answer.headers
    body: dict[str, Any] = answer.json()
    assert (body["status"], body["codespace"], body["code"], body["field"]) == (
        status, codespace, code, field), body
    assert body["type"] == f"urn:citychain:error:{codespace}:{code}"
    assert body["title"] and body["detail"], body
    return body


@pytest.fixture
def client(solo_city: SoloCity) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=solo_city.api_url, timeout=60) as http:
        yield http


def commit(client: httpx.Client, tx: str) -> dict[str, Any]:
    answer = client.post("/v1/txs", json={"tx": tx, "wait": "commit"})
    assert answer.status_code == 200, answer.text
    body: dict[str, Any] = answer.json()
    assert body["result"]["code"] == 0, body
    return body


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


# ------------------------------------------------------------------------------ problems
def test_invalid_parameter_is_400_naming_the_field(client: httpx.Client) -> None:
    body = assert_problem(client.get("/v1/blocks", params={"limit": 0}), 400, "api", 1, "limit")
    assert "limit" in body["detail"]
    assert_problem(client.get("/v1/blocks", params={"cursor": "not-a-cursor"}), 400, "api", 1,
                   "cursor")
    assert_problem(client.get("/v1/query/bank/balance", params={"address": "ab" * 20}), 400,
                   "api", 1, "denom")
    assert_problem(client.get("/v1/query/bank/supply", params={"denom": "ucity", "colour": "x"}),
                   400, "api", 1, "colour")
    assert_problem(client.get("/v1/accounts/not-an-address"), 400, "api", 1, "account")
    # beyond 64 bits (found by schemathesis: the canonical encoding refused it after the route
    # accepted it, a 500)
    assert_problem(client.get("/v1/query/validators/proposal",
                              params={"id": 525018690799447900160}), 400, "api", 1, "id")


def test_invalid_body_is_400_naming_the_field(client: httpx.Client) -> None:
    assert_problem(client.post("/v1/txs", json={"tx": "%%%"}), 400, "api", 1, "tx")
    assert_problem(client.post("/v1/txs", json={"tx": "AA==", "wait": "later"}), 400, "api", 1,
                   "wait")
    assert_problem(client.post("/v1/txs", json={"tx": "AA==", "extra": 1}), 400, "api", 1,
                   "extra")
    missing = assert_problem(client.post("/v1/txs"), 400, "api", 1, "")
    assert missing["detail"].startswith("body:"), missing


def test_prove_on_a_range_query_is_400_not_provable(client: httpx.Client) -> None:
    assert_problem(client.get("/v1/query/bank/denoms", params={"prove": "true"}), 400, "api", 2,
                   "prove")


def test_prove_before_the_first_block_is_404(solo_city: SoloCity, client: httpx.Client) -> None:
    assert client.get("/v1/status").json()["latest_height"] == 0
    params = {"denom": "ucity", "prove": "true"}
    assert_problem(client.get("/v1/query/bank/supply", params=params), 404, "api", 3, "prove")
    commit(client, transfer(solo_city, 0))
    proven = client.get("/v1/query/bank/supply", params=params)
    assert proven.status_code == 200, proven.text
    assert proven.json()["proof"]["light"]["driver"] == "solo"


def test_not_found_is_404(solo_city: SoloCity, client: httpx.Client) -> None:
    commit(client, transfer(solo_city, 0))
    assert_problem(client.get(f"/v1/txs/{UNKNOWN_HASH}"), 404, "api", 3, "hash")
    assert_problem(client.get("/v1/no/such/route"), 404, "api", 3, "")
    assert_problem(client.get("/v1/blocks/999999"), 404, "api", 3, "height")
    assert_problem(client.get("/v1/light/999999"), 404, "api", 3, "height")


def test_refused_tx_is_422_with_the_chain_code(solo_city: SoloCity,
                                               client: httpx.Client) -> None:
    answer = client.post("/v1/txs", json={"tx": transfer(solo_city, 7), "wait": "commit"})
    body = assert_problem(answer, 422, SequenceFutureError.codespace, SequenceFutureError.code,
                          "body.sequence")
    assert body["title"] == SequenceFutureError.description


def test_over_the_rate_limit_is_429_with_retry_after(solo_city: SoloCity) -> None:
    url = solo_city.start_gateway(GatewaySettings(node_url=solo_city.rpc_url, rate_limit=0.5,
                                                  rate_burst=2))
    with httpx.Client(base_url=url) as gateway:
        statuses = [gateway.get("/v1/status").status_code for _ in range(3)]
        assert statuses[:2] == [200, 200]
        limited = gateway.get("/v1/status")
        assert_problem(limited, 429, "api", 4, "")
        assert int(limited.headers["retry-after"]) >= 1
        assert gateway.get("/healthz").status_code == 200  # health and metrics are not limited


def test_node_down_is_503(solo_city: SoloCity) -> None:
    url = solo_city.start_gateway(GatewaySettings(
        node_url=f"http://127.0.0.1:{free_port()}", rate_limit=0))
    with httpx.Client(base_url=url) as gateway:
        for answer in (gateway.get("/v1/status"), gateway.get("/healthz"),
                       gateway.get("/v1/query/bank/supply", params={"denom": "ucity"}),
                       gateway.post("/v1/txs", json={"tx": transfer(solo_city, 0)})):
            assert_problem(answer, 503, "api", 5, "")


class NotJsonRpc(http.server.BaseHTTPRequestHandler):
    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        payload = b"<html>a proxy error page</html>"
        self.send_response(200)
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def log_message(self, format: str, *args: Any) -> None:
        pass


def test_node_answering_wrongly_is_502(solo_city: SoloCity) -> None:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), NotJsonRpc)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        url = solo_city.start_gateway(GatewaySettings(
            node_url=f"http://127.0.0.1:{server.server_address[1]}", rate_limit=0))
        with httpx.Client(base_url=url) as gateway:
            assert_problem(gateway.get("/v1/status"), 502, "api", 6, "")
    finally:
        solo_city.stop_gateway()
        server.shutdown()
        server.server_close()


def test_commit_not_in_time_is_504(solo_city: SoloCity) -> None:
    url = solo_city.start_gateway(GatewaySettings(node_url=solo_city.rpc_url, rate_limit=0,
                                                  commit_timeout=1))
    solo_city.runtime.node.stop()  # no more blocks: the tx waits in the mempool
    with httpx.Client(base_url=url, timeout=60) as gateway:
        answer = gateway.post("/v1/txs", json={"tx": transfer(solo_city, 0), "wait": "commit"})
        body = assert_problem(answer, 504, "api", 7, "")
        assert "may still" in body["detail"]


# ------------------------------------------------------------------------------ txs
def test_wait_check_answers_before_the_commit(solo_city: SoloCity,
                                              client: httpx.Client) -> None:
    checked = client.post("/v1/txs", json={"tx": transfer(solo_city, 0), "wait": "check"})
    assert checked.status_code == 200, checked.text
    body = checked.json()
    assert body["check"]["code"] == 0
    assert body["height"] is None and body["result"] is None
    deadline = time.monotonic() + 10
    while (read := client.get(f"/v1/txs/{body['hash']}")).status_code == 404:
        assert time.monotonic() < deadline, "the checked tx never committed"
        time.sleep(0.02)
    assert read.status_code == 200
    assert read.json()["result"]["code"] == 0

    committed = commit(client, transfer(solo_city, 1))
    assert committed["check"]["code"] == 0
    assert committed["height"] > read.json()["height"]
    assert [e["type"] for e in committed["result"]["events"]] == ["coins_transferred"]
    assert client.get(f"/v1/txs/{committed['hash']}").json()["height"] == committed["height"]


def test_default_wait_is_commit(solo_city: SoloCity, client: httpx.Client) -> None:
    answer = client.post("/v1/txs", json={"tx": transfer(solo_city, 0)})
    assert answer.status_code == 200, answer.text
    assert answer.json()["height"] >= 1 and answer.json()["result"]["code"] == 0


# ------------------------------------------------------------------------------ blocks
def test_block_pages_cover_every_block_exactly_once(solo_city: SoloCity,
                                                    client: httpx.Client) -> None:
    for sequence in range(7):
        commit(client, transfer(solo_city, sequence))
    latest = client.get("/v1/status").json()["latest_height"]
    assert latest >= 7
    heights: list[int] = []
    cursor: str | None = None
    pages = 0
    while True:
        params: dict[str, Any] = {"limit": 3}
        if cursor is not None:
            params["cursor"] = cursor
        page = client.get("/v1/blocks", params=params)
        assert page.status_code == 200, page.text
        items = page.json()["items"]
        assert 1 <= len(items) <= 3
        heights += [item["height"] for item in items]
        pages += 1
        cursor = page.json()["next_cursor"]
        if cursor is None:
            break
    assert heights == list(range(latest, 0, -1))
    assert pages == -(-latest // 3)
    one = client.get(f"/v1/blocks/{latest}").json()
    assert one == client.get("/v1/blocks/latest").json()
    assert one["num_txs"] == len(one["tx_hashes"]) == 1


# ------------------------------------------------------------------------------ OpenAPI
def has_example(value: Any, document: dict[str, Any]) -> bool:
    """An ``example``/``examples`` anywhere in ``value``, following $refs into components."""
    if isinstance(value, dict):
        if value.get("example") is not None or value.get("examples"):
            return True
        if "$ref" in value:
            name = value["$ref"].rsplit("/", 1)[-1]
            return has_example(document["components"]["schemas"][name], document)
        return any(has_example(v, document) for k, v in value.items() if k != "properties")
    if isinstance(value, list):
        return any(has_example(v, document) for v in value)
    return False


def test_every_route_has_an_example(client: httpx.Client) -> None:
    document = client.get("/openapi.json").json()
    missing = []
    for path, operations in sorted(document["paths"].items()):
        for method, operation in sorted(operations.items()):
            request = [*operation.get("parameters", []), operation.get("requestBody", {})]
            ok = (operation.get("responses") or {}).get("200", {})
            if not (has_example(request, document) or has_example(ok, document)):
                missing.append(f"{method.upper()} {path}")
    assert not missing, f"routes without an example: {missing}"
    assert len(document["paths"]) >= 20


def test_required_query_parameters_are_required_in_openapi(client: httpx.Client) -> None:
    document = client.get("/openapi.json").json()
    required = {(path, parameter["name"]): parameter.get("required", False)
                for path, operations in document["paths"].items()
                for parameter in operations.get("get", {}).get("parameters", [])}
    assert required[("/v1/query/bank/balance", "denom")] is True
    assert required[("/v1/query/bank/supply", "denom")] is True
    assert required[("/v1/query/identity/role_holders", "role")] is True
    assert required[("/v1/query/validators/proposal", "id")] is True
    # one of address or did: neither alone is required
    assert required[("/v1/query/bank/balance", "address")] is False
    assert required[("/v1/query/bank/balance", "did")] is False
    assert_problem(client.get("/v1/query/bank/supply"), 400, "api", 1, "denom")


# ------------------------------------------------------------------------------ metrics
def metric_value(text: str, name: str, labels: str = "") -> float:
    pattern = rf"^{re.escape(name)}{re.escape(labels)} ([0-9.e+-]+)$"
    match = re.search(pattern, text, re.MULTILINE)
    return float(match.group(1)) if match else 0.0


def test_metrics(solo_city: SoloCity, client: httpx.Client) -> None:
    commit(client, transfer(solo_city, 0))
    commit(client, transfer(solo_city, 1))
    refused = '{code="11",codespace="core"}'
    before = client.get("/metrics").text
    assert client.post("/v1/txs", json={"tx": transfer(solo_city, 9)}).status_code == 422
    deadline = time.monotonic() + 10
    while True:  # the block tail counts committed txs a poll after the block
        text = client.get("/metrics")
        if metric_value(text.text, "citychain_txs_committed_total") >= 2 or (
                time.monotonic() > deadline):
            break
        time.sleep(0.1)
    assert text.status_code == 200
    assert text.headers["content-type"].startswith("text/plain")
    body = text.text
    for name in ("citychain_block_height", "citychain_txs_committed_total",
                 "citychain_check_tx_rejections_total", "citychain_api_request_seconds_bucket",
                 "citychain_api_request_seconds_count", "citychain_mempool_size"):
        assert re.search(rf"^{name}[{{ ]", body, re.MULTILINE), f"{name} missing:\n{body}"
    assert metric_value(body, "citychain_block_height") == (
        client.get("/v1/status").json()["latest_height"])
    assert metric_value(body, "citychain_txs_committed_total") >= 2
    assert metric_value(body, "citychain_check_tx_rejections_total", refused) == (
        metric_value(before, "citychain_check_tx_rejections_total", refused) + 1)
    assert re.search(r'^citychain_api_request_seconds_bucket\{[^}]*le="0.05"[^}]*\} ', body,
                     re.MULTILINE), "no latency histogram buckets"
    assert 'route="/v1/txs"' in body and 'status="422"' in body


# ------------------------------------------------------------------------------ CLI
def test_cli_api_help() -> None:
    result = CliRunner().invoke(cli_app, ["api", "--help"],
                                env={"CITYCHAIN_HOME": None, "CITYCHAIN_NODE": None})
    assert result.exit_code == 0, result.stderr
    for option in ("--node", "--host", "--port", "--public", "--rate-limit"):
        assert option in result.stdout


def test_cli_api_refuses_a_public_host_without_public() -> None:
    # a child process, so a broken guard would serve in a process the timeout kills, not here
    result = subprocess.run(
        [sys.executable, "-m", "citychain.cli", "api", "--host", "0.0.0.0",
         "--node", "http://127.0.0.1:9", "--port", str(free_port())],
        capture_output=True, text=True, timeout=60, check=False)
    assert result.returncode == 2, result
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    assert "--public" in lines[0]
