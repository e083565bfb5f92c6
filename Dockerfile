# Multi-stage build: the same steps as `make build`, then a slim runtime with libev only
# (msgpuck is a static library, the Swift runtime is linked statically).
FROM swift:6.3-bookworm AS build
RUN apt-get update \
    && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends libev-dev libmsgpuck-dev \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY . .
RUN swift build -c release --product iprotod --static-swift-stdlib \
    && install -D "$(swift build -c release --show-bin-path)/iprotod" /out/iprotod

FROM debian:bookworm-slim
RUN apt-get update \
    && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends libev4 \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --system --no-create-home --uid 10001 iprotod
COPY --from=build /out/iprotod /usr/local/bin/iprotod
USER iprotod
EXPOSE 3301
STOPSIGNAL SIGTERM
# The port accepts connections (bash's /dev/tcp; the runtime image has no iproto client).
HEALTHCHECK --interval=10s --timeout=3s CMD ["bash", "-c", "exec 3<>/dev/tcp/127.0.0.1/3301"]
ENTRYPOINT ["iprotod", "--listen", "0.0.0.0:3301"]
