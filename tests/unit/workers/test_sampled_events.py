"""Chat task events for one job in N, decided by the job's id."""

from __future__ import annotations

import uuid

from chatq.workers.sampled_events import SampledDispatcher, in_sample


class RecordingDispatcher:
    enabled = True

    def __init__(self) -> None:
        self.sent: list[tuple[str, str | None]] = []

    def send(self, type: str, **fields: object) -> None:
        self.sent.append((type, fields.get("uuid")))  # type: ignore[arg-type]


def test_about_one_job_in_n_is_in_the_sample():
    ids = [str(uuid.UUID(int=i * 7919 + 13, version=4)) for i in range(20_000)]
    share = sum(in_sample(i, 10) for i in ids) / len(ids)
    assert 0.08 < share < 0.12
    assert all(in_sample(i, 1) for i in ids[:100])


def test_every_event_of_a_sampled_job_is_sent_and_none_of_the_others():
    ids = [str(uuid.uuid4()) for _ in range(200)]
    real = RecordingDispatcher()
    sampled = SampledDispatcher(real, every=5)
    for job_id in ids:
        for kind in ("task-received", "task-started", "task-succeeded"):
            sampled.send(kind, uuid=job_id)
    sent_ids = {job_id for _, job_id in real.sent}
    assert sent_ids == {i for i in ids if in_sample(i, 5)}
    assert len(real.sent) == 3 * len(sent_ids)


def test_events_of_no_task_and_attributes_pass_through():
    real = RecordingDispatcher()
    sampled = SampledDispatcher(real, every=1000)
    sampled.send("worker-heartbeat")
    assert real.sent == [("worker-heartbeat", None)]
    assert sampled.enabled is True
