# leadroute: the service, run against PostgreSQL and Redis given by
#   LEADROUTE_DATABASE_URL=postgresql://user:password@db:5432/leadroute
#   LEADROUTE_REDIS_URL=redis://redis:6379/0
# docker build -t leadroute . && docker run -p 8000:8000 -e LEADROUTE_DATABASE_URL=... -e LEADROUTE_REDIS_URL=... leadroute

# --- builder: a virtual environment at /opt/venv -------------------------------------------------
FROM python:3.11-slim AS builder

ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1 \
    PYTHONDONTWRITEBYTECODE=1
RUN python -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH
WORKDIR /build

# Dependencies in their own layer, rebuilt only when pyproject.toml changes, not with every edit
# to the code.
COPY pyproject.toml ./
RUN python -c "import tomllib; print('\n'.join(tomllib.load(open('pyproject.toml', 'rb'))['project']['dependencies']))" \
        > requirements.txt \
    && pip install -r requirements.txt

# Then the package itself, without touching the dependencies installed above.
COPY README.md ./
COPY src ./src
RUN pip install --no-deps .

# --- runtime ------------------------------------------------------------------------------------
FROM python:3.11-slim AS runtime

ENV PATH=/opt/venv/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    LEADROUTE_HOST=0.0.0.0 \
    LEADROUTE_DATA_DIR=/data

RUN groupadd --system leadroute \
    && useradd --system --gid leadroute --home-dir /app --no-create-home --shell /usr/sbin/nologin leadroute \
    && mkdir -p /app /data \
    && chown leadroute:leadroute /data

COPY --from=builder /opt/venv /opt/venv
WORKDIR /app
COPY rules/ ./rules/
COPY examples/ ./examples/

USER leadroute
EXPOSE 8000
HEALTHCHECK --interval=15s --timeout=3s --start-period=20s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request as r; r.urlopen('http://127.0.0.1:%s/health/live' % os.environ.get('LEADROUTE_PORT', '8000'), timeout=2)"]
CMD ["leadroute", "serve"]
