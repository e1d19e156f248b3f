# TokenBroker container: build with dev dependencies, run with production ones only.

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
RUN npm ci --omit=dev --no-audit --no-fund && npm cache clean --force
COPY --from=build /app/dist ./dist
COPY proto ./proto
USER node
EXPOSE 8080
# node is PID 1 and handles SIGTERM itself (graceful shutdown).
CMD ["node", "dist/main.js"]
