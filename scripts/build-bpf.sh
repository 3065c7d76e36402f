#!/usr/bin/env bash
# Compiles the BPF datapath: bpf/progs/*.c -> dist/bpf/NAME.o and bpf/testdata/*.c ->
# dist/bpf/testdata/NAME.o. An object newer than its source and every shared header is kept.
set -euo pipefail
cd "$(dirname "$0")/.."

command -v clang >/dev/null || { echo "build-bpf: clang not found: install the Debian package 'clang' (apt-get install clang)" >&2; exit 1; }
[ -f /usr/include/bpf/bpf_helpers.h ] || { echo "build-bpf: /usr/include/bpf/bpf_helpers.h not found: install the Debian package 'libbpf-dev' (apt-get install libbpf-dev)" >&2; exit 1; }

# <linux/bpf.h> pulls <asm/types.h>, which Debian keeps in the multiarch include directory.
multiarch=$(gcc -print-multiarch 2>/dev/null || true)
[ -n "$multiarch" ] || multiarch="$(uname -m)-linux-gnu"
arch=$(uname -m)
case "$arch" in x86_64) target_arch=x86 ;; aarch64) target_arch=arm64 ;; *) target_arch=$arch ;; esac
flags=(-O2 -g -target bpf "-D__TARGET_ARCH_${target_arch}" "-I/usr/include/${multiarch}" -Ibpf/progs -Wall -Werror)

shopt -s nullglob
headers=(bpf/progs/*.h)

# up_to_date OBJ SRC: true when OBJ is newer than SRC and than every shared header.
up_to_date() {
  [ -f "$1" ] && [ "$1" -nt "$2" ] || return 1
  local h
  for h in "${headers[@]}"; do [ "$1" -nt "$h" ] || return 1; done
}

build() { # build SRC OUTDIR
  local src=$1 out="$2/$(basename "${1%.c}").o"
  mkdir -p "$2"
  up_to_date "$out" "$src" && return 0
  echo "build-bpf: $src -> $out"
  # Compile to a temporary name so a failed build never leaves a fresh-looking object behind.
  clang "${flags[@]}" -c "$src" -o "$out.$$.tmp" || { rm -f "$out.$$.tmp"; exit 1; }
  mv "$out.$$.tmp" "$out"
}

for src in bpf/progs/*.c; do build "$src" dist/bpf; done
for src in bpf/testdata/*.c; do build "$src" dist/bpf/testdata; done
