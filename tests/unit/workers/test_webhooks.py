"""A webhook is checked again when it is delivered: a host that now resolves inside is not
called, however it looked when the job was submitted."""

from __future__ import annotations

from chatq.shared.webhook_targets import WebhookPolicy
from chatq.workers.webhooks import WebhookSender


class Store:
    """Just enough of the job store for one delivery."""

    class Record:
        def model_dump(self, **_: object) -> dict[str, str]:
            return {"job_id": "job_1", "status": "done"}

        status = type("S", (), {"value": "done"})()

    def __init__(self) -> None:
        self.noted: list[str] = []

    def get(self, job_id: str) -> Record:
        return self.Record()

    def note_webhook(self, job_id: str, state: str) -> None:
        self.noted.append(state)


def test_a_host_that_now_resolves_to_loopback_is_not_called():
    store = Store()
    sender = WebhookSender(
        store,  # type: ignore[arg-type]
        "secret",
        policy=WebhookPolicy(),
        resolve=lambda host, port: ["127.0.0.1"],  # DNS changed since the job was accepted
    )
    assert sender.deliver("job_1", "https://hooks.example.com/in") == "failed"
    assert store.noted == ["failed"]
