# One image for every packproof service; docker-compose.yml picks the command.
FROM python:3.11-slim
WORKDIR /app
COPY pyproject.toml README.md ./
COPY packproof ./packproof
COPY edge ./edge
COPY broker ./broker
COPY anchor ./anchor
COPY api ./api
COPY simulators ./simulators
RUN pip install --no-cache-dir . && useradd --create-home packproof && mkdir /data && chown packproof /data
USER packproof
VOLUME ["/data"]
CMD ["packproof", "--help"]
