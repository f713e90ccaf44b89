FROM python:3.11-slim
WORKDIR /src
COPY pyproject.toml README.md ./
COPY shared shared
COPY workers workers
COPY producers producers
COPY simulator simulator
COPY chatq chatq
RUN pip install --no-cache-dir ".[server]"
# Commands run from a folder without the source: Celery (`celery -A chatq...`: Flower, the
# workers' health check) imports from the working folder first, where the source's chatq/
# (which has no chatq.workers) would hide the installed package.
WORKDIR /app
ENV CHATQ_GATEWAY_HOST=0.0.0.0
CMD ["chatq", "--help"]
