"""Conversations by session_id: history kept and sent, compaction within the token budget
(checked on what the simulator received), user profiles, and erasing a user."""

from __future__ import annotations

import openai
import pytest
import requests
from chatq.producers.client import ChatqClient
from chatq.producers.sessions import SUMMARISE

from tests.support.stacks import stack_fixture

BUDGET = 400


stack = stack_fixture(gateway=True, extra_env={"CHATQ_SESSION_TOKEN_BUDGET": str(BUDGET)})


@pytest.fixture(scope="module")
def url(stack) -> str:
    return stack.gateway_url


@pytest.fixture(scope="module")
def client(stack) -> openai.OpenAI:
    return stack.openai()


def say(client: openai.OpenAI, text: str, session: str, **extra) -> str:
    reply = client.chat.completions.create(
        model="sim-mini",
        messages=[{"role": "user", "content": text}],
        max_tokens=12,
        extra_body={"session_id": session, **extra},
    )
    return reply.choices[0].message.content


def test_a_three_turn_conversation_sends_its_history(stack, client, url):
    stack.sim_reset()
    first = say(client, "My name is Ana.", "three-turns")
    second = say(client, "I like green tea.", "three-turns")
    say(client, "What is my name?", "three-turns")
    third = stack.sim_requests()[-1]["body"]["messages"]
    assert [(m["role"], m["content"]) for m in third] == [
        ("user", "My name is Ana."),
        ("assistant", first),
        ("user", "I like green tea."),
        ("assistant", second),
        ("user", "What is my name?"),
    ]
    session = requests.get(f"{url}/sessions/three-turns", timeout=10).json()
    assert len(session["turns"]) == 6 and session["expires_in"] > 0


def test_the_session_id_header_works_like_the_body_field(stack, client):
    stack.sim_reset()
    for text in ("One.", "Two."):
        client.chat.completions.create(
            model="sim-mini",
            messages=[{"role": "user", "content": text}],
            max_tokens=5,
            extra_headers={"X-Session-Id": "by-header"},
        )
    assert len(stack.sim_requests()[-1]["body"]["messages"]) == 3


def test_a_200_turn_conversation_is_compacted_and_never_passes_the_budget(stack, url):
    stack.sim_reset()
    settings = stack.settings.model_copy(update={"session_token_budget": BUDGET})
    with ChatqClient(settings) as sdk:  # the SDK builds requests: it holds the budget
        for turn in range(200):
            result = sdk.chat(
                f"Turn {turn}: remember that item {turn} costs {turn * 3} coins.",
                session_id="long-talk",
                max_tokens=20,
            )
            assert result.status == "done"
    log = stack.sim_requests()
    assert max(entry["prompt_tokens"] for entry in log) <= BUDGET
    summaries = [e for e in log if e["body"]["messages"][0]["content"] == SUMMARISE]
    assert summaries, "the history was never compacted"
    session = requests.get(f"{url}/sessions/long-talk", timeout=10).json()
    assert session["summary"] and session["summarised_turns"] > 300
    last = log[-1]["body"]["messages"]
    assert last[-1]["content"].startswith("Turn 199:")
    assert last[0]["content"].startswith("Summary of the conversation so far:")
    print(
        f"200 turns: {len(log)} provider requests, {len(summaries)} summaries, "
        f"largest prompt {max(e['prompt_tokens'] for e in log)} tokens of {BUDGET}"
    )


def test_a_session_can_be_deleted(client, url):
    say(client, "Forget me soon.", "short-lived")
    assert requests.delete(f"{url}/sessions/short-lived", timeout=10).json()["deleted"]
    assert requests.get(f"{url}/sessions/short-lived", timeout=10).status_code == 404
    assert requests.delete(f"{url}/sessions/short-lived", timeout=10).status_code == 404


def test_a_profile_is_attached_and_erasing_the_user_removes_everything(stack, client, url):
    profile = {"attributes": {"name": "Ana", "tier": "gold"}}
    assert requests.put(f"{url}/users/u-42/profile", json=profile, timeout=10).ok
    stack.sim_reset()
    reply = client.chat.completions.create(
        model="sim-mini",
        messages=[{"role": "user", "content": "Hello there"}],
        max_tokens=5,
        user="u-42",
        extra_body={"session_id": "u42-talk"},
    )
    system = stack.sim_requests()[-1]["body"]["messages"][0]
    assert system["role"] == "system" and "name: Ana" in system["content"]
    job_id = reply.id.replace("chatcmpl-", "job_")
    redis = stack.settings_redis()
    assert redis.exists(f"chatq:job:{job_id}")
    redis.zadd("chatq:dlq", {job_id: 1.0})  # as if the job had failed for good
    redis.hset("chatq:dlq:jobs", job_id, "{}")
    erased = requests.delete(f"{url}/users/u-42", timeout=10).json()
    assert erased["erased"] == {"sessions": 1, "jobs": 1, "cached_answers": 1, "dead_letters": 1}
    assert redis.zscore("chatq:dlq", job_id) is None and not redis.hexists("chatq:dlq:jobs", job_id)
    assert requests.get(f"{url}/users/u-42/profile", timeout=10).json() == {"attributes": {}}
    assert requests.get(f"{url}/sessions/u42-talk", timeout=10).status_code == 404
    assert not redis.exists(f"chatq:job:{job_id}")
    assert not list(redis.scan_iter("chatq:user:-:u-42:*"))
