"""A deterministic token estimate that needs no tokenizer download.

Roughly one token per word or punctuation mark, and one per four characters of a long word:
close enough to BPE counts of English for budgeting, and the same on every machine.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

_PIECE = re.compile(r"\w+|[^\w\s]", re.UNICODE)
MESSAGE_OVERHEAD_TOKENS = 4  # role and separators, as OpenAI counts per message
REPLY_PRIMER_TOKENS = 3


def count_text_tokens(text: str) -> int:
    return sum(max(1, (len(piece) + 3) // 4) for piece in _PIECE.findall(text))


def count_prompt_tokens(contents: Iterable[str]) -> int:
    """Tokens of a chat prompt, given the text of each message."""
    return sum(MESSAGE_OVERHEAD_TOKENS + count_text_tokens(c) for c in contents) + (
        REPLY_PRIMER_TOKENS
    )
