#!/usr/bin/env bash
# Build the Debian package libnginx-mod-http-siteflow_VERSION_ARCH.deb the
# way Debian builds its own nginx modules (debhelper, the nginx_mod build
# system and dh_nginx of nginx-dev), then check it with lintian.
#
#   t/tools/build-deb.sh [BUILD_DIR]       (default t/build-deb; make deb)
#
# The repository keeps its fixed top-level layout, so the packaging
# templates live in t/tools/debian/; this script assembles a source tree
# in BUILD_DIR/libnginx-mod-http-siteflow-VERSION/ (the module's sources,
# README, docs/, conf-examples/ and debian/ with a generated changelog) and
# runs "dpkg-buildpackage -b" there.  The .deb lands in BUILD_DIR.
# LINTIAN=0 skips lintian; any lintian error fails the build.

set -euo pipefail

top=$(cd "$(dirname "$0")/../.." && pwd)
out=${1:-$top/t/build-deb}
pkg=libnginx-mod-http-siteflow

for c in dpkg-buildpackage dh dh_nginx; do
    command -v "$c" >/dev/null || {
        echo "build-deb: $c is missing (make deps installs it)" >&2
        exit 1
    }
done

version=$(sed -n 's/^#define NGX_HTTP_SITEFLOW_VERSION *"\(.*\)"$/\1/p' \
              "$top/ngx_siteflow_module/ngx_http_siteflow.h")
[ -n "$version" ] || { echo "build-deb: no version" >&2; exit 1; }

mkdir -p "$out"
out=$(cd "$out" && pwd)
src="$out/$pkg-$version"
rm -rf "$src" "$out"/*.deb "$out"/*.changes "$out"/*.buildinfo \
       "$out"/*.ddeb
mkdir -p "$src"

cp -a "$top/config" "$top/README" "$top/ngx_siteflow_module" \
      "$top/docs" "$top/conf-examples" "$src/"
cp -a "$top/t/tools/debian" "$src/debian"

# the changelog names the version of the module and the date of the
# commit it is built from (reproducible), or now outside git
date=$(git -C "$top" log -1 --format=%aD 2>/dev/null || date -R)
cat > "$src/debian/changelog" <<END
$pkg ($version) unstable; urgency=medium

  * ngx_http_siteflow_module $version, packaged from the repository
    (make deb).

 -- ngx_siteflow_module authors <siteflow-module@example.com>  $date
END

(cd "$src" && dpkg-buildpackage -us -uc -b) > "$out/build.log" 2>&1 || {
    tail -n 40 "$out/build.log" >&2
    echo "build-deb: dpkg-buildpackage failed, see $out/build.log" >&2
    exit 1
}

deb=$(ls "$out/${pkg}_${version}_"*.deb)
echo "built $deb"

if [ "${LINTIAN:-1}" != 0 ]; then
    if ! command -v lintian >/dev/null; then
        echo "build-deb: lintian is missing (make deps installs it)" >&2
        exit 1
    fi
    # lintian refuses to run as root without --allow-root
    args=()
    [ "$(id -u)" = 0 ] && args+=(--allow-root)
    lintian "${args[@]}" --fail-on error "$out"/${pkg}_${version}_*.changes \
        | tee "$out/lintian.log"
    echo "lintian: no error"
fi
