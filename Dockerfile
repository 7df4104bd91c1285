# notifier's container image.
#
#   docker build -t notifier:dev .
#   docker run --rm --read-only --tmpfs /tmp -p 8080:8080 \
#       -e NOTIFIER_KAFKA_BOOTSTRAP_SERVERS=kafka:9092 notifier:dev          # = notifier run
#   docker run --rm notifier:dev config          # any other subcommand: migrate, topics, ...
#
# Configuration is by environment alone (NOTIFIER_<SECTION>_<NAME>, see README.md); secrets
# come from the environment or files in /run/secrets/notifier. No YAML file is shipped: to use
# one, mount it at /app/config/notifier.yaml or point NOTIFIER_CONFIG_FILE at it.
# Runs as uid/gid 10001 and writes nothing outside /tmp, so the root filesystem can be
# read-only (mount an emptyDir or tmpfs at /tmp).
# No container engine in CI: scripts/check-image lints this file with hadolint and runs the
# builder's install (scripts/install-into-venv) and the CLI in a temporary venv.

# Exact version tag. In production also pin the digest, so a re-pushed tag can't change what
# is built: python:3.11.14-slim-bookworm@sha256:<digest> (from `docker buildx imagetools
# inspect python:3.11.14-slim-bookworm`), bumped by Renovate/Dependabot.
# The Python minor version must match constraints.txt (locked for 3.11; check-image checks).
ARG PYTHON_IMAGE=python:3.11.14-slim-bookworm

# --- builder: the runtime virtualenv at /opt/venv --------------------------------------------
FROM ${PYTHON_IMAGE} AS builder
# Wheels only (see the script), so no compiler is installed here either.
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_ROOT_USER_ACTION=ignore
WORKDIR /src
# Only what building the package needs (scripts/check-image copies the same list from here).
COPY constraints.txt pyproject.toml README.md ./
COPY scripts/install-into-venv scripts/
COPY src/ src/
RUN bash scripts/install-into-venv /opt/venv

# --- runtime ---------------------------------------------------------------------------------
FROM ${PYTHON_IMAGE}

ARG PYTHON_IMAGE
ARG VERSION=0.1.0
ARG REVISION=unknown
LABEL org.opencontainers.image.title="notifier" \
      org.opencontainers.image.description="Delivery service for two-way school Conversations: SMS, email and app inbox, in each person's language." \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${REVISION}" \
      org.opencontainers.image.base.name="${PYTHON_IMAGE}"

# A system user with no login shell and no home directory.
RUN groupadd --system --gid 10001 notifier \
    && useradd --system --uid 10001 --gid 10001 --no-create-home --home-dir /nonexistent \
        --shell /usr/sbin/nologin notifier

# Same base image, so the venv's interpreter symlinks resolve; owned by root, read-only to
# the service.
COPY --from=builder /opt/venv /opt/venv

# PYTHONDONTWRITEBYTECODE: the venv's .pyc files were compiled at install; nothing more is
# written. The SQLite default lives in /tmp (the only writable path); production sets
# NOTIFIER_DATABASE_URL=postgresql+asyncpg://... instead.
ENV PATH="/opt/venv/bin:${PATH}" \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    NOTIFIER_HTTP_HOST=0.0.0.0 \
    NOTIFIER_HTTP_PORT=8080 \
    NOTIFIER_DATABASE_URL=sqlite+aiosqlite:////tmp/notifier.db

# Relative paths resolve here: config/notifier.yaml (absent unless mounted).
WORKDIR /app
USER 10001:10001
EXPOSE 8080
# No HEALTHCHECK: Kubernetes probes GET /healthz (liveness) and /readyz (readiness) on 8080.
ENTRYPOINT ["notifier"]
CMD ["run"]
