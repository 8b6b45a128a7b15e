# syntax=docker/dockerfile:1.7
# One slim image per Python app: feeder, producer, dataprep (the data Job, with the bundled
# sample). Built from the repository root by `make images`:
#   docker build -f images/python.Dockerfile --build-arg PACKAGE=moaa-feeder -t moaa-feeder:0.1.0 .
#   docker build -f images/python.Dockerfile --build-arg PACKAGE=moaa-dataprep --target dataprep ...
# Only PACKAGE and its locked dependencies are installed (uv sync --package, --frozen: exactly
# uv.lock), in a build stage; the runtime stage gets the virtualenv and runs as uid 10001.
ARG PYTHON_IMAGE=docker.io/library/python:3.12.12-slim-bookworm
ARG UV_IMAGE=ghcr.io/astral-sh/uv:0.13.8

FROM ${UV_IMAGE} AS uv

FROM ${PYTHON_IMAGE} AS build
ARG PACKAGE
COPY --from=uv /uv /usr/local/bin/uv
ENV UV_COMPILE_BYTECODE=1 UV_LINK_MODE=copy UV_PYTHON_DOWNLOADS=never \
    UV_PYTHON=/usr/local/bin/python3 UV_PROJECT_ENVIRONMENT=/opt/moaa/venv
WORKDIR /src
# Dependencies first (a layer reused until uv.lock or a pyproject changes), then our code.
COPY pyproject.toml uv.lock ./
COPY apps/common/pyproject.toml apps/common/README.md apps/common/
COPY apps/localstack/pyproject.toml apps/localstack/README.md apps/localstack/
COPY apps/dataprep/pyproject.toml apps/dataprep/README.md apps/dataprep/
COPY apps/feeder/pyproject.toml apps/feeder/README.md apps/feeder/
COPY apps/producer/pyproject.toml apps/producer/README.md apps/producer/
COPY apps/streaming/pyproject.toml apps/streaming/README.md apps/streaming/
COPY apps/dashboard/pyproject.toml apps/dashboard/README.md apps/dashboard/
RUN --mount=type=cache,target=/root/.cache/uv \
    test -n "${PACKAGE}" && uv sync --frozen --no-dev --no-install-workspace --package "${PACKAGE}"
COPY apps/ apps/
RUN --mount=type=cache,target=/root/.cache/uv \
    uv sync --frozen --no-dev --no-editable --package "${PACKAGE}"

FROM ${PYTHON_IMAGE} AS app
RUN groupadd --system --gid 10001 moaa \
 && useradd --system --uid 10001 --gid moaa --no-create-home --shell /usr/sbin/nologin moaa
COPY --from=build /opt/moaa/venv /opt/moaa/venv
# Logs are JSON lines on stdout; state (if any) under /tmp, an emptyDir in the chart.
ENV PATH=/opt/moaa/venv/bin:$PATH PYTHONUNBUFFERED=1 PYTHONDONTWRITEBYTECODE=1 HOME=/tmp \
    MOAA_LOG_FORMAT=json MOAA_STATE_DIR=/tmp/moaa
USER 10001:10001
WORKDIR /tmp
# `moaa <command>`, exactly the local stack's entry point: the chart passes "feeder",
# "producer", "prepare", ... as arguments.
ENTRYPOINT ["moaa"]
CMD ["--help"]

# The data Job's image: moaa-dataprep plus the bundled real sample (Newark + JFK, 2013).
FROM app AS dataprep
COPY --chown=0:0 data/sample/2013/ /opt/moaa/sample/2013/
