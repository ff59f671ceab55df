# One image for every shadowgate command (tap, simulate, and later dispatch, worker, dashboard).
FROM python:3.11-slim
WORKDIR /app
COPY pyproject.toml README.md ./
COPY shadowgate ./shadowgate
COPY mirror ./mirror
COPY simulator ./simulator
COPY comparators ./comparators
COPY store ./store
COPY gate ./gate
COPY dashboard ./dashboard
RUN pip install --no-cache-dir .
USER nobody
ENTRYPOINT ["shadowgate"]
