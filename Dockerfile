FROM python:3.11-slim
WORKDIR /app
COPY pyproject.toml README.md constraints.txt ./
COPY heimdall ./heimdall
COPY models ./models
RUN pip install --no-cache-dir -c constraints.txt . && useradd --create-home heimdall
USER heimdall
ENV HEIMDALL_MODELS_DIR=/app/models
CMD ["heimdall", "worker"]
