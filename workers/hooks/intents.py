"""Intent routing: answer some requests without the AI.

``IntentRouter`` holds rules, each a pattern over the last user message and a function giving
the answer (or None, to let the AI answer after all). ``OrderStatus`` is the customer-service
example: "where is my order 12345?" is answered from the order system, here a Redis hash
(``chatq:demo:orders``, order id -> status), and everything else goes to the model.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from functools import cached_property

from chatq.shared import keys
from chatq.shared.jobs import Role
from chatq.shared.redis_clients import sync_client
from chatq.shared.settings import get_settings
from chatq.workers.hooks import ChatHook, Turn


@dataclass(frozen=True)
class Rule:
    pattern: re.Pattern[str]
    answer: Callable[[re.Match[str]], str | None]


def last_user_text(turn: Turn) -> str:
    users = [m for m in turn.request.messages if m.role is Role.user]
    return users[-1].text() if users else ""


class IntentRouter(ChatHook):
    name = "intent_router"

    def rules(self) -> list[Rule]:
        return []

    def before(self, turn: Turn) -> str | None:
        text = last_user_text(turn)
        for rule in self.rules():
            match = rule.pattern.search(text)
            if match is not None and (answer := rule.answer(match)) is not None:
                return answer
        return None


ORDER_QUESTION = re.compile(
    r"(?:status|where|track|happened)\b.{0,40}?\border\s*(?:no\.?|number|#)?\s*(\d{4,12})\b"
    r"|\border\s*(?:no\.?|number|#)?\s*(\d{4,12})\b.{0,40}?\b(?:status|where|arrive|shipped)",
    re.IGNORECASE,
)


class OrderStatus(IntentRouter):
    name = "order_status"

    def __init__(self, lookup: Callable[[str], str | None] | None = None):
        self._lookup = lookup

    @cached_property
    def lookup(self) -> Callable[[str], str | None]:
        if self._lookup is not None:
            return self._lookup
        redis = sync_client(get_settings().effective_redis_url)
        return lambda order_id: redis.hget(keys.DEMO_ORDERS, order_id)

    def rules(self) -> list[Rule]:
        return [Rule(ORDER_QUESTION, self._answer)]

    def _answer(self, match: re.Match[str]) -> str | None:
        order_id = match.group(1) or match.group(2)
        status = self.lookup(order_id)
        if status is None:
            return None  # unknown order: the model may ask for details
        return f"Order {order_id} is {status}."
