# The console's image: web (gunicorn with uvicorn workers), Celery worker and beat all run
# from it.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    VAR_DIR=/var/lib/agentops \
    STATIC_ROOT=/app/staticfiles \
    BIND=0.0.0.0:8000 \
    WEB_CONCURRENCY=4

WORKDIR /app
COPY pyproject.toml README.md ./
COPY agentops_site ./agentops_site
COPY traces ./traces
COPY rollouts ./rollouts
COPY budgets ./budgets
COPY controls ./controls
COPY console ./console
COPY sdk ./sdk
# The SDK (sdk/, its own package) drives the governed demo agents of `manage.py up`.
RUN pip install ".[clickhouse]" "./sdk[validate]"
COPY manage.py ./
COPY templates ./templates
COPY static ./static
# Static files are collected at build time; a throwaway key is enough for that.
RUN AGENTOPS_ENV=production SECRET_KEY=collectstatic-only python manage.py collectstatic --noinput -v0

RUN useradd --system --home /app agentops && mkdir -p $VAR_DIR && chown agentops $VAR_DIR
USER agentops
# 8000: the web server (pages, API, OTLP/HTTP); 4317: `manage.py otlp_grpc`.
EXPOSE 8000 4317
# Slow and idle clients hold no worker: see agentops_site/server.py.
CMD ["gunicorn", "-c", "python:agentops_site.gunicorn_conf", "agentops_site.asgi:application"]
