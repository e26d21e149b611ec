# syntax=docker/dockerfile:1
#
# One image, two processes (select with the container args; the chart does):
#   docker run IMAGE                          → dispatcher  (node dist/dispatcher/main.js)
#   docker run IMAGE dist/operator/main.js    → operator
# Entrypoints: dist/dispatcher/main.js dist/operator/main.js
# (test/image/image.int.test.ts checks that `npm run build` produces both from the copied inputs
# and that they run with nothing but Node's built-ins.)
#
#   docker build -t dataforce-webhooks:dev .       (or: make image)
#
# Runs as a numeric non-root user with a read-only root filesystem: the processes write
# nothing to disk (logs go to stdout); mount an emptyDir at /tmp if a profiler needs it.

# Keep in step with the `node` devDependency in package.json (a test checks it).
ARG NODE_VERSION=24.21.0

# --- build: all dependencies, bundle each process into one file under dist/ ---------
# (`npm run build` also builds the event log console into console/build/: the dispatcher serves it
# at /console/)
FROM node:${NODE_VERSION}-bookworm-slim AS build
WORKDIR /src
COPY package.json package-lock.json ./
RUN npm ci --no-audit --no-fund
COPY tsconfig.json ./
COPY build ./build
COPY contract ./contract
COPY common ./common
COPY operator ./operator
COPY dispatcher ./dispatcher
COPY console ./console
RUN npm run build

# --- runtime --------------------------------------------------------------------
FROM node:${NODE_VERSION}-bookworm-slim
# tini as PID 1: forwards SIGTERM to node (graceful shutdown) and reaps zombies.
RUN apt-get update \
 && apt-get install -y --no-install-recommends tini \
 && rm -rf /var/lib/apt/lists/* \
 && rm -rf /usr/local/lib/node_modules/npm /usr/local/bin/npm /usr/local/bin/npx /opt/yarn-* /usr/local/bin/yarn /usr/local/bin/yarnpkg

WORKDIR /app
# RUNTIME_ENV in build/bundle.ts (why two malloc arenas: there)
ENV NODE_ENV=production MALLOC_ARENA_MAX=2
# Owned by root and not writable by the runtime user. package.json carries "type": "module"; the
# bundles hold every package they use, so the image has no node_modules.
COPY package.json ./
COPY --from=build /src/dist ./dist
COPY --from=build /src/console/build ./console/build

# Last, after the expensive layers: the revision and time change on every commit, and a changed
# ARG misses the cache of every RUN after it (test/image/image.int.test.ts keeps them here).
# (NODE_VERSION, declared before the first FROM, is visible in a stage only when declared again.)
ARG NODE_VERSION
ARG VERSION=0.1.0
ARG REVISION=unknown
ARG CREATED=1970-01-01T00:00:00Z
# `make image` passes the git remote, commit and time.
ARG SOURCE=""
LABEL org.opencontainers.image.title="dataforce-webhooks" \
      org.opencontainers.image.description="Kubernetes operator and dispatcher that deliver signed outbound webhooks" \
      org.opencontainers.image.licenses="Apache-2.0" \
      org.opencontainers.image.vendor="Dataforce" \
      org.opencontainers.image.source="${SOURCE}" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${REVISION}" \
      org.opencontainers.image.created="${CREATED}" \
      org.opencontainers.image.base.name="docker.io/library/node:${NODE_VERSION}-bookworm-slim"

# The base image's `node` user, by number so that runAsNonRoot can verify it.
USER 1000:1000
# Dispatcher HTTP API + /metrics (DISPATCHER_PORT), operator /metrics + probes (OPERATOR_PORT).
EXPOSE 8080 8081
ENTRYPOINT ["/usr/bin/tini", "--", "node"]
CMD ["dist/dispatcher/main.js"]
