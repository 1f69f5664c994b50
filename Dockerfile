# Production image: gunicorn via `authz-server serve`, configuration from the environment.
FROM python:3.11-slim
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1
WORKDIR /app
COPY pyproject.toml README.md alembic.ini ./
COPY authz_server ./authz_server
COPY migrations ./migrations
COPY templates ./templates
RUN pip install -e . && useradd --system --uid 10001 authz
USER authz
ENV AUTHZ_ENV=production
EXPOSE 8000
HEALTHCHECK --interval=30s --timeout=3s CMD python -c "import urllib.request;urllib.request.urlopen('http://127.0.0.1:8000/healthz')"
CMD ["authz-server", "serve", "--host", "0.0.0.0", "--port", "8000"]
