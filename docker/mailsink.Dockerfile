# A mail sink for the test stack (aiosmtpd from Debian, STARTTLS required), FROM the Debian-made
# base. A ward points the intake at its own mail server instead (docs/運用手順書.md).
ARG BASE_IMAGE=shinsei-base:bookworm
FROM ${BASE_IMAGE}
# hadolint ignore=DL3008
RUN apt-get update \
 && apt-get install -y --no-install-recommends python3-aiosmtpd \
 && rm -rf /var/lib/apt/lists/* \
 && groupadd --system --gid 10005 mailsink \
 && useradd --system --uid 10005 --gid mailsink --home-dir /nonexistent --shell /usr/sbin/nologin mailsink \
 && install -d -o 10005 -g 10005 -m 0700 /var/mail/sink /var/mail/sink/tmp /var/mail/sink/new /var/mail/sink/cur
# A maildir (tmp/, new/, cur/): the volume is filled from the image on first use.
USER 10005:10005
EXPOSE 2525
# Options before -c: everything after the handler class is its arguments (the maildir).
ENTRYPOINT ["python3", "-m", "aiosmtpd", "-n"]
CMD ["-l", "0.0.0.0:2525", "-c", "aiosmtpd.handlers.Mailbox", "/var/mail/sink"]
