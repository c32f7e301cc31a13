# One image for the Python services (portal_sim, dmz_relay, intake); the compose file picks the
# command. Build from the repository root:
#   docker build --network host -f docker/python-service.Dockerfile --build-arg BASE_IMAGE=shinsei-base:bookworm .
#
# BASE_IMAGE is made from Debian packages by docker/build-base.sh (no image registry). Dependencies
# come from uv.lock only: exported with their hashes and installed with --require-hashes and
# --no-deps, so nothing is resolved at build time and a changed file on the index fails the build.
# uv itself is pinned with hashes (tools/uv-requirements.txt).
ARG BASE_IMAGE=shinsei-base:bookworm

FROM ${BASE_IMAGE} AS build
WORKDIR /src
# wheelhouse/: the locked wheels, downloaded with their hashes checked on a machine that reaches the
# package index (`make wheelhouse`); the build itself needs no index at all.
COPY wheelhouse/ /wheels/
COPY tools/uv-requirements.txt tools/
RUN python3 -m venv /opt/uv \
 && /opt/uv/bin/pip install --no-cache-dir --no-index --find-links /wheels --require-hashes --no-deps \
      --only-binary :all: -r tools/uv-requirements.txt
COPY pyproject.toml uv.lock ./
# The runtime set (no [dev] extra), without the project itself: its source is copied below.
RUN /opt/uv/bin/uv export --frozen --no-emit-project --format requirements-txt -o /tmp/requirements.txt \
 && python3 -m venv /opt/shinsei \
 && /opt/shinsei/bin/pip install --no-cache-dir --no-index --find-links /wheels --require-hashes --no-deps \
      --only-binary :all: -r /tmp/requirements.txt

FROM ${BASE_IMAGE}
# pg_dump / pg_restore for `intake backup` and `intake restore` (PostgreSQL 15, as the database).
# hadolint ignore=DL3008
RUN apt-get update \
 && apt-get install -y --no-install-recommends postgresql-client-15 \
 && rm -rf /var/lib/apt/lists/* \
 && groupadd --system --gid 10001 shinsei \
 && useradd --system --uid 10001 --gid shinsei --home-dir /nonexistent --shell /usr/sbin/nologin shinsei \
 && install -d -o 10001 -g 10001 -m 0700 /var/lib/shinsei /var/lib/shinsei/backup
COPY --from=build /opt/shinsei /opt/shinsei
COPY signature /opt/shinsei/app/signature
COPY status /opt/shinsei/app/status
COPY handover /opt/shinsei/app/handover
COPY malware /opt/shinsei/app/malware
COPY tlsreload /opt/shinsei/app/tlsreload
COPY probes /opt/shinsei/app/probes
COPY intake /opt/shinsei/app/intake
COPY dmz_relay /opt/shinsei/app/dmz_relay
COPY portal_sim /opt/shinsei/app/portal_sim
COPY pyproject.toml /opt/shinsei/app/pyproject.toml
# Bytecode compiled once, here (pip compiled the dependencies' when it installed them): the services
# run with PYTHONDONTWRITEBYTECODE=1 as a user who cannot write the code, so without it every start
# would compile every module again (~0.4 s of CPU per relay start, issue 19).
RUN python3 -m compileall -q /opt/shinsei/app
ENV PATH=/opt/shinsei/bin:$PATH \
    PYTHONPATH=/opt/shinsei/app \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    TMPDIR=/tmp
USER 10001:10001
WORKDIR /var/lib/shinsei
# Each service's health check is in compose.yaml (it knows the service's ops port).
ENTRYPOINT ["python", "-m"]
CMD ["intake", "--help"]
