# TokenBroker container: build with dev dependencies, run with production ones only.
# Both stages use the same Node.js release, pinned by exact version.
# test/dockerfile.test.ts checks this file and reproduces its stages without Docker.

FROM node:20.20.2-bookworm-slim AS build
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --no-audit --no-fund
COPY tsconfig.json buf.yaml buf.gen.yaml ./
COPY proto ./proto
COPY src ./src
RUN npm run build

FROM node:20.20.2-bookworm-slim AS runtime
ENV NODE_ENV=production
WORKDIR /app
COPY package.json package-lock.json ./
# Production dependencies only, without install scripts (none is needed) and
# without the source maps some of them ship; then npm's cache and the package
# managers themselves go: nothing is installed at run time.
RUN npm ci --omit=dev --ignore-scripts --no-audit --no-fund \
 && find node_modules -name '*.map' -type f -delete \
 && npm cache clean --force \
 && rm -rf /usr/local/lib/node_modules/npm /usr/local/lib/node_modules/corepack \
           /usr/local/bin/npm /usr/local/bin/npx /usr/local/bin/corepack \
           /usr/local/bin/yarn /usr/local/bin/yarnpkg /opt/yarn-* /root/.npm
# Compiled JavaScript only (tsconfig.json: sourceMap false); proto/ is read at
# run time for server reflection. Files stay root-owned: the service only reads them.
COPY --from=build /app/dist ./dist
COPY proto ./proto
# The base image's node user, by number so that Kubernetes' runAsNonRoot can
# verify it (k8s/base/deployment.yaml runs as 1000:1000 too).
USER 1000:1000
EXPOSE 8080
# No wrapper script: node itself is PID 1 and handles SIGTERM (graceful shutdown).
# A command given to `docker run IMAGE ...` (or a Job's command) replaces CMD.
ENTRYPOINT []
CMD ["node", "dist/main.js"]
