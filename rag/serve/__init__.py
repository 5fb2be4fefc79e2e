"""The shells people use: the `rag` command, the conversation the browser chat and `rag chat` share, and the
Gradio page (`rag.serve.chat`, imported by `app.py` alone so the CLI and the Python API never pay for Gradio)."""

from rag.serve.chat_service import ChatService, Reply
from rag.serve.cli import main

__all__ = ["ChatService", "Reply", "main"]
