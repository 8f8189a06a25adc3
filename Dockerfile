# Build the fangkong binary, then ship it alone on a slim base.
FROM rust:1-bookworm AS build
WORKDIR /src
COPY . .
RUN cargo build --release --locked -p fangkong

FROM debian:bookworm-slim
# curl only for the health check below.
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates curl \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --system --home /var/lib/fangkong --create-home fangkong
COPY --from=build /src/target/release/fangkong /usr/local/bin/fangkong
COPY --from=build /src/config /etc/fangkong
USER fangkong
WORKDIR /var/lib/fangkong
ENV FANGKONG_BIND=0.0.0.0:8080
EXPOSE 8080
# Ready means the store answers, not only that the process lives.
HEALTHCHECK --interval=10s --timeout=3s --start-period=20s --retries=3 \
  CMD curl -fsS http://127.0.0.1:8080/readyz || exit 1
# SIGTERM: in-flight requests finish, live feeds end, read models are saved.
STOPSIGNAL SIGTERM
ENTRYPOINT ["fangkong"]
CMD ["serve"]
