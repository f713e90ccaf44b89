"""Token logprobs: OpenAI's entry shape, deterministic, the token first among its top ones."""

from __future__ import annotations

from chatq.simulator.logprobs import entries, entry


def test_entry_shape_bytes_and_a_negative_logprob():
    item = entry(" héllo", 0, 0)
    assert set(item) == {"token", "logprob", "bytes", "top_logprobs"}
    assert item["token"] == " héllo" and item["bytes"] == list(" héllo".encode())
    assert -2.5 <= item["logprob"] < 0 and item["top_logprobs"] == []


def test_top_logprobs_start_with_the_token_and_fall():
    item = entry(" job", 3, 5)
    tops = item["top_logprobs"]
    assert len(tops) == 5 and tops[0] == {k: item[k] for k in ("token", "logprob", "bytes")}
    assert len({t["token"] for t in tops}) == 5
    assert all(t["token"].startswith(" ") for t in tops)
    assert [t["logprob"] for t in tops] == sorted((t["logprob"] for t in tops), reverse=True)
    assert all(set(t) == {"token", "logprob", "bytes"} for t in tops)


def test_deterministic_per_token_position_and_choice():
    assert entries(["A", " b"], 2) == entries(["A", " b"], 2)
    assert entry("A", 0, 0)["logprob"] != entry("A", 1, 0)["logprob"]
    assert entry("A", 0, 0, choice=1)["logprob"] != entry("A", 0, 0)["logprob"]
