# The jobchain operator image.
#
#   docker build -t jobchain-operator:dev .                       # on python:3.11.11-slim-bookworm
#   hack/image-build.sh                                          # without Docker or a registry
#
# BASE must have python3 (3.11, the version requirements.lock was made for) with the venv
# module. hack/image-build.sh passes the Debian bookworm rootfs it made with debootstrap, pinned
# by its digest (name@sha256:...). The default is an exact release (Python 3.11.11 on Debian
# bookworm), not a moving tag such as 3.11-slim; for a release build also pin its digest:
#   docker build --build-arg BASE=python:3.11.11-slim-bookworm@sha256:<digest> ...
# (no digest is written here: this project's builders reach no container registry to read a
# true one, and a digest copied from elsewhere could not be checked).
# Dependencies install from requirements.lock only: exact versions, each file checked against
# its sha256 (pip --require-hashes). The operator runs as uid 65532 and writes nothing outside
# /tmp, so the pod can use readOnlyRootFilesystem with an emptyDir on /tmp.
ARG BASE=python:3.11.11-slim-bookworm

FROM ${BASE} AS build
# PIP_CA_FILE: a CA bundle for pip, for builds behind a TLS-intercepting proxy; it must be
# inside the build (hack/image-build.sh bind-mounts the host's bundle). Never in the image.
ARG PIP_CA_FILE=""
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1 PYTHONDONTWRITEBYTECODE=1
RUN python3 -m venv /opt/jobchain
# Dependencies first, from the lock alone: this layer is reused while only the code changes.
COPY requirements.lock /src/
RUN ${PIP_CA_FILE:+env PIP_CERT=$PIP_CA_FILE} /opt/jobchain/bin/pip install --require-hashes -r /src/requirements.lock
COPY pyproject.toml README.md /src/
COPY operator /src/operator
# The package itself: no dependency resolved again, its build backend (setuptools) from the lock.
RUN /opt/jobchain/bin/pip install --no-deps --no-build-isolation --no-index /src \
 && /opt/jobchain/bin/python -m compileall -q /opt/jobchain \
 && /opt/jobchain/bin/python -c "import jobchain"

FROM ${BASE}
LABEL org.opencontainers.image.title="jobchain-operator" \
      org.opencontainers.image.description="Kubernetes operator that runs workflows as chains of Jobs" \
      org.opencontainers.image.licenses="Apache-2.0"
RUN echo 'jobchain:x:65532:65532:jobchain operator:/tmp:/usr/sbin/nologin' >> /etc/passwd \
 && echo 'jobchain:x:65532:' >> /etc/group
COPY --from=build /opt/jobchain /opt/jobchain
# Bytecode was compiled at build time; HOME and TMPDIR point at the one writable place.
ENV PATH=/opt/jobchain/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    HOME=/tmp \
    TMPDIR=/tmp
USER 65532:65532
WORKDIR /tmp
EXPOSE 8080 8081
ENTRYPOINT ["jobchain", "operator"]
