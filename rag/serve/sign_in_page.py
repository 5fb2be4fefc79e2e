"""The sign-in page's one behaviour of ours: Gradio's form clears the user name with the password after a wrong
password; `KeepUserName` adds a small script (page/sign_in.js) to the page that puts it back. Gradio does not
run the chat's own `head` script before sign-in, so the script goes in as the page is sent."""

from __future__ import annotations

from pathlib import Path

from starlette.types import ASGIApp, Message, Receive, Scope, Send

SCRIPT = (Path(__file__).parent / "page" / "sign_in.js").read_bytes()


class KeepUserName:
    """ASGI middleware: the page's HTML (a GET whose answer is `text/html`) gets the sign-in script before its
    `</head>`; every other answer passes untouched."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] != "GET":
            await self.app(scope, receive, send)
            return
        start: Message | None = None
        body: list[bytes] = []

        async def collect(message: Message) -> None:
            nonlocal start
            if message["type"] == "http.response.start":
                headers = dict(message.get("headers", []))
                if not headers.get(b"content-type", b"").startswith(b"text/html"):
                    await send(message)
                    return
                start = message
                return
            if start is None:  # not the page: passed through as it comes
                await send(message)
                return
            body.append(message.get("body", b""))
            if not message.get("more_body", False):
                page = with_script(b"".join(body))
                kept = [(k, v) for k, v in start.get("headers", []) if k != b"content-length"]
                await send({**start, "headers": [*kept, (b"content-length", str(len(page)).encode())]})
                await send({"type": "http.response.body", "body": page})

        await self.app(scope, receive, collect)


def with_script(page: bytes) -> bytes:
    """`page` with the sign-in script just before its `</head>` (unchanged when it has none)."""
    head = page.find(b"</head>")
    if head < 0:
        return page
    return page[:head] + b"<script>" + SCRIPT + b"</script>" + page[head:]
