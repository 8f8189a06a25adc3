# Build the fangkong binary, then ship it alone on a slim base.
FROM rust:1-bookworm AS build
WORKDIR /src
COPY . .
RUN cargo build --release --locked -p fangkong

FROM debian:bookworm-slim
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --system --home /var/lib/fangkong --create-home fangkong
COPY --from=build /src/target/release/fangkong /usr/local/bin/fangkong
USER fangkong
WORKDIR /var/lib/fangkong
ENTRYPOINT ["fangkong"]
EXPOSE 8080
CMD ["serve"]
