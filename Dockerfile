# Image for the Ray head, the Ray workers, the RayJob submitter and the MLflow server.
# Build from the repository root:  docker build -t REGISTRY/osd:TAG .
# The install steps live in k8s/install.sh (also run, without Docker, by `make image-check`).
FROM python:3.11-slim-bookworm

# wget: KubeRay's injected liveness/readiness probes run `wget` inside the Ray containers.
RUN apt-get update \
    && apt-get install --yes --no-install-recommends wget \
    && rm -rf /var/lib/apt/lists/*

RUN groupadd --gid 1000 osd && useradd --uid 1000 --gid 1000 --no-create-home --home-dir /tmp osd

# HOME, matplotlib's and numba's writable paths point into volumes the pods mount
# (/tmp and the numba cache are emptyDirs), so the root filesystem can be read-only.
ENV VIRTUAL_ENV=/opt/venv \
    PATH=/opt/venv/bin:$PATH \
    HOME=/tmp \
    MPLCONFIGDIR=/tmp/matplotlib \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    NUMBA_CACHE_DIR=/var/cache/osd/numba

WORKDIR /opt/osd
COPY . /opt/osd
RUN k8s/install.sh /opt/osd /opt/venv /var/cache/osd/numba \
    && chown -R 1000:1000 /var/cache/osd

USER 1000:1000
CMD ["osd", "--help"]
