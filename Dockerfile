# One image for the three services; the command picks the service (see docker-compose.yml).
FROM python:3.11.10-slim-bookworm AS build
WORKDIR /app
COPY requirements.lock pyproject.toml ./
RUN python -m venv /venv && /venv/bin/pip install --no-cache-dir -r requirements.lock
COPY . .
RUN /venv/bin/pip install --no-cache-dir --no-deps .

FROM python:3.11.10-slim-bookworm
RUN useradd --create-home --uid 10001 app
COPY --from=build /venv /venv
COPY --from=build /app/db /app/db
WORKDIR /app
USER app
ENV PATH=/venv/bin:$PATH PYTHONUNBUFFERED=1
CMD ["python", "-m", "gateway"]
