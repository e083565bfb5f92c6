# Multi-stage build: the same steps as `make build` (scripts/install-deps.sh, then
# swift build), then a slim runtime with libev and ISA-L (CRC-32) only: msgpuck is a static
# library and the Swift runtime is linked statically. The storage is in memory unless
# IPROTOD_DATA_DIR names a directory (mount a volume there).
FROM swift:6.3-bookworm AS build
WORKDIR /src
COPY scripts/install-deps.sh scripts/install-deps.sh
RUN scripts/install-deps.sh build && rm -rf /var/lib/apt/lists/*
COPY . .
RUN swift build -c release --product iprotod --static-swift-stdlib \
    && install -D "$(swift build -c release --show-bin-path)/iprotod" /out/iprotod

FROM debian:bookworm-slim
RUN apt-get update \
    && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends libev4 libisal2 \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --system --no-create-home --uid 10001 iprotod
COPY --from=build /out/iprotod /usr/local/bin/iprotod
USER iprotod
# iproto, then Prometheus metrics (GET /metrics, unauthenticated: publish it to trusted networks
# only; the README's docker run does not). Admin functions answer --admin-from only, loopback by default.
EXPOSE 3301 8088
# SIGTERM starts the graceful drain (see docs/operations.md); iprotod exits 0 within --shutdown-timeout.
STOPSIGNAL SIGTERM
# The port accepts connections (bash's /dev/tcp: the runtime image has no iproto client).
HEALTHCHECK --interval=10s --timeout=3s CMD ["bash", "-c", "exec 3<>/dev/tcp/127.0.0.1/3301"]
ENV IPROTOD_LISTEN=0.0.0.0:3301 \
    IPROTOD_METRICS_LISTEN=0.0.0.0:8088
ENTRYPOINT ["iprotod"]
