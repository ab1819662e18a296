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
# /mqtt: a named volume mounted there first takes this owner (uid 1000), which Mosquitto runs as in
# docker-compose.yml, so the password file packproof writes (0600) is one Mosquitto can read.
RUN pip install --no-cache-dir . && useradd --create-home --uid 1000 packproof \
    && mkdir /data /mqtt && chown packproof /data /mqtt
USER packproof
ENV PACKPROOF_DATA_DIR=/data
VOLUME ["/data"]
CMD ["packproof", "--help"]
