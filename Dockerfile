# One image for the API and the workers. torch comes from PyPI's default index, whose Linux build
# carries CUDA (and runs on the CPU too when no GPU is visible).

# The viewer: uPlot from npm plus our sources, copied into dist/ (no bundler).
FROM node:20-bookworm-slim AS viewer
WORKDIR /frontend
COPY frontend/package.json frontend/package-lock.json ./
RUN npm ci --no-audit --no-fund
COPY frontend/build.mjs ./
COPY frontend/src ./src
RUN npm run build

FROM python:3.11-slim-bookworm

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

# gcc: the fused CPU kernels are compiled on first use, for the CPU they run on (-march=native),
# so the image carries a compiler rather than a binary built on another machine. Debian's own
# version of the day is wanted here, hence no pin.
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends gcc libc6-dev \
    && rm -rf /var/lib/apt/lists/*

RUN useradd --create-home --uid 10001 spikeserve
WORKDIR /app

# torch first and alone: the largest layer changes least often.
RUN pip install "torch==2.13.0"

COPY pyproject.toml README.md ./
COPY app ./app
COPY worker ./worker
COPY --from=viewer /frontend/dist ./frontend/dist
COPY examples ./examples
RUN pip install -e . && chown -R spikeserve /app

USER 10001
EXPOSE 8000
HEALTHCHECK --interval=15s --timeout=5s --start-period=30s --retries=3 \
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8000/healthz', timeout=4)"]
# The API needs API keys to listen beyond loopback: set SPIKESERVE_API_KEY_HASHES.
CMD ["spikeserve", "api", "--host", "0.0.0.0"]
