#!/usr/bin/env bash
# Prepares this checkout on a fresh Debian machine: Debian packages (as root), npm packages and
# the build. Each step is skipped when already done, so a second run takes a few seconds.
set -euo pipefail
cd "$(dirname "$0")/.."

# Debian packages the project uses: iproute2 for the lab's namespaces, etcd for the etcd store
# (its tests run a real etcd), iputils-ping for the lab's own tests, arping/ndisc6/tcpdump as L2
# clients, BIRD, FRR, GoBGP and ExaBGP as BGP peers, kubectl (its kustomize renders deploy/),
# clang and libbpf-dev to build the eBPF datapath (bpftool to inspect it).
DEBIAN_PACKAGES=(iproute2 iputils-ping curl etcd-server arping ndisc6 tcpdump bird2 frr gobgpd exabgp kubectl clang libbpf-dev bpftool iptables nftables ipvsadm wrk)

missing=()
for pkg in "${DEBIAN_PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q 'install ok installed' || missing+=("$pkg")
done
if ((${#missing[@]} > 0)); then
  if [[ $(id -u) -ne 0 ]]; then
    echo "setup: missing Debian packages (${missing[*]}); run this script as root" >&2
    exit 1
  fi
  echo "setup: installing ${missing[*]}"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi

node_major=$(node -p 'process.versions.node.split(".")[0]' 2>/dev/null || echo 0)
if ((node_major < 20)); then
  echo "setup: Node.js 20 or newer is required (found $(node --version 2>/dev/null || echo none))" >&2
  exit 1
fi

# npm ci when node_modules is missing or older than the lock file.
if [[ ! -f node_modules/.package-lock.json || package-lock.json -nt node_modules/.package-lock.json ]]; then
  echo "setup: installing npm packages"
  npm ci --no-audit --no-fund --loglevel=error
fi

# Incremental TypeScript build into dist/ (fast when nothing changed).
npm run --silent build
