# syntax=docker/dockerfile:1.7
# One image recipe for every AI-ETL process. SERVICE_EXTRA picks the pyproject extra, so a worker's
# image carries only its own dependencies:
#   docker build --build-arg SERVICE_EXTRA=drift -t aietl-drift .   ->  aietl worker drift
#   docker build --build-arg SERVICE_EXTRA=all   -t aietl-all .     ->  aietl gateway | aietl migrate
# A worker image carries only its own extra: workers serve /health, /ready and /metrics through
# Starlette (services/operations.py). The gateway mounts every service's routes, so the gateway and
# the migration job run the `all` image.
ARG PYTHON_VERSION=3.12

FROM python:${PYTHON_VERSION}-slim-bookworm AS build
ARG SERVICE_EXTRA=all
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1
RUN python -m venv /opt/aietl
WORKDIR /src
COPY pyproject.toml README.md ./
COPY shared ./shared
COPY services ./services
COPY aietl ./aietl
# A current pip first: pip < 23.3 does not normalise extra names (PEP 685) and would silently install
# nothing for `vector_sink` (published as `vector-sink`).
RUN /opt/aietl/bin/pip install --upgrade pip \
 && /opt/aietl/bin/pip install ".[${SERVICE_EXTRA}]"

FROM python:${PYTHON_VERSION}-slim-bookworm AS runtime
ARG SERVICE_EXTRA=all
LABEL org.opencontainers.image.title="aietl-${SERVICE_EXTRA}" \
      org.opencontainers.image.description="AI-ETL process image (extra: ${SERVICE_EXTRA})" \
      org.opencontainers.image.licenses="Apache-2.0"
RUN groupadd --system --gid 10001 aietl \
 && useradd --system --uid 10001 --gid 10001 --home-dir /var/lib/aietl --shell /usr/sbin/nologin aietl \
 && mkdir -p /var/lib/aietl \
 && chown 10001:10001 /var/lib/aietl
COPY --from=build /opt/aietl /opt/aietl
# AIETL_DATA_DIR is a volume in compose and an emptyDir on Kubernetes (the root filesystem is read-only there);
# matplotlib and numba (predict) need writable cache directories; the embedding model ships in the package,
# so the Hugging Face hub is never contacted.
ENV PATH=/opt/aietl/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    MPLCONFIGDIR=/tmp/matplotlib \
    NUMBA_CACHE_DIR=/tmp/numba \
    HF_HUB_OFFLINE=1 \
    AIETL_DATA_DIR=/var/lib/aietl \
    AIETL_LOG_FORMAT=json
USER 10001:10001
WORKDIR /var/lib/aietl
EXPOSE 8000 9100
# A worker answers /health on AIETL_METRICS_PORT, the gateway on AIETL_GATEWAY_PORT: healthy if either does.
HEALTHCHECK --interval=15s --timeout=5s --start-period=30s --retries=3 \
  CMD ["python", "-c", "import os, sys, urllib.request\nfor port in (os.environ.get('AIETL_METRICS_PORT', '9100'), os.environ.get('AIETL_GATEWAY_PORT', '8000')):\n    try:\n        urllib.request.urlopen(f'http://127.0.0.1:{port}/health', timeout=3)\n        sys.exit(0)\n    except OSError:\n        pass\nsys.exit(1)"]
ENTRYPOINT ["aietl"]
CMD ["--help"]
