# syntax=docker/dockerfile:1
#
# hopper's image: the coordinator, the thumbnail worker, the tagging
# demo's workers (hopper-tag, frames.py and gather.py, with FFmpeg's
# ffprobe) and the example workers, on Debian bookworm, running as a
# non-root user.
#
#   docker build -t hopper .
#   docker run --rm -v "$PWD/pipelines/thumbnails.json:/etc/hopper/pipeline.json:ro" \
#       -v "$PWD/videos:/data/in" -v "$PWD/out:/data/out" hopper
#
# Configuration: a pipeline file mounted at /etc/hopper/pipeline.json, whose
# ${VAR} and ${VAR:-default} come from the container's environment, and
# HOPPER_LISTEN, the address of /metrics, /healthz and /readyz. Anything
# else goes on the command line: the entrypoint is `hopper`, so
# `docker run hopper run -s ... -- worker` works too. SIGTERM drains the
# items in flight and exits 0.

ARG DEBIAN_IMAGE=debian:bookworm-slim

# ---- build: the C sources, with the -dev packages -------------------------
FROM ${DEBIAN_IMAGE} AS build
ARG DEBIAN_FRONTEND=noninteractive
RUN apt-get update \
 && apt-get install -y --no-install-recommends \
        build-essential pkg-config \
        libjansson-dev libpq-dev librdkafka-dev libmicrohttpd-dev libjemalloc-dev \
        libyaml-dev libcurl4-openssl-dev \
        libavformat-dev libavcodec-dev libswscale-dev libavutil-dev \
        ffmpeg \
 && rm -rf /var/lib/apt/lists/*
# A few short sample videos for the compose file's one-shot seed (before
# the sources, so that a change of code does not make them again).
COPY deploy/compose/make_samples.sh /usr/local/bin/
RUN bash /usr/local/bin/make_samples.sh /out/samples
WORKDIR /src
COPY . .
# The coordinator, the thumbnail and tag workers and the C example; the Go,
# Rust and Java examples need toolchains this image does not carry.
RUN make -j"$(nproc)" BUILD=/out \
        /out/hopper /out/hopper-thumbnail /out/hopper-tag /out/examples/c/word_count

# ---- runtime: the binaries and the libraries they link ---------------------
FROM ${DEBIAN_IMAGE}
ARG DEBIAN_FRONTEND=noninteractive
RUN apt-get update \
 && apt-get install -y --no-install-recommends \
        libjansson4 libpq5 librdkafka1 libmicrohttpd12 libjemalloc2 \
        libyaml-0-2 libcurl4 \
        libavformat59 libavcodec59 libswscale6 libavutil57 \
        python3 curl ca-certificates ffmpeg \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --system --uid 10001 --user-group --home-dir /var/lib/hopper \
        --create-home --shell /usr/sbin/nologin hopper \
 && mkdir -p /data /etc/hopper \
 && chown hopper:hopper /data
COPY --from=build /out/hopper /out/hopper-thumbnail /out/hopper-tag /usr/local/bin/
COPY --from=build /out/examples/c/word_count /usr/local/lib/hopper/examples/c/word_count
COPY --from=build /out/samples /usr/local/share/hopper/samples
COPY worker/PROTOCOL.md /usr/local/share/hopper/
COPY worker/examples/python /usr/local/lib/hopper/examples/python
COPY worker/examples/sh /usr/local/lib/hopper/examples/sh
COPY deploy/compose/announce.py deploy/compose/seed.sh /usr/local/lib/hopper/
COPY pipelines/tagging/*.py /usr/local/lib/hopper/tagging/
COPY pipelines/*.json pipelines/*.yaml /usr/local/share/hopper/pipelines/

# The address of /metrics, /healthz and /readyz.
ENV HOPPER_LISTEN=0.0.0.0:9464 \
    PYTHONUNBUFFERED=1
EXPOSE 9464
USER hopper
WORKDIR /var/lib/hopper
HEALTHCHECK --interval=10s --timeout=3s --start-period=20s --retries=3 \
    CMD curl -fsS "http://127.0.0.1:${HOPPER_LISTEN##*:}/healthz" >/dev/null || exit 1
STOPSIGNAL SIGTERM
ENTRYPOINT ["hopper"]
CMD ["run", "-f", "/etc/hopper/pipeline.json"]
