#!/usr/bin/env bash
# Print the path of a complete nginx source tree (with src/core/nginx.c) of
# the version of the nginx under test, for builds that need the whole
# binary (the AddressSanitizer build).  Debian's nginx-dev ships the
# configure scripts and headers but no .c files, so the upstream tarball of
# Debian's source package is fetched with "apt-get source" and unpacked
# under DIR.  apt runs with a configuration of its own under DIR (deb-src
# twins of the machine's sources, its own lists and cache): nothing under
# /etc/apt or /var/lib/apt is written, and no root is needed.
#
#   t/tools/nginx-full-src.sh DIR
#
# NGINX_FULL_SRC, or an NGINX_SRC that is already complete, wins.

set -euo pipefail

dir=${1:?usage: nginx-full-src.sh DIR}

for t in "${NGINX_FULL_SRC:-}" "${NGINX_SRC:-}"; do
    if [ -n "$t" ] && [ -f "$t/src/core/nginx.c" ]; then
        echo "$t"
        exit 0
    fi
done

version=$(${NGINX_BIN:-/usr/sbin/nginx} -v 2>&1 | sed -n 's|.*nginx/\([0-9.]*\).*|\1|p')
tree="$dir/nginx-$version"

if [ -f "$tree/src/core/nginx.c" ]; then
    echo "$tree"
    exit 0
fi

mkdir -p "$dir"
dir=$(cd "$dir" && pwd)     # apt takes relative paths as under /etc/apt

if ! ls "$dir"/nginx_"$version".orig.tar.* >/dev/null 2>&1; then
    # a private apt configuration under DIR: the deb-src twins of the
    # machine's deb822 sources (same mirrors, suites and keys), its own
    # package lists and cache; /etc/apt is only read
    apt="$dir/apt"
    mkdir -p "$apt/sources.list.d" "$apt/lists/partial" \
             "$apt/cache/archives/partial"
    : > "$apt/sources.list"
    for f in /etc/apt/sources.list.d/*.sources; do
        [ -f "$f" ] || continue
        sed 's/^Types:.*/Types: deb-src/' "$f"
        echo
    done > "$apt/sources.list.d/deb-src.sources"
    # one-line style entries ("deb URI suite components")
    grep -hs '^deb ' /etc/apt/sources.list /etc/apt/sources.list.d/*.list \
        | sed 's/^deb /deb-src /' > "$apt/sources.list" || true
    opts=(-o "Dir::Etc::SourceList=$apt/sources.list"
          -o "Dir::Etc::SourceParts=$apt/sources.list.d"
          -o "Dir::State::Lists=$apt/lists"
          -o "Dir::Cache=$apt/cache"
          -o "APT::Sandbox::User=$(id -un)"
          -o "Debug::NoLocking=1")
    # the .dsc of a newer security upload may be missing from the mirror:
    # only the upstream tarball is needed (apt's output: DIR/apt.log)
    {
        apt-get "${opts[@]}" update \
        && (cd "$dir" && apt-get "${opts[@]}" source --download-only nginx)
    } > "$dir/apt.log" 2>&1 || true
fi

tarball=$(ls "$dir"/nginx_"$version".orig.tar.* 2>/dev/null | head -n 1)

if [ -z "$tarball" ]; then
    echo "nginx-full-src: could not fetch the nginx $version source" \
         "(see $dir/apt.log); set NGINX_FULL_SRC=/path/to/nginx-$version" >&2
    exit 1
fi

tar -xf "$tarball" -C "$dir"
echo "$tree"
