"""The collection as a tool for AI agents: an MCP server (the `mcp` SDK, streamable HTTP) whose one tool searches
the index and returns the passages verbatim with their attribution, scores and `found`, as `rag ask --json`.

`python app.py --mcp` serves it beside the chat on its own port. Gradio's own MCP server is not used: measured
with gradio 6.31 and `launch(auth=…, mcp_server=True)`, its `tools/list` answered without credentials. Here
every request of every route, the session's first included, must carry the `--auth` credentials as HTTP Basic
authentication, checked (and wrong ones slowed) by the chat's own `SignIn`.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import socket
import threading
from typing import TYPE_CHECKING, Any

from rag.api import Index
from rag.errors import RagError
from rag.search.request import DEFAULT_K, SearchRequest

if TYPE_CHECKING:
    from mcp.server.mcpserver import MCPServer
    from starlette.types import ASGIApp, Receive, Scope, Send

    from rag.serve.sign_in import SignIn

MCP_PATH = "/mcp"
TOOL_DESCRIPTION = (
    "Search the indexed news articles and get back the passages that answer the question, each quoted verbatim "
    "(an exact slice of its article) with its title, publication, URL, date, author and character offsets, a "
    "calibrated `score` (the chance the passage answers the question) and `found` (false when none does: then "
    "say the articles do not answer it rather than guessing). Quote passages as given; cite title and URL."
)


def build_mcp(index: Index) -> MCPServer:
    """An MCP server with one tool, `search_articles`, over `index`."""
    from mcp.server.mcpserver import MCPServer
    from mcp.server.mcpserver.exceptions import ToolError
    from mcp.types import ToolAnnotations

    server: MCPServer = MCPServer(
        name="verbatim",
        instructions="Answers from a collection of news articles, quoted word for word with their sources.",
    )

    @server.tool(
        description=TOOL_DESCRIPTION,
        annotations=ToolAnnotations(title="Search the articles", read_only_hint=True, open_world_hint=False),
    )
    def search_articles(
        question: str,
        k: int = DEFAULT_K,
        mode: str = "hybrid",
        source: str = "",
        since: str = "",
        until: str = "",
    ) -> dict[str, Any]:
        """`question` in plain words; `k` passages (1-100); `mode` hybrid, semantic or keyword; `source` an
        article's file name, a glob or a site; `since`/`until` YYYY, YYYY-MM or YYYY-MM-DD (inclusive)."""
        try:
            return index.ask(SearchRequest.build(question, k, mode, source, since, until)).to_dict()
        except RagError as exc:  # the agent's value: said back so that it can ask again
            raise ToolError(str(exc)) from exc

    return server


class RequireSignIn:
    """ASGI middleware: every HTTP request needs HTTP Basic credentials that `sign_in` accepts; others get 401
    (after `SignIn`'s growing delay for a wrong password). Lifespan events pass through."""

    def __init__(self, app: ASGIApp, sign_in: SignIn) -> None:
        self.app = app
        self.sign_in = sign_in

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and not await self._signed_in(scope):
            await self._drain(receive)
            body = b"Sign in: this Verbatim server needs --auth credentials."
            await send(
                {
                    "type": "http.response.start",
                    "status": 401,
                    "headers": [
                        (b"www-authenticate", b'Basic realm="Verbatim", charset="UTF-8"'),
                        (b"content-type", b"text/plain; charset=utf-8"),
                        (b"content-length", str(len(body)).encode()),
                    ],
                }
            )
            await send({"type": "http.response.body", "body": body})
            return
        await self.app(scope, receive, send)

    @staticmethod
    async def _drain(receive: Receive, limit: int = 1 << 20) -> None:
        """Read the refused request's body (up to `limit` bytes) before answering: a server that closes a
        connection with unread bytes in it resets it, and the client then loses the 401 it was being sent
        (CI saw exactly that: ConnectionResetError instead of the 401)."""
        read = 0
        while read <= limit:
            message = await receive()
            if message["type"] != "http.request":
                return
            read += len(message.get("body", b""))
            if not message.get("more_body", False):
                return

    async def _signed_in(self, scope: Scope) -> bool:
        header = dict(scope.get("headers", [])).get(b"authorization", b"")
        scheme, _, encoded = header.partition(b" ")
        if scheme.lower() != b"basic":
            return False
        try:
            user, sep, password = base64.b64decode(encoded.strip(), validate=True).decode("utf-8").partition(":")
        except (binascii.Error, UnicodeDecodeError):
            user, sep, password = "", "", ""
        right, wait = self.sign_in.verdict(user, password) if sep else (False, 0.0)
        if wait > 0:
            await asyncio.sleep(wait)
        return right


def serve_mcp(index: Index, host: str, port: int, sign_in: SignIn | None) -> str:
    """Start the MCP server on `host:port` in a background thread; returns its URL. DNS rebinding protection
    (the SDK's, on for a loopback host) refuses requests whose Host is not this machine's."""
    import uvicorn

    app: ASGIApp = build_mcp(index).streamable_http_app(
        streamable_http_path=MCP_PATH, stateless_http=True, json_response=True, host=host
    )
    if sign_in is not None:
        app = RequireSignIn(app, sign_in)
    try:  # bound here, so that a port in use is this call's error rather than a thread's log line
        listening = socket.create_server((host, port), family=socket.AF_INET6 if ":" in host else socket.AF_INET)
    except OSError as exc:
        raise RagError(f"the MCP server cannot listen on {host}:{port}: {exc.strerror or exc}") from exc
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="on"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [listening]}, daemon=True, name="mcp-server")
    thread.start()
    return f"http://{host}:{port}{MCP_PATH}"
