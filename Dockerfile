# One image for every Python service of assetproof (gateway, attestor, API, simulator, and the
# one-shot provisioner); docker-compose.yml picks the command. The chain tools (anvil, solc) are
# not in it: the chain is its own service, and the contracts' compiled artifacts are committed.
FROM python:3.11-slim-bookworm

ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_DISABLE_PIP_VERSION_CHECK=1

# uid/gid 1883 is the eclipse-mosquitto image's `mosquitto` user: the broker must read and
# rewrite the dynamic-security config (mode 0600) that the provisioner writes on the broker-auth
# volume (mounted at /state/broker; created here so the volume starts owned by this user).
RUN groupadd --system --gid 1883 assetproof \
    && useradd --system --uid 1883 --gid 1883 --home-dir /state --no-create-home assetproof \
    && mkdir -p /state/broker && chmod 700 /state/broker && chown -R assetproof:assetproof /state

WORKDIR /app
# Dependencies first, pinned, so that a code change does not reinstall them.
COPY pyproject.toml constraints.txt README.md ./
RUN mkdir -p protocol && touch protocol/__init__.py \
    && pip install --no-cache-dir -c constraints.txt . \
    && pip uninstall --yes assetproof
COPY . .
RUN pip install --no-cache-dir --no-deps -c constraints.txt . && rm -rf /app/tests /app/bench

USER assetproof
WORKDIR /state
ENTRYPOINT ["assetproof"]
CMD ["--help"]
