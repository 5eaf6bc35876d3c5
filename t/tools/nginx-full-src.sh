#!/usr/bin/env bash
# Print the path of a complete nginx source tree (with src/core/nginx.c) of
# the version of the nginx under test, for builds that need the whole
# binary (the AddressSanitizer build).  Debian's nginx-dev ships headers
# only, so the upstream tarball of Debian's source package is fetched with
# "apt-get source" (deb-src entries for the configured mirrors are added
# when missing) and unpacked under DIR.
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

if ! ls "$dir"/nginx_"$version".orig.tar.* >/dev/null 2>&1; then
    list=/etc/apt/sources.list.d/siteflow-deb-src.sources
    if ! grep -rqs '^Types:.*deb-src\|^deb-src' /etc/apt/sources.list \
             /etc/apt/sources.list.d/; then
        if [ "$(id -u)" != 0 ]; then
            echo "nginx-full-src: need root to add deb-src entries," \
                 "or set NGINX_FULL_SRC=/path/to/nginx-$version" >&2
            exit 1
        fi
        for f in /etc/apt/sources.list.d/*.sources; do
            [ -f "$f" ] || continue
            sed 's/^Types:.*/Types: deb-src/' "$f"
            echo
        done > "$list"
        # one-line style entries ("deb URI suite components")
        grep -hs '^deb ' /etc/apt/sources.list /etc/apt/sources.list.d/*.list \
            | sed 's/^deb /deb-src /' > "${list%.sources}.list" || true
        [ -s "${list%.sources}.list" ] || rm -f "${list%.sources}.list"
        apt-get update -qq >&2
    fi
    # the .dsc of a newer security upload may be missing from the mirror:
    # only the upstream tarball is needed
    (cd "$dir" && apt-get source --download-only "nginx" >&2) || true
fi

tarball=$(ls "$dir"/nginx_"$version".orig.tar.* 2>/dev/null | head -n 1)

if [ -z "$tarball" ]; then
    echo "nginx-full-src: could not fetch the nginx $version source;" \
         "set NGINX_FULL_SRC=/path/to/nginx-$version" >&2
    exit 1
fi

tar -xf "$tarball" -C "$dir"
echo "$tree"
