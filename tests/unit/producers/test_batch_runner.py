"""A batch file's lines: which endpoint they ask for."""

from chatq.producers.batch_runner import endpoint_of


def test_a_batch_files_endpoint_is_its_first_lines(tmp_path):
    path = tmp_path / "in.jsonl"
    path.write_text('\n{"custom_id": "a", "url": "/v1/responses", "body": {}}\n')
    assert endpoint_of(path) == "/v1/responses"
    path.write_text('{"custom_id": "a", "url": "/v1/unknown"}\n')
    assert endpoint_of(path) == "/v1/chat/completions"
