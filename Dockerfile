# leadroute: the service, run against PostgreSQL and Redis given by
#   LEADROUTE_DATABASE_URL=postgresql://user:password@db:5432/leadroute
#   LEADROUTE_REDIS_URL=redis://redis:6379/0
# and the key webhook secrets are encrypted with (required: `leadroute secrets generate-key`)
#   LEADROUTE_SECRET_KEY=<32 url-safe base64 bytes, from a secret store>
# docker build -t leadroute . && docker run -p 8000:8000 -e LEADROUTE_DATABASE_URL=... -e LEADROUTE_REDIS_URL=... \
#   -e LEADROUTE_SECRET_KEY=... leadroute
#
# What is in it: the runtime dependencies pinned with hashes in requirements.lock (scripts/lock
# regenerates it from pyproject.toml), the package, the rules, the inbound mapping files and the
# example owners. What is not: the dev tools, and the embedded PostgreSQL/Valkey of the local
# default. With no URLs set the container refuses to start (LEADROUTE_ALLOW_EMBEDDED=false) rather
# than keep its data in a database that vanishes with it. For a self-contained demo image, ask for them explicitly:
#   docker build --build-arg EXTRAS=embedded -t leadroute-demo .
#   docker run -e LEADROUTE_ALLOW_EMBEDDED=true -e LEADROUTE_SEED_DEMO=true -p 8000:8000 leadroute-demo

# --- builder: a virtual environment at /opt/venv -------------------------------------------------
FROM python:3.11-slim AS builder

ARG EXTRAS=""
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1 \
    PYTHONDONTWRITEBYTECODE=1
RUN python -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH
WORKDIR /build

# Dependencies in their own layer, rebuilt only when the lock changes, not with every edit to
# the code; --require-hashes: exactly the files that were locked, or the build fails.
COPY requirements.lock ./
RUN pip install --require-hashes --no-deps -r requirements.lock

# Then the package itself, without touching the dependencies installed above (an extra, when
# asked for, is resolved now: it is not in the lock).
COPY pyproject.toml README.md ./
COPY src ./src
RUN pip install --no-deps . \
    && if [ -n "$EXTRAS" ]; then pip install ".[$EXTRAS]"; fi

# --- runtime ------------------------------------------------------------------------------------
FROM python:3.11-slim AS runtime

# A numeric user: Kubernetes' runAsNonRoot can check it without reading /etc/passwd.
ARG UID=10001
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    LEADROUTE_HOST=0.0.0.0 \
    LEADROUTE_DATA_DIR=/data \
    LEADROUTE_ALLOW_EMBEDDED=false \
    LEADROUTE_SEED_DEMO=false

RUN groupadd --system --gid "$UID" leadroute \
    && useradd --system --uid "$UID" --gid "$UID" --home-dir /app --no-create-home \
        --shell /usr/sbin/nologin leadroute \
    && mkdir -p /app /data \
    && chown "$UID:$UID" /data

COPY --from=builder /opt/venv /opt/venv
WORKDIR /app
COPY rules/ ./rules/
COPY mappings/ ./mappings/
COPY examples/ ./examples/

USER ${UID}:${UID}
EXPOSE 8000
# /health/live: the process serves. Orchestrators should route by /health/ready (503 while
# PostgreSQL or Redis is down) and restart by /health/live. A LEADROUTE_PORT that is not a number
# is Kubernetes' tcp://... service link, not the port: the default is used then, as by the CLI.
HEALTHCHECK --interval=15s --timeout=3s --start-period=20s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request as r; p = os.environ.get('LEADROUTE_PORT', ''); r.urlopen('http://127.0.0.1:%s/health/live' % (p if p.isdigit() else '8000'), timeout=2)"]
# SIGTERM drains (in-flight requests finish within LEADROUTE_DRAIN_SECONDS, default 20 s: below
# Kubernetes' 30 s grace period). exec form: leadroute is PID 1 and receives the signal itself.
STOPSIGNAL SIGTERM
CMD ["leadroute", "serve"]
