#!/usr/bin/env bash
# Debian packages the test suite needs: PostgreSQL (real server), Chromium (browser tests),
# R with lme4/ordinal (optional statistics cross-check). Skips what is already installed.
set -euo pipefail
need=()
command -v pg_ctlcluster >/dev/null 2>&1 || need+=(postgresql)
command -v chromium >/dev/null 2>&1 || need+=(chromium chromium-driver fonts-dejavu-core)
if [ "${ADVLEGIT_SKIP_R:-0}" != 1 ]; then
  command -v Rscript >/dev/null 2>&1 || need+=(r-base-core)
  [ -d /usr/lib/R/site-library/lme4 ] || need+=(r-cran-lme4)
  [ -d /usr/lib/R/site-library/ordinal ] || need+=(r-cran-ordinal)
fi
if [ ${#need[@]} -gt 0 ]; then
  SUDO=""; [ "$(id -u)" = 0 ] || SUDO=sudo
  $SUDO apt-get update -q
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q --no-install-recommends "${need[@]}"
fi
