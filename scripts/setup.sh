#!/usr/bin/env bash
# Installs what pulumi-anycast's tests and lab need on a Debian/Ubuntu machine:
# the Debian tools the renderers are checked with and the lab runs (only those missing),
# then the npm packages from package-lock.json. Safe to run again.
set -euo pipefail
cd "$(dirname "$0")/.."

# command -> Debian package
declare -A tools=(
  [bird]=bird2 [wg]=wireguard-tools [wireguard-go]=wireguard-go [nginx]=nginx-light
  [cloud-init]=cloud-init [shellcheck]=shellcheck [nft]=nftables [ip]=iproute2
  [curl]=curl [wrk]=wrk [openssl]=openssl
  # the lab's default provider edge (FRR's bgpd and bfdd, driven through vtysh)
  [vtysh]=frr
  # monitoring: promtool checks the bundle; the lab runs Prometheus and the PoPs' exporters
  [promtool]=prometheus [prometheus-bird-exporter]=prometheus-bird-exporter
  [prometheus-nginx-exporter]=prometheus-nginx-exporter
  # the deploy rehearsal: a Debian rootfs, booted with systemd-nspawn, deployed to over SSH
  [mmdebstrap]=mmdebstrap [systemd-nspawn]=systemd-container [ssh]=openssh-client
  # the lab report's HTML page, rendered headless in a real browser by its test
  [chromium]=chromium
)
missing=()
for cmd in "${!tools[@]}"; do
  command -v "$cmd" >/dev/null 2>&1 || [ -x "/usr/sbin/$cmd" ] || missing+=("${tools[$cmd]}")
done
if [ ${#missing[@]} -gt 0 ]; then
  if [ "$(id -u)" -ne 0 ]; then
    echo "setup: missing Debian packages: ${missing[*]}" >&2
    echo "setup: run as root (sudo bash scripts/setup.sh) or: sudo apt-get install -y ${missing[*]}" >&2
    exit 1
  fi
  echo "setup: installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  # policy-rc.d keeps the packages' own services (bird, nginx, frr, prometheus and its exporters) from
  # starting on this machine:
  # the lab runs its own instances inside network namespaces.
  printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d && chmod +x /usr/sbin/policy-rc.d
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  rm -f /usr/sbin/policy-rc.d
fi
npm ci --no-fund --no-audit
