FROM python:3.11-slim
WORKDIR /app
COPY pyproject.toml README.md ./
COPY shared shared
COPY workers workers
COPY producers producers
COPY simulator simulator
COPY chatq chatq
RUN pip install --no-cache-dir ".[server]"
ENV CHATQ_GATEWAY_HOST=0.0.0.0
CMD ["chatq", "--help"]
