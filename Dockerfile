# syntax=docker/dockerfile:1
# Fulcrum's container image: one member per container.
#
#   docker build -t fulcrum .
#   docker run --rm -p 2379:2379 -v fulcrum-data:/var/lib/fulcrum fulcrum          # one member
#   docker compose -f deploy/compose.yaml up -d                                     # three members
#
# Configure with flags after the image name (`fulcrum --name n1 ...`) or FULCRUM_* variables (docs/operations.md).
# deploy/image.test.ts rebuilds the runtime stage below without Docker, from this file's own COPY and RUN lines,
# and starts a member from it; keep every step in a form that test understands (it fails on one it does not).

ARG NODE_IMAGE=node:20-bookworm-slim

# ---- build: install everything, compile the server to JavaScript, then drop the dev dependencies ----------
FROM ${NODE_IMAGE} AS build
WORKDIR /app
# The lock file first, so editing a source file does not redo the install.
COPY package.json package-lock.json ./
# npm ci is the right install, but npm writes lock files without other platforms' optional packages (rollup's
# native builds, used only by the test tools), and npm ci then refuses the lock. npm install follows the lock
# for every version it records; it is the fallback, not the plan.
RUN npm ci --no-audit --no-fund || npm install --no-audit --no-fund
COPY tsconfig.json tsconfig.build.json ./
COPY proto ./proto
COPY raft ./raft
COPY storage ./storage
COPY node ./node
COPY client ./client
COPY deploy/docker ./deploy/docker
# tsc compiles what `fulcrum` and `fulcrumctl` import into dist/, the .proto files loaded at run time go beside it,
# and the server and fulcrumctl are bundled into dist/fulcrum.mjs and dist/fulcrumctl.mjs (deploy/docker/bundle.mjs),
# which the `fulcrum` and `fulcrumctl` commands run.
RUN npm run build
RUN npm prune --omit=dev --no-audit --no-fund

# ---- runtime: Node 20, production dependencies, the compiled server, nothing else -------------------------
FROM ${NODE_IMAGE} AS runtime
ENV NODE_ENV=production
# Node's flags for the server (node/node-flags.ts says why; its test checks this line carries them).
ENV NODE_OPTIONS=--max-semi-space-size=8
WORKDIR /app
COPY --from=build /app/node_modules ./node_modules
COPY --from=build /app/dist ./dist
COPY --from=build /app/deploy/docker ./deploy/docker
# `fulcrum` and `fulcrumctl` on the PATH (the entrypoint, the Kubernetes start script, `docker exec`, backups);
# the data volume's mount point belongs to the unprivileged `node` user the Node images provide, so a fresh
# named volume is writable by it (Kubernetes: fsGroup).
RUN ln -s /app/deploy/docker/fulcrum.mjs /usr/local/bin/fulcrum && ln -s /app/deploy/docker/fulcrumctl.mjs /usr/local/bin/fulcrumctl && mkdir -p /var/lib/fulcrum && chown node:node /var/lib/fulcrum
USER node
VOLUME /var/lib/fulcrum

# Defaults for a container: listen on every interface, metrics and health on 2381, data in a folder of the
# volume (not its root: a new ext4 volume holds lost+found, and `fulcrum snapshot restore` wants an empty or
# absent data dir). The advertised URLs suit one member reached through published ports; a cluster sets its own
# (compose.yaml, the StatefulSet), because other members must dial them.
ENV FULCRUM_DATA_DIR=/var/lib/fulcrum/data \
    FULCRUM_LISTEN_CLIENT_URLS=http://0.0.0.0:2379 \
    FULCRUM_ADVERTISE_CLIENT_URLS=http://127.0.0.1:2379 \
    FULCRUM_LISTEN_PEER_URLS=http://0.0.0.0:2380 \
    FULCRUM_INITIAL_ADVERTISE_PEER_URLS=http://127.0.0.1:2380 \
    FULCRUM_LISTEN_METRICS_URLS=http://0.0.0.0:2381

# 2379 clients (etcd v3 gRPC), 2380 peers (Raft), 2381 /metrics, /health, /readyz, /livez.
EXPOSE 2379 2380 2381

# /health: no alarm, a leader, and a linearizable read within 2 s. The health endpoints live on the metrics
# listener, which the check finds in FULCRUM_LISTEN_METRICS_URLS (so set that variable, not the flag, to move it).
HEALTHCHECK --interval=10s --timeout=5s --start-period=30s --retries=3 CMD ["node", "/app/deploy/docker/healthcheck.mjs"]

# Node is PID 1 and handles SIGTERM itself: stop taking requests, finish what is in flight, sync, exit 0.
ENTRYPOINT ["fulcrum"]
