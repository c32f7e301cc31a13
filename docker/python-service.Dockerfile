# One image recipe for the three services; SERVICE picks the command (see compose.yaml).
# Build from the repository root: docker build -f docker/python-service.Dockerfile --build-arg SERVICE=intake .
#
# Dependencies come from uv.lock only: exported with their hashes and installed with
# --require-hashes and --no-deps, so nothing is resolved at build time and a changed file on the
# index fails the build. uv itself is pinned with hashes (tools/uv-requirements.txt).
FROM python:3.11-slim-bookworm AS build
WORKDIR /src
COPY tools/uv-requirements.txt tools/
RUN pip install --no-cache-dir --require-hashes --no-deps --only-binary :all: -r tools/uv-requirements.txt
COPY pyproject.toml uv.lock ./
# The runtime set (no [dev] extra), without the project itself: its source is copied below.
RUN uv export --frozen --no-emit-project --format requirements-txt -o /tmp/requirements.txt \
 && python -m venv /opt/shinsei \
 && /opt/shinsei/bin/pip install --no-cache-dir --require-hashes --no-deps --only-binary :all: \
      -r /tmp/requirements.txt

FROM python:3.11-slim-bookworm
ARG SERVICE
# xmlsec needs libxmlsec1's runtime libraries only through its manylinux wheel: nothing from apt.
RUN groupadd --system --gid 10001 shinsei \
 && useradd --system --uid 10001 --gid shinsei --home-dir /nonexistent --shell /usr/sbin/nologin shinsei
COPY --from=build /opt/shinsei /opt/shinsei
COPY signature /opt/shinsei/app/signature
COPY status /opt/shinsei/app/status
COPY handover /opt/shinsei/app/handover
COPY malware /opt/shinsei/app/malware
COPY intake /opt/shinsei/app/intake
COPY dmz_relay /opt/shinsei/app/dmz_relay
COPY portal_sim /opt/shinsei/app/portal_sim
ENV PATH=/opt/shinsei/bin:$PATH \
    PYTHONPATH=/opt/shinsei/app \
    PYTHONDONTWRITEBYTECODE=1 \
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
