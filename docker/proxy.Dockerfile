# nginx from Debian (nginx-light), FROM the Debian-made base: the TLS front proxy of the staff UI
# and, in the test stack, the portal simulator's TLS endpoint. The configuration is mounted.
ARG BASE_IMAGE=shinsei-base:bookworm
FROM ${BASE_IMAGE}
# hadolint ignore=DL3008
RUN apt-get update \
 && apt-get install -y --no-install-recommends nginx-light \
 && rm -rf /var/lib/apt/lists/* \
 && groupadd --system --gid 10004 proxy-tls \
 && useradd --system --uid 10004 --gid proxy-tls --home-dir /nonexistent --shell /usr/sbin/nologin proxy-tls
USER 10004:10004
EXPOSE 8443
ENTRYPOINT ["nginx", "-e", "stderr", "-c"]
CMD ["/etc/shinsei/nginx.conf"]
