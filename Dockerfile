# syntax=docker/dockerfile:1
# The image deploy/kubernetes/ names: `docker build -t rpload:0.1.0 .` from the repository root.
# Two stages: the Rust toolchain builds the release binary, a slim Debian of the same release
# runs it (same glibc), as a non-root user.

# The toolchain CI uses (README: Rust 1.89 or newer; .ci/run runs 1.95).
ARG RUST_VERSION=1.95
ARG DEBIAN_RELEASE=trixie

FROM rust:${RUST_VERSION}-slim-${DEBIAN_RELEASE} AS build
WORKDIR /src
# The whole source (.dockerignore keeps target/, reports/ and .git out). The embedded server
# compiles in assets/ (the charts' font) and scenarios/pricing.toml, so they are needed too.
COPY . .
# --locked: exactly Cargo.lock's versions, as CI builds. The default features only: `cuda`
# needs the CUDA toolkit and a GPU and stays off. The cache mounts keep the crates and the
# build between image builds (BuildKit); the binary is copied out of the cached target/.
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked \
    && cp target/release/rpload /usr/local/bin/rpload

FROM debian:${DEBIAN_RELEASE}-slim
# ca-certificates: rustls verifies https targets against the system's roots. Debian slim
# already has /bin/sh, tar and sleep, which the Kubernetes manifests use (the shard wrapper,
# kubectl cp, the results pod).
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates \
    && rm -rf /var/lib/apt/lists/*
# A fixed uid/gid, so the manifests' runAsUser/fsGroup (10001) and file ownership on the
# results volume agree with the image.
RUN groupadd --system --gid 10001 rpload \
    && useradd --system --uid 10001 --gid 10001 --home-dir /home/rpload --create-home \
       --shell /usr/sbin/nologin rpload
COPY --from=build /usr/local/bin/rpload /usr/local/bin/rpload
USER 10001:10001
WORKDIR /home/rpload
ENTRYPOINT ["rpload"]
CMD ["--help"]
