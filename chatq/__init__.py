"""Operating chatq: the ``chatq`` command, the local stack, the embedded Redis, the benchmark."""
