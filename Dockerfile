FROM python:3.11-slim
WORKDIR /app
COPY pyproject.toml README.md ./
COPY crm_core crm_core
COPY channels channels
COPY contact_center contact_center
COPY config config
RUN pip install --no-cache-dir -e . && useradd --system --home /app contact && mkdir -p var && chown contact var
USER contact
ENV HOST=0.0.0.0 PORT=8080
EXPOSE 8080
CMD ["contact-center", "serve"]
