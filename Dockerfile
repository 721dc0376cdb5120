# syntax=docker/dockerfile:1
# One image for every iotcloud process (api, gateway, projector, broker-auth, signer, init); the
# command chooses the process. Two stages: the build stage installs the hash-pinned lock into a
# virtual environment; the runtime stage copies only that environment and the sources, and runs as
# an unprivileged user.
ARG PYTHON_IMAGE=python:3.11.10-slim-bookworm

FROM ${PYTHON_IMAGE} AS build
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_CACHE_DIR=1
WORKDIR /src
RUN python -m venv /opt/iotcloud
COPY requirements.lock pyproject.toml ./
# Every package is checked against its hash in requirements.lock: a substituted wheel fails the build.
RUN /opt/iotcloud/bin/pip install --no-cache-dir --require-hashes -r requirements.lock
COPY commands ./commands
COPY gateways ./gateways
COPY iotcloud ./iotcloud
COPY projections ./projections
COPY queries ./queries
# Hook for the web app (branch h/webapp): when the API serves webapp/ at /, copy its built files here,
# e.g. `COPY webapp ./webapp`, and keep them out of .dockerignore.
RUN /opt/iotcloud/bin/pip install --no-cache-dir --no-deps . \
    && /opt/iotcloud/bin/pip check

FROM ${PYTHON_IMAGE} AS runtime
# uid/gid 999: the rabbitmq image's user, so the broker reads the configuration and keys that the
# init service wrote with mode 0600 into the shared volume.
RUN groupadd --system --gid 999 iotcloud \
    && useradd --system --uid 999 --gid iotcloud --home-dir /var/lib/iotcloud --shell /usr/sbin/nologin iotcloud \
    && mkdir -p /var/lib/iotcloud /run/iotcloud-signer \
    && chown iotcloud:iotcloud /var/lib/iotcloud /run/iotcloud-signer \
    && chmod 0700 /var/lib/iotcloud /run/iotcloud-signer
COPY --from=build /opt/iotcloud /opt/iotcloud
ENV PATH=/opt/iotcloud/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    IOTCLOUD_STATE_DIR=/var/lib/iotcloud
USER 999:999
WORKDIR /var/lib/iotcloud
EXPOSE 8443 8000
STOPSIGNAL SIGTERM
ENTRYPOINT ["iotcloud"]
CMD ["run"]
