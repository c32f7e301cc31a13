# clamd from Debian, FROM the Debian-made base. No signature database in the image: the ward's
# database (from its freshclam mirror) is mounted read-only at /var/lib/clamav.
ARG BASE_IMAGE=shinsei-base:bookworm
FROM ${BASE_IMAGE}
# Fixed ids: clamd runs as 10003; the socket's group 10010 is given to the relay (group_add).
# hadolint ignore=DL3008
RUN groupadd --system --gid 10003 clamav \
 && useradd --system --uid 10003 --gid clamav --home-dir /var/lib/clamav --shell /usr/sbin/nologin clamav \
 && groupadd --system --gid 10010 clamsock \
 && usermod -a -G clamsock clamav \
 && apt-get update \
 && apt-get install -y --no-install-recommends clamav-daemon \
 && rm -rf /var/lib/apt/lists/* /var/lib/clamav/* \
 && install -d -o 10003 -g 10010 -m 0750 /run/clamav
COPY docker/clamd/clamd.conf /etc/clamav/clamd.conf
# The socket group as primary group: clamd can hand the socket to it without supplementary groups
# (a numeric USER gets none).
USER 10003:10010
HEALTHCHECK --interval=5s --timeout=3s --retries=3 \
  CMD ["python3", "-c", "import socket; s = socket.socket(socket.AF_UNIX); s.settimeout(2); s.connect('/run/clamav/clamd.ctl'); s.sendall(b'zPING\\0'); assert s.recv(16).startswith(b'PONG')"]
ENTRYPOINT ["clamd", "--config-file=/etc/clamav/clamd.conf"]
