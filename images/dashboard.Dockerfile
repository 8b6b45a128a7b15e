# syntax=docker/dockerfile:1.7
# The MOAA website (moaa-dashboard). Its front-end assets come from npm at build time
# (apps/dashboard/web/build.sh: `npm ci` from the committed lockfile, then copies the browser
# builds into static/vendor/); the running image has no node.
#   docker build -f images/dashboard.Dockerfile -t moaa-dashboard:0.1.0 .
ARG NODE_IMAGE=docker.io/library/node:22.21.1-bookworm-slim
ARG PYTHON_IMAGE=docker.io/library/python:3.12.12-slim-bookworm
ARG UV_IMAGE=ghcr.io/astral-sh/uv:0.13.8

FROM ${UV_IMAGE} AS uv

FROM ${NODE_IMAGE} AS assets
WORKDIR /src
COPY apps/dashboard/web/package.json apps/dashboard/web/package-lock.json apps/dashboard/web/build.sh apps/dashboard/web/
RUN bash apps/dashboard/web/build.sh

FROM ${PYTHON_IMAGE} AS build
COPY --from=uv /uv /usr/local/bin/uv
ENV UV_COMPILE_BYTECODE=1 UV_LINK_MODE=copy UV_PYTHON_DOWNLOADS=never \
    UV_PYTHON=/usr/local/bin/python3 UV_PROJECT_ENVIRONMENT=/opt/moaa/venv
WORKDIR /src
COPY pyproject.toml uv.lock ./
COPY apps/common/pyproject.toml apps/common/README.md apps/common/
COPY apps/localstack/pyproject.toml apps/localstack/README.md apps/localstack/
COPY apps/dataprep/pyproject.toml apps/dataprep/README.md apps/dataprep/
COPY apps/feeder/pyproject.toml apps/feeder/README.md apps/feeder/
COPY apps/producer/pyproject.toml apps/producer/README.md apps/producer/
COPY apps/streaming/pyproject.toml apps/streaming/README.md apps/streaming/
COPY apps/dashboard/pyproject.toml apps/dashboard/README.md apps/dashboard/
RUN --mount=type=cache,target=/root/.cache/uv \
    uv sync --frozen --no-dev --no-install-workspace --package moaa-dashboard
COPY apps/ apps/
COPY --from=assets /src/apps/dashboard/src/moaa/dashboard/static/vendor/ apps/dashboard/src/moaa/dashboard/static/vendor/
RUN --mount=type=cache,target=/root/.cache/uv \
    uv sync --frozen --no-dev --no-editable --package moaa-dashboard

FROM ${PYTHON_IMAGE}
RUN groupadd --system --gid 10001 moaa \
 && useradd --system --uid 10001 --gid moaa --no-create-home --shell /usr/sbin/nologin moaa
COPY --from=build /opt/moaa/venv /opt/moaa/venv
ENV PATH=/opt/moaa/venv/bin:$PATH PYTHONUNBUFFERED=1 PYTHONDONTWRITEBYTECODE=1 HOME=/tmp \
    MOAA_LOG_FORMAT=json MOAA_STATE_DIR=/tmp/moaa MOAA_DASHBOARD_HOST=0.0.0.0
USER 10001:10001
WORKDIR /tmp
EXPOSE 8080
ENTRYPOINT ["moaa"]
CMD ["dashboard"]
