# jobplatform: one image for web, worker and scheduler (see compose.yaml).
FROM python:3.11-slim
ENV PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1
WORKDIR /app
COPY pyproject.toml README.md ./
COPY jobplatform ./jobplatform
COPY queues ./queues
COPY scheduling ./scheduling
COPY notifications ./notifications
COPY devices ./devices
COPY templates ./templates
COPY manage.py ./
RUN pip install . && useradd --system jobplatform \
    && DEBUG=1 python manage.py collectstatic --no-input
USER jobplatform
EXPOSE 8000
CMD ["gunicorn", "jobplatform.wsgi", "--workers", "4", "--bind", "0.0.0.0:8000"]
