# syntax=docker/dockerfile:1
# The operator image: `llm-failover run` as a non-root user, with the runtime dependencies only
# (never the `test` or `demo` extras). Built with BuildKit (the default builder of Docker 23+):
#   docker build -t ghcr.io/llm-failover/llm-failover:0.1.0 .
# For reproducible builds, pin the base images by digest as well (python:3.11-slim@sha256:...).

# Stage 1: wheels for the project and its runtime dependencies (pyproject.toml `dependencies`).
FROM python:3.11-slim AS build
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /src
COPY pyproject.toml README.md ./
COPY operator ./operator
# `pip wheel .` builds this project's wheel and the wheels of its runtime requirements; extras are
# only ever added by name (`.[test]`), which this file never does.
RUN pip wheel --no-cache-dir --wheel-dir /wheels .

# Stage 2: the runtime. Installs from the wheels only (no index, no compiler, no cache).
FROM python:3.11-slim
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1
# The wheels are bind-mounted from the build stage for this one step, so they leave no layer behind.
RUN --mount=type=bind,from=build,source=/wheels,target=/wheels \
    pip install --no-cache-dir --no-index /wheels/*.whl \
    && groupadd --gid 65532 nonroot \
    && useradd --no-log-init --uid 65532 --gid 65532 --home-dir /nonexistent --no-create-home \
        --shell /usr/sbin/nologin nonroot
# The same numeric user as deploy/base/deployment.yaml (runAsUser: 65532), so runAsNonRoot can verify it.
USER 65532:65532
WORKDIR /tmp
# 8080: Prometheus metrics (/metrics); 8081: liveness (/healthz).
EXPOSE 8080 8081
# Kubernetes probes /healthz itself (deploy/base/deployment.yaml); no Docker HEALTHCHECK.
HEALTHCHECK NONE
ENTRYPOINT ["llm-failover"]
CMD ["run"]
