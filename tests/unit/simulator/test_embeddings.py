import math

import pytest
from chatq.simulator.embeddings import EmbeddingProblem, embeddings, inputs_of


def test_each_input_gets_a_unit_vector_the_same_every_time():
    body = {"model": "sim-mini", "input": ["a cat", "a dog"], "dimensions": 8}
    first = embeddings(body, inputs_of(body))
    again = embeddings(body, inputs_of(body))
    vectors = [d["embedding"] for d in first["data"]]
    assert vectors == [d["embedding"] for d in again["data"]]
    assert vectors[0] != vectors[1]
    assert all(len(v) == 8 and math.isclose(sum(x * x for x in v), 1.0) for v in vectors)
    assert [d["index"] for d in first["data"]] == [0, 1]
    assert first["usage"]["prompt_tokens"] > 0


def test_token_arrays_and_single_strings_are_inputs_too():
    assert inputs_of({"input": "one"}) == ["one"]
    assert inputs_of({"input": [1, 2, 3]}) == [[1, 2, 3]]
    assert inputs_of({"input": [[1], [2, 3]]}) == [[1], [2, 3]]


@pytest.mark.parametrize("given", [None, [], [""], [1.5], {"a": 1}])
def test_malformed_input_is_a_400_naming_input(given):
    with pytest.raises(EmbeddingProblem) as problem:
        inputs_of({"input": given})
    assert problem.value.param == "input"
