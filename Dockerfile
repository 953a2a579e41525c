# Herald's one image: every service is `herald <service>` (scheduler, publisher, results, api),
# and the one-shot jobs are `herald migrate` and `herald topics create`.
#
#   docker build -t herald .
#   docker run --rm herald --help
#
# BASE is any Debian-like image with Python 3.11 as `python3` (the venv module included):
# python:3.11-slim-bookworm by default; where no registry is reachable, a Debian bookworm
# root file system imported locally (debootstrap --variant=minbase
# --include=python3,python3-venv bookworm). pip reads PIP_* settings from build arguments,
# so an offline build can install from a folder of wheels (PIP_NO_INDEX=1,
# PIP_FIND_LINKS=/wheels).
ARG BASE=python:3.11-slim-bookworm

FROM ${BASE} AS build
ARG PIP_NO_INDEX=0
ARG PIP_FIND_LINKS=
ARG PIP_INDEX_URL=https://pypi.org/simple
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_CACHE_DIR=1
COPY . /src
RUN python3 -m venv /opt/herald \
    && /opt/herald/bin/pip install --quiet /src \
    && /opt/herald/bin/pip uninstall --quiet --yes pip setuptools

FROM ${BASE}
# No compilers and no build tools here: only the base's Python and the venv built above.
RUN useradd --system --uid 10001 --user-group --no-create-home --home-dir /nonexistent herald
COPY --from=build /opt/herald /opt/herald
ENV PATH=/opt/herald/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    HERALD_BIND_ADDRESS=0.0.0.0 \
    HERALD_METRICS_PORT=9100
USER herald:herald
WORKDIR /tmp
EXPOSE 8080 9100
# Every service answers /healthz on its ops port (HERALD_METRICS_PORT).
HEALTHCHECK --interval=15s --timeout=5s --start-period=30s --retries=3 \
    CMD ["python3", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:' + os.environ['HERALD_METRICS_PORT'] + '/healthz', timeout=4)"]
# herald is PID 1 and handles SIGTERM itself: it stops taking work, drains what is in flight
# (up to about 20 s) and exits 0.
STOPSIGNAL SIGTERM
ENTRYPOINT ["herald"]
CMD ["--help"]
