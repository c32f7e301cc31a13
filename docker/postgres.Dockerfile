# PostgreSQL 15 from Debian, FROM the Debian-made base (no image registry). The cluster is created
# on the first start by docker/postgres/entrypoint.sh with the password from a secret file.
ARG BASE_IMAGE=shinsei-base:bookworm
FROM ${BASE_IMAGE}
# A fixed uid so that the data volume and the secret file can be owned by it; no "main" cluster in
# the image (the entrypoint makes one in the volume).
# hadolint ignore=DL3008
RUN groupadd --system --gid 10002 postgres \
 && useradd --system --uid 10002 --gid postgres --home-dir /var/lib/postgresql --shell /bin/sh postgres \
 && mkdir -p /etc/postgresql-common \
 && echo 'create_main_cluster = false' > /etc/postgresql-common/createcluster.conf \
 && apt-get update \
 && apt-get install -y --no-install-recommends postgresql-15 \
 && rm -rf /var/lib/apt/lists/* \
 && install -d -o 10002 -g 10002 -m 0700 /var/lib/postgresql/data \
 && install -d -o 10002 -g 10002 -m 0775 /run/postgresql
COPY docker/postgres/entrypoint.sh /usr/local/bin/shinsei-postgres
ENV PGDATA=/var/lib/postgresql/data
USER 10002:10002
EXPOSE 5432
ENTRYPOINT ["/usr/local/bin/shinsei-postgres"]
