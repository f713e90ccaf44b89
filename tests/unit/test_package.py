"""What ``import chatq`` offers a service: the SDK, from the top."""

from __future__ import annotations

import subprocess
import sys

from chatq.producers import AsyncChatqClient, ChatqClient

import chatq


def test_the_sdk_imports_from_the_top_of_the_package():
    assert chatq.ChatqClient is ChatqClient
    assert chatq.AsyncChatqClient is AsyncChatqClient


def test_importing_chatq_alone_loads_no_sdk():
    code = "import sys, chatq; print('chatq.producers.client' in sys.modules)"
    loaded = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert loaded.stdout.strip() == "False"
