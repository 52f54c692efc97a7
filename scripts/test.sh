#!/usr/bin/env bash
# The whole test suite: `npm test`. Builds, then runs every test with vitest. Later capabilities
# add the services they need here (Docker Engine, PostgreSQL, Chromium), provisioned when run as
# root and refused with a clear message otherwise.
set -euo pipefail
cd "$(dirname "$0")/.."
npm run build --silent
# Types and lint first: the plane-boundary rules (server ⟂ worker, agent → protocol/lib only)
# are part of what the suite proves.
npm run lint --silent
npx vitest run "$@"
