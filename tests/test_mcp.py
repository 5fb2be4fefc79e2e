"""`python app.py --mcp`: the search as an MCP tool over streamable HTTP, reached with the `mcp` client library
as an agent reaches it; with `--auth`, nothing on the MCP port answers without the credentials."""

from __future__ import annotations

import asyncio
import base64
import json
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from conftest import CORPUS, free_port, start_chat

pytestmark = pytest.mark.slow
mcp = pytest.importorskip("mcp")
USER, PASSWORD = "desk", "s3cret-words"
LIST_TOOLS = {"jsonrpc": "2.0", "id": 1, "method": "tools/list", "params": {}}
CALL = {
    "jsonrpc": "2.0",
    "id": 2,
    "method": "tools/call",
    "params": {"name": "search_articles", "arguments": {"question": "Who was Kim Kyoung-soo's political mentor?"}},
}


@pytest.fixture(scope="module")
def mcp_server(tmp_path_factory: pytest.TempPathFactory):
    import shutil

    base = tmp_path_factory.mktemp("mcp")
    shutil.copytree(CORPUS, base / "corpus")
    port = free_port()
    server = start_chat(
        base / "corpus",
        base / "index",
        base / "app.log",
        "--mcp",
        "--mcp-port",
        str(port),
        "--auth",
        f"{USER}:{PASSWORD}",
    )
    yield server, f"http://127.0.0.1:{port}/mcp"
    server.stop()


def post(url: str, payload: dict, credentials: str | None) -> tuple[int, str]:
    headers = {"Content-Type": "application/json", "Accept": "application/json, text/event-stream"}
    if credentials is not None:
        headers["Authorization"] = "Basic " + base64.b64encode(credentials.encode()).decode()
    request = urllib.request.Request(url, json.dumps(payload).encode(), headers, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


def run_client(url: str, credentials: str | None, calls: list[tuple[str, dict]]) -> list:
    """Connect with the `mcp` client library and make `calls`: ("list", {}) or (tool name, arguments)."""
    import httpx2
    from mcp import Client
    from mcp.client.streamable_http import streamable_http_client

    headers = {"Authorization": "Basic " + base64.b64encode(credentials.encode()).decode()} if credentials else {}

    async def session() -> list:
        http = httpx2.AsyncClient(headers=headers, timeout=60)
        async with Client(streamable_http_client(url, http_client=http)) as client:
            results = []
            for name, arguments in calls:
                results.append(await client.list_tools() if name == "list" else await client.call_tool(name, arguments))
            return results

    return asyncio.run(session())


def test_without_credentials_every_mcp_route_is_refused(mcp_server):
    _, url = mcp_server
    for payload in (LIST_TOOLS, CALL):
        for credentials in (None, f"{USER}:wrong", "not-basic-at-all"):
            status, body = post(url, payload, credentials)
            assert status == 401, (payload["method"], credentials, body)
            assert "search_articles" not in body and "Roh Moo-hyun" not in body
    with pytest.raises(Exception):  # noqa: B017 - the client library's own error for a 401, whatever its class
        run_client(url, f"{USER}:wrong", [("list", {})])


def test_an_agent_lists_the_tool_and_gets_verbatim_passages_with_their_sources(mcp_server):
    server, url = mcp_server
    listed, answered, wrong = run_client(
        url,
        f"{USER}:{PASSWORD}",
        [
            ("list", {}),
            ("search_articles", {"question": "Who was Kim Kyoung-soo's political mentor?", "k": 3}),
            ("search_articles", {"question": "Who is Lee?", "source": "nosuch.txt"}),
        ],
    )
    [tool] = [t for t in listed.tools if t.name == "search_articles"]
    assert {"question", "k", "mode", "source", "since", "until"} <= set(tool.input_schema["properties"])
    assert not answered.is_error
    payload = json.loads(answered.content[0].text)
    assert payload["found"] is True and len(payload["passages"]) == 3
    assert any("Roh Moo-hyun" in p["text"] for p in payload["passages"])
    for p in payload["passages"]:
        assert {"title", "site", "url", "published", "author", "start", "end", "score"} <= set(p)
        article = Path(server.corpus / p["source"].split("#")[0]).read_text()
        assert p["text"] in article  # verbatim: a slice of the article as written
    assert wrong.is_error and "no article, site or web address called “nosuch.txt”" in wrong.content[0].text
