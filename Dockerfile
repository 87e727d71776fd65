# finhook container image: a release build, then a small Debian runtime running as non-root.
# The image needs no writable filesystem: run it with a read-only root.
#
#   docker build -t finhook .
#   docker run --rm -p 8080:8080 -p 9090:9090 -e FINHOOK_KAFKA__EMBEDDED=true finhook

FROM rust:1-bookworm AS build
# librdkafka is built from source (rdkafka-sys): a C toolchain, and OpenSSL headers for TLS.
RUN apt-get update \
 && apt-get install -y --no-install-recommends build-essential pkg-config libssl-dev zlib1g-dev \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY Cargo.toml Cargo.lock ./
COPY src ./src
COPY config ./config
COPY schemas ./schemas
COPY benches ./benches
# The two binaries the image ships (finhook-bench compiles in test fixtures, not copied here).
RUN cargo build --release --locked --bin finhook --bin finhook-sim \
 && strip target/release/finhook target/release/finhook-sim

FROM debian:bookworm-slim AS runtime
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates libssl3 zlib1g \
 && rm -rf /var/lib/apt/lists/* \
 && groupadd --gid 65532 finhook \
 && useradd --uid 65532 --gid 65532 --no-create-home --shell /usr/sbin/nologin finhook
COPY --from=build /src/target/release/finhook /usr/local/bin/finhook
COPY --from=build /src/target/release/finhook-sim /usr/local/bin/finhook-sim
# The reference for every key (the same defaults are embedded in the binary).
COPY config/default.toml /etc/finhook/default.toml
USER 65532:65532
# Webhooks, then operations (/metrics, /healthz, /readyz).
EXPOSE 8080 9090
HEALTHCHECK --interval=10s --timeout=3s --start-period=5s --retries=3 \
  CMD ["/usr/local/bin/finhook", "probe", "http://127.0.0.1:9090/healthz"]
ENTRYPOINT ["/usr/local/bin/finhook"]
CMD ["serve"]
