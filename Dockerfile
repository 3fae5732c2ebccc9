# syntax=docker/dockerfile:1
# picoclaw gateway image. Build: docker build -t picoclaw .
# Run:   docker run -p 18790:18790 -v picoclaw-data:/data \
#          -e PICOCLAW_CHANNELS_PICO_ENABLED=true --env-file picoclaw.env picoclaw
# where picoclaw.env (mode 0600, never committed) holds PICOCLAW_CHANNELS_PICO_TOKEN=...
# Tokens reach the container only as environment variables or a mounted .security.yml;
# nothing in this image holds a secret. See docs/deploy.md.

FROM rust:1-bookworm AS builder
WORKDIR /src
COPY . .
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked -p picoclaw \
    && install -m 0755 target/release/picoclaw /usr/local/bin/picoclaw

FROM debian:bookworm-slim AS runtime
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates \
    && rm -rf /var/lib/apt/lists/* \
    && groupadd --system --gid 10001 picoclaw \
    && useradd --system --uid 10001 --gid 10001 --home-dir /data --shell /usr/sbin/nologin picoclaw \
    && install -d -m 0700 -o 10001 -g 10001 /data
COPY --from=builder /usr/local/bin/picoclaw /usr/local/bin/picoclaw
# Everything picoclaw writes lives in /data; in a container the gateway listens on every
# interface (it refuses to do so without a token configured).
ENV PICOCLAW_HOME=/data \
    PICOCLAW_GATEWAY_HOST=0.0.0.0 \
    PICOCLAW_GATEWAY_PORT=18790
USER 10001:10001
WORKDIR /data
VOLUME ["/data"]
EXPOSE 18790
# `picoclaw gateway status` exits 0 only when the running gateway's /ready answers 200.
HEALTHCHECK --interval=30s --timeout=5s --start-period=15s --retries=3 \
    CMD ["picoclaw", "gateway", "status"]
ENTRYPOINT ["picoclaw"]
CMD ["gateway"]
