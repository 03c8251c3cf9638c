# swarmlearn daemon image. Build and run: docs/operations.md, "Running in a container".
#
# CPU torch by default. A CUDA build:
#   docker build -t swarmlearn:cuda \
#     --build-arg TORCH_INDEX_URL=https://download.pytorch.org/whl/cu126 .
# The CUDA wheels bring their own CUDA libraries, so the slim base works with the host's
# NVIDIA driver (docker run --gpus all); docs/operations.md says how to pick the CUDA version.
# To build on another base image, pass --build-arg BASE_IMAGE=<an image with Python 3.11 as
# `python`>; both stages use it.

ARG BASE_IMAGE=python:3.11-slim-bookworm

FROM ${BASE_IMAGE} AS builder
ARG TORCH_SPEC="torch==2.13.0"
ARG TORCH_INDEX_URL=https://download.pytorch.org/whl/cpu
ENV PIP_DISABLE_PIP_VERSION_CHECK=1
RUN python -m venv /opt/swarmlearn/venv
ENV PATH=/opt/swarmlearn/venv/bin:$PATH
# torch first, from its own index: once installed, nothing later can pull the (CUDA) build
# that PyPI serves under the same version. TORCH_SPEC pins the version (hadolint's DL3013
# cannot see into the variable).
# hadolint ignore=DL3013
RUN pip install --no-cache-dir --index-url "${TORCH_INDEX_URL}" "${TORCH_SPEC}"
WORKDIR /src
COPY pyproject.toml README.md ./
COPY client/ client/
COPY daemon/ daemon/
RUN pip install --no-cache-dir ./client .

FROM ${BASE_IMAGE} AS runtime
# A fixed uid, so a bind-mounted data directory or secret can be chowned to it on the host.
RUN groupadd --system --gid 10001 swarmlearn \
    && useradd --system --uid 10001 --gid swarmlearn --no-create-home \
        --home-dir /var/lib/swarmlearn --shell /usr/sbin/nologin swarmlearn \
    && install -d -o swarmlearn -g swarmlearn -m 0700 /var/lib/swarmlearn
COPY --from=builder /opt/swarmlearn/venv /opt/swarmlearn/venv
# Created above with the user's ownership, so a new named volume starts out writable by it.
VOLUME /var/lib/swarmlearn
# SWARMLEARN_AUTH_TOKEN_FILE is where the secret is mounted, not the secret (hadolint's DL3064
# goes by the name).
# hadolint ignore=DL3064
ENV PATH=/opt/swarmlearn/venv/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    SWARMLEARN_DATA_DIR=/var/lib/swarmlearn \
    SWARMLEARN_LISTEN=0.0.0.0:50051 \
    SWARMLEARN_METRICS_LISTEN=0.0.0.0:9464 \
    SWARMLEARN_AUTH_TOKEN_FILE=/run/secrets/swarmlearn_token \
    SWARMLEARN_LOG_FORMAT=json
# Numeric, so that runtimes enforcing non-root (Kubernetes runAsNonRoot) can check it.
USER 10001:10001
WORKDIR /var/lib/swarmlearn
EXPOSE 50051 9464
# Health is the one RPC that needs no token, so the probe carries none.
HEALTHCHECK --interval=30s --timeout=5s --start-period=30s --retries=3 \
    CMD ["swarmlearn", "health", "--target", "127.0.0.1:50051", "--timeout", "3"]
# The daemon stops gracefully on SIGTERM (in-flight batches committed and acked, exit 0); give it
# more than its 5 s grace period: docker stop --time 30, or docker run --stop-timeout 30.
STOPSIGNAL SIGTERM
# No init (tini) in front: the daemon is PID 1 and that is enough here. It installs its own
# SIGTERM/SIGINT handlers (PID 1 gets no default signal actions), and its children (the writer,
# the learner processes, a job process) are started and waited for by the daemon itself, so no
# orphan is left for PID 1 to reap. `docker exec` and health probes are children of the runtime, not of PID 1.
ENTRYPOINT ["swarmlearn"]
CMD ["serve"]
