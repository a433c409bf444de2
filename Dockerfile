FROM python:3.11-slim
WORKDIR /app
COPY pyproject.toml README.md ./
COPY hub hub
COPY web web
COPY telephony telephony
COPY storage storage
RUN pip install --no-cache-dir .
USER nobody
EXPOSE 8000
CMD ["lineup", "serve"]
