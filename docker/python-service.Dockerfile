# One image recipe for the three services; SERVICE picks the command (see compose.yaml).
# Build from the repository root: docker build -f docker/python-service.Dockerfile --build-arg SERVICE=intake .
FROM python:3.11-slim-bookworm AS build
WORKDIR /src
COPY pyproject.toml README.md ./
COPY signature ./signature
COPY status ./status
COPY intake ./intake
COPY dmz_relay ./dmz_relay
COPY portal_sim ./portal_sim
RUN pip wheel --no-cache-dir --wheel-dir /wheels .

FROM python:3.11-slim-bookworm
ARG SERVICE
# xmlsec needs libxmlsec1's runtime libraries only through its manylinux wheel: nothing from apt.
RUN groupadd --system --gid 10001 shinsei \
 && useradd --system --uid 10001 --gid shinsei --home-dir /nonexistent --shell /usr/sbin/nologin shinsei
COPY --from=build /wheels /wheels
# Versions are pinned by the wheels built above from this repository (no index is consulted).
# hadolint ignore=DL3013
RUN pip install --no-cache-dir --no-index --find-links /wheels shinsei && rm -rf /wheels
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    TMPDIR=/tmp/shinsei \
    SERVICE=${SERVICE}
USER 10001:10001
WORKDIR /var/lib/shinsei
EXPOSE 8443
HEALTHCHECK --interval=30s --timeout=5s --retries=3 \
  CMD ["python", "-c", "import os,sys,urllib.request; urllib.request.urlopen(os.environ.get('HEALTH_URL','http://127.0.0.1:8443/healthz'), timeout=4); sys.exit(0)"]
ENTRYPOINT ["python", "-m"]
CMD ["intake", "serve", "--host", "0.0.0.0", "--port", "8443"]
