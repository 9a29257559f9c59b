# Two images from one file:
#   docker build --target api -t spikeserve-api .        the HTTP API: no torch (it never imports it)
#   docker build --target worker -t spikeserve-worker .  a worker: torch and a C compiler
# docker-compose.yml builds both. torch comes from PyPI's default index, whose Linux build carries
# CUDA (and runs on the CPU too when no GPU is visible); build with
# --build-arg TORCH_INDEX=https://download.pytorch.org/whl/cpu for a CPU-only worker image.

# The viewer: uPlot from npm plus our sources, copied into dist/ (no bundler).
FROM node:20-bookworm-slim AS viewer
WORKDIR /frontend
COPY frontend/package.json frontend/package-lock.json ./
RUN npm ci --no-audit --no-fund
COPY frontend/build.mjs ./
COPY frontend/src ./src
RUN npm run build

# spikeserve as a wheel: the images install it like any package (no editable install).
FROM python:3.11-slim-bookworm AS wheel
WORKDIR /src
COPY pyproject.toml README.md ./
COPY app ./app
COPY worker ./worker
RUN pip wheel --no-cache-dir --no-deps --wheel-dir /wheels .

FROM python:3.11-slim-bookworm AS base
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    SPIKESERVE_VIEWER_DIR=/app/frontend/dist \
    SPIKESERVE_EXAMPLES_DIR=/app/examples
RUN useradd --create-home --uid 10001 spikeserve
WORKDIR /app
COPY examples ./examples

FROM base AS api
COPY --from=viewer /frontend/dist ./frontend/dist
COPY --from=wheel /wheels /wheels
RUN pip install /wheels/*.whl && rm -rf /wheels
USER 10001
EXPOSE 8000
HEALTHCHECK --interval=15s --timeout=5s --start-period=30s --retries=3 \
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8000/healthz', timeout=4)"]
# The API needs API keys to listen beyond loopback: set SPIKESERVE_API_KEY_HASHES.
CMD ["spikeserve", "api", "--host", "0.0.0.0"]

FROM base AS worker
# gcc: the fused CPU kernels are compiled on first use, for the CPU they run on (-march=native),
# so the image carries a compiler rather than a binary built on another machine; they are kept
# in SPIKESERVE_KERNEL_CACHE (a volume in docker-compose.yml). Debian's version of the day is
# wanted here, hence no pin.
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends gcc libc6-dev \
    && rm -rf /var/lib/apt/lists/*
ARG TORCH_INDEX=https://pypi.org/simple
# torch first and alone: the largest layer changes least often.
RUN pip install --index-url "$TORCH_INDEX" "torch==2.13.0"
COPY --from=wheel /wheels /wheels
RUN pip install "$(ls /wheels/*.whl)[worker]" && rm -rf /wheels
ENV SPIKESERVE_KERNEL_CACHE=/var/cache/spikeserve
RUN mkdir -p /var/cache/spikeserve && chown spikeserve /var/cache/spikeserve
USER 10001
# A worker is healthy while its heartbeat (renewed every 5 s, kept 15 s) is in Redis.
HEALTHCHECK --interval=15s --timeout=5s --start-period=60s --retries=3 \
    CMD ["python", "-c", "import socket, redis; from worker.settings import Settings; r = redis.Redis.from_url(Settings().redis_url); assert any(r.scan_iter('ss:workers:*@' + socket.gethostname()))"]
CMD ["spikeserve", "worker"]
