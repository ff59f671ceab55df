# One image for every shadowgate command: tap, dispatch, worker, dashboard, gate, simulate.
FROM python:3.11-slim

# torch first and pinned, as scripts/setup.sh does. The default index gives PyPI's build (with CUDA, for
# workers on a GPU); for a smaller CPU-only image build with
#   --build-arg TORCH_INDEX_URL=https://download.pytorch.org/whl/cpu
ARG TORCH=torch==2.13.0
ARG TORCH_INDEX_URL=
RUN pip install --no-cache-dir ${TORCH_INDEX_URL:+--index-url "$TORCH_INDEX_URL"} "$TORCH"

# g++ lets the worker torch.compile its embedding model (embedding_compile = "auto"; ~1.3x the pairs per
# second on a CPU with bf16); without it the worker runs the model uncompiled.
RUN apt-get update \
    && apt-get install -y --no-install-recommends g++ \
    && rm -rf /var/lib/apt/lists/*

WORKDIR /app
COPY pyproject.toml README.md ./
COPY shadowgate ./shadowgate
COPY mirror ./mirror
COPY simulator ./simulator
COPY comparators ./comparators
COPY store ./store
COPY gate ./gate
COPY dashboard ./dashboard
RUN pip install --no-cache-dir . \
    && useradd --system --uid 10001 --home-dir /var/lib/shadowgate shadowgate \
    && mkdir -p /var/lib/shadowgate /etc/shadowgate \
    && chown shadowgate /var/lib/shadowgate

# Named volumes mounted here start with this owner, so the services can write their data.
USER shadowgate
ENV SHADOWGATE_DATA_DIR=/var/lib/shadowgate
EXPOSE 8080 8501
ENTRYPOINT ["shadowgate"]
