# syntax=docker/dockerfile:1
# SPDX-License-Identifier: Apache-2.0
#
# The modinfer container image, for linux/amd64 and linux/arm64.
#
#   build    Debian 12: the packages of scripts/setup.sh that a build needs,
#            ONNX Runtime for the target machine (scripts/install-ort.sh),
#            the image example's model (scripts/install-models.sh), and a
#            Release build of the server and the fall-detection model
#   runtime  Debian 12 slim: the runtime libraries, modinfer,
#            libonnxruntime, the examples with their models; user 10001
#
# The fall-detection model is built from the reference package, which is
# not part of the repository: pass its folder as the build context named
# "reference" (BuildKit):
#
#   docker buildx build --platform linux/amd64,linux/arm64 \
#       --build-context reference=../shared/reference/fall-detection \
#       -t <registry>/modinfer:0.1.0 --push .
#
# Not yet built by the project's CI: see docs/deploy.md ("Container image").

FROM debian:12-slim AS build
ARG TARGETARCH
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
        build-essential cmake pkg-config ca-certificates \
        libgrpc-dev protobuf-c-compiler libprotobuf-c-dev \
        libjansson-dev libmicrohttpd-dev libjpeg-dev libpng-dev \
        libcurl4-openssl-dev \
        python3 python3-onnx python3-numpy npm \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY . .
COPY --from=reference model.json SOURCE.md LICENSE-Apache-2.0.txt /reference/
# ORT_ARCH: install-ort.sh takes amd64/arm64 as well as x86_64/aarch64.
RUN ORT_ARCH="${TARGETARCH:-$(uname -m)}" bash scripts/install-ort.sh \
 && bash scripts/install-models.sh
RUN cmake -S . -B /build -DCMAKE_BUILD_TYPE=Release -DBUILD_TESTING=OFF \
          -DMI_REFERENCE_DIR=/reference \
 && cmake --build /build -j"$(nproc)" --target modinfer fall_model
# The ORT library with its SONAME link, and its licence files when the
# package had them.
RUN mkdir -p /out/ort-lib /out/ort-doc \
 && cp -a third_party/ort/lib/. /out/ort-lib/ \
 && for f in third_party/ort/LICENSE third_party/ort/ThirdPartyNotices.txt; do \
        if [ -f "$f" ]; then cp "$f" /out/ort-doc/; fi; \
    done

FROM debian:12-slim
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
        libgrpc29 libprotobuf-c1 libjansson4 libmicrohttpd12 \
        libjpeg62-turbo libpng16-16 libstdc++6 curl ca-certificates \
 && rm -rf /var/lib/apt/lists/*
COPY --from=build /out/ort-lib/ /usr/local/lib/
COPY --from=build /out/ort-doc/ /usr/local/share/doc/onnxruntime/
RUN ldconfig
COPY --from=build /build/modinfer /usr/local/bin/modinfer
COPY --from=build /src/examples /opt/modinfer/examples
COPY --from=build /reference/SOURCE.md /reference/LICENSE-Apache-2.0.txt \
     /opt/modinfer/examples/fall-detection/reference/
RUN groupadd --system --gid 10001 modinfer \
 && useradd --system --uid 10001 --gid 10001 --no-create-home \
        --home-dir /nonexistent --shell /usr/sbin/nologin modinfer \
 && modinfer --version
USER 10001:10001
WORKDIR /opt/modinfer
EXPOSE 50051 8000
HEALTHCHECK --interval=10s --timeout=3s --start-period=60s \
    CMD curl -fsS -o /dev/null "http://127.0.0.1:${MI_HTTP_PORT:-8000}/v2/health/ready" || exit 1
ENTRYPOINT ["/usr/local/bin/modinfer"]
CMD ["serve", "/opt/modinfer/examples/fall-detection/pipeline.json"]
