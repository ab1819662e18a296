# One image for every packproof service; docker-compose.yml picks the command.
#
# Reproducible: the base image is a fixed release, and every Python package comes from
# requirements.lock (exact versions, each download checked against its hashes), which
# `make lock` makes from pyproject.toml's ranges: pyproject.toml says what packproof accepts,
# the lock what is installed, here and by `make install`.
# Pin the digest too where a registry is reachable (a tag can be pushed again, a digest
# cannot): `docker buildx imagetools inspect python:3.11.14-slim-bookworm`, then
# FROM python:3.11.14-slim-bookworm@sha256:<digest>, in both stages.
ARG PYTHON_IMAGE=python:3.11.14-slim-bookworm

# Stage 1: packproof itself as a wheel (--no-deps: its dependencies come from the lock below).
# The build tools it fetches (setuptools, per pyproject.toml) stay in this stage.
FROM ${PYTHON_IMAGE} AS wheel
WORKDIR /src
COPY pyproject.toml README.md ./
COPY packproof ./packproof
COPY edge ./edge
COPY broker ./broker
COPY anchor ./anchor
COPY api ./api
COPY simulators ./simulators
COPY app ./app
RUN pip wheel --no-cache-dir --no-deps --wheel-dir /wheels .

# Stage 2: the locked dependencies, then the wheel; no source tree, no build leftovers.
FROM ${PYTHON_IMAGE}
ENV PYTHONDONTWRITEBYTECODE=1 PIP_DISABLE_PIP_VERSION_CHECK=1 PACKPROOF_DATA_DIR=/data
COPY requirements.lock /tmp/requirements.lock
RUN pip install --no-cache-dir --require-hashes --no-deps -r /tmp/requirements.lock && rm /tmp/requirements.lock
RUN --mount=type=bind,from=wheel,source=/wheels,target=/wheels \
    pip install --no-cache-dir --no-deps --no-index /wheels/packproof-*.whl
# Users: packproof (uid 1000) runs every service but the sealer; Mosquitto runs as 1000 too
# (docker-compose.yml), so the 0600 password file packproof writes in /mqtt is one it can read.
# The sealer runs as sealer (uid 1001), the only user who can read /ledger-key (0700): the
# ledger's private key. Both belong to the group intake (gid 1002), and only they: the intake key
# every writer of the store shares (`packproof intake-key --group intake`) is packproof's, mode
# 0640, in /intake-key (0750). A named volume first mounted on one of these directories takes its
# owner and mode.
RUN groupadd --gid 1002 intake \
    && useradd --create-home --groups intake --uid 1000 packproof \
    && useradd --create-home --groups intake --uid 1001 sealer \
    && mkdir /data /mqtt /ledger /ledger-key /intake-key \
    && chown packproof /data /mqtt && chown sealer /ledger /ledger-key && chmod 0700 /ledger-key \
    && chown packproof:intake /intake-key && chmod 0750 /intake-key
USER packproof
WORKDIR /data
CMD ["packproof", "--help"]
