"""The gateway's errors in OpenAI's shape: refusals name the parameter and show no more than
a short prefix of what was sent; text the encoder cannot carry is a 400, not a 500."""

from __future__ import annotations

from typing import Annotated

import pytest
from chatq.producers.errors import install_error_handlers, shown
from chatq.shared.jobs import ChatRequest
from fastapi import FastAPI, Header
from fastapi.testclient import TestClient
from pydantic import BaseModel, Field

from tests.support.echoes import echoes

LONG = "".join(f"{i:05d}" for i in range(2000))  # no run of it repeats


class Body(BaseModel):
    attributes: dict[str, Annotated[str, Field(max_length=5)]] = {}
    name: str = Field("", pattern=r"^[a-z]*$")


def client() -> TestClient:
    app = FastAPI()
    install_error_handlers(app)

    @app.post("/v1/things")
    def post(body: Body, tag: Annotated[str | None, Header(max_length=3)] = None) -> Body:
        return body

    @app.post("/v1/chat")
    def chat(body: ChatRequest) -> dict:
        return {}

    @app.post("/v1/echo")
    def echo(body: dict) -> dict:
        return body

    return TestClient(app, raise_server_exceptions=False)


def test_a_long_dict_key_on_the_way_to_a_refused_value_is_shown_by_its_start_only():
    reply = client().post("/v1/things", json={"attributes": {LONG: "too long"}})
    assert reply.status_code == 400
    error = reply.json()["error"]
    assert error["type"] == "invalid_request_error" and error["param"].startswith("attributes.")
    assert not echoes(LONG, error["message"], 16) and not echoes(LONG, error["param"], 16)


def test_a_refused_header_is_named_as_sent():
    reply = client().post("/v1/things", json={}, headers={"tag": "long"})
    assert reply.status_code == 400 and reply.json()["error"]["param"] == "tag"


def test_a_message_quoting_the_input_quotes_its_start_only():
    error = {"loc": ("body", "name"), "msg": f"Input {LONG} is bad", "input": LONG}
    assert not echoes(LONG, shown(error)["msg"], 16)
    assert shown(error)["loc"] == ("name",)


@pytest.mark.parametrize("path", ["/v1/" + LONG, "/v1/\u202eabc"])
def test_an_unknown_path_is_shown_by_its_start_only(path):
    reply = client().get(path)
    assert reply.status_code == 404
    message = reply.json()["error"]["message"]
    assert not echoes(path, message, 40) and "\u202e" not in message


def test_text_the_encoder_cannot_carry_is_a_400_wherever_it_fails():
    raw = '{"ok": "a", "\\ud800": 1}'  # a lone surrogate, as a key
    reply = client().post("/v1/echo", content=raw, headers={"Content-Type": "application/json"})
    assert reply.status_code == 400
    assert "surrogate" in reply.json()["error"]["message"]


def test_a_check_of_the_whole_request_names_the_parameter_it_refused():
    tools = [{"type": "function", "function": {"name": "ok"}}]
    tools.append({"type": "function", "function": {"name": "no spaces"}})
    body = {"model": "m", "messages": [{"role": "user", "content": "hi"}], "tools": tools}
    reply = client().post("/v1/chat", json=body)
    assert reply.status_code == 400
    error = reply.json()["error"]
    assert error["param"] == "tools[1].function.name"
    assert "tools[1].function.name must be 1 to 64 letters" in error["message"]
