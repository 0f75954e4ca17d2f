# syntax=docker/dockerfile:1
# One image for all five services; the command picks the service:
#   yummi-gateway serve | yummi-catalog serve | yummi-orders serve | yummi-payments serve | yummi-ai serve
#   yummi-<name> migrate (one-shot schema upgrade)
# Build: docker build -t yummi .   (docker-compose.yml builds and runs it with Postgres, Redis and NATS)

FROM python:3.11-slim

ARG UV_VERSION=0.13.8

# ENVIRONMENT=prod fails closed: unless a deployment says dev/test, the services demand production settings.
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    UV_COMPILE_BYTECODE=1 \
    UV_LINK_MODE=copy \
    ENVIRONMENT=prod

WORKDIR /app

RUN groupadd --system --gid 10001 yummi \
    && useradd --system --uid 10001 --gid yummi --home-dir /app --no-create-home --shell /usr/sbin/nologin yummi

# Sources needed to build the packages (the dev stack in libs/devstack is not part of the image).
COPY protos/ protos/
COPY libs/protos/ libs/protos/
COPY libs/common/ libs/common/
COPY services/ services/
COPY scripts/ scripts/

# Local paths satisfy the yummi-* dependencies between the packages, so those names never come from an index.
RUN --mount=type=cache,target=/root/.cache/uv \
    pip install "uv==${UV_VERSION}" \
    && uv pip install --system \
        ./libs/protos \
        ./libs/common \
        "./services/gateway[fast]" \
        ./services/catalog \
        ./services/orders \
        ./services/payments \
        ./services/ai \
    && pip uninstall --yes uv

# The sample catalog that `yummi-catalog seed --if-empty` loads; data/ is also where the runner log goes.
RUN mkdir -p data \
    && python scripts/generate_sample_catalog.py --out data/sample-catalog.json \
    && chown -R yummi:yummi data

USER 10001:10001

# gateway HTTP, then gRPC: catalog, orders, payments, ai
EXPOSE 8000 50051 50052 50053 50054

ENTRYPOINT []
CMD ["yummi-gateway", "serve"]
