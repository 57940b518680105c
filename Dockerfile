# syntax=docker/dockerfile:1
# LLMCallGateway: build the release binary, then copy it alone into a slim Debian image that
# runs it as an unprivileged user. No curl in the image: the health check speaks HTTP through
# bash's /dev/tcp (tests/it/examples.rs runs this exact command against a live gateway).

FROM rust:1-slim-bookworm AS build
WORKDIR /src
COPY . .
RUN cargo build --release --locked --bin llmcallgateway \
    && cp target/release/llmcallgateway /usr/local/bin/llmcallgateway

FROM debian:bookworm-slim
RUN useradd --system --uid 10001 --user-group --no-create-home --shell /usr/sbin/nologin gateway \
    && mkdir -p /app/logs /app/data \
    && chown gateway:gateway /app/logs /app/data
COPY --from=build /usr/local/bin/llmcallgateway /usr/local/bin/llmcallgateway
WORKDIR /app
# Listening on 0.0.0.0 with a provider key needs GATEWAY_API_KEYS or ADMIN_API_KEY (or
# ALLOW_UNAUTHENTICATED=true behind an authenticating proxy): else the gateway refuses to start.
ENV HOST=0.0.0.0 PORT=8728 LOG_DIR=/app/logs DATA_DIR=/app/data
VOLUME ["/app/logs", "/app/data"]
EXPOSE 8728
USER 10001:10001
HEALTHCHECK --interval=30s --timeout=5s --start-period=5s --retries=3 \
    CMD ["bash", "-c", "exec 3<>/dev/tcp/127.0.0.1/${PORT:-8728} && printf 'GET /health HTTP/1.1\\r\\nHost: localhost\\r\\nConnection: close\\r\\n\\r\\n' >&3 && head -n 1 <&3 | grep -q ' 200 '"]
ENTRYPOINT ["/usr/local/bin/llmcallgateway"]
