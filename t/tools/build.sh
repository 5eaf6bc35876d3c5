#!/usr/bin/env bash
# Build ngx_http_siteflow_module.so (and, with --full, an nginx binary)
# against an nginx source tree.
#
#   t/tools/build.sh [--full] [--cc-opt "..."] [--ld-opt "..."] BUILD_DIR
#
# NGINX_SRC (default /usr/share/nginx/src, Debian's nginx-dev) is copied to
# BUILD_DIR/nginx and configured there, so the tree itself is never
# modified.  Configure flags come from, in order:
#   - NGINX_CONFIGURE_ARGS if set;
#   - Debian's conf_flags file next to the tree (nginx-dev);
#   - NGX_CONFIGURE of an already configured tree (objs/ngx_auto_config.h);
#   - otherwise just --with-compat.
# The module is built with --with-compat so it loads into an nginx built
# from the same version with --with-compat (Debian's /usr/sbin/nginx).

set -euo pipefail

full=0
cc_opt=""
ld_opt=""

while [ $# -gt 1 ]; do
    case "$1" in
        --full)   full=1; shift ;;
        --cc-opt) cc_opt="$2"; shift 2 ;;
        --ld-opt) ld_opt="$2"; shift 2 ;;
        *) break ;;
    esac
done

build=${1:?usage: build.sh [--full] [--cc-opt ..] [--ld-opt ..] BUILD_DIR}
top=$(cd "$(dirname "$0")/../.." && pwd)
src=${NGINX_SRC:-/usr/share/nginx/src}

if [ ! -x "$src/configure" ] && [ ! -x "$src/auto/configure" ]; then
    echo "build.sh: no nginx source tree at \"$src\";" \
         "install it with \"apt-get install nginx-dev\" or set NGINX_SRC" >&2
    exit 1
fi

mkdir -p "$build"
build=$(cd "$build" && pwd)
stamp="$build/.configured"
tree="$build/nginx-src"

args=()
if [ -n "${NGINX_CONFIGURE_ARGS:-}" ]; then
    # shellcheck disable=SC2206
    args=($NGINX_CONFIGURE_ARGS)
elif [ -f "$src/conf_flags" ]; then
    # shellcheck disable=SC1091
    . "$src/conf_flags"
    args=("${NGX_CONF_FLAGS[@]}")
elif [ -f "$src/objs/ngx_auto_config.h" ]; then
    line=$(sed -n 's/^#define NGX_CONFIGURE " *\(.*\)"$/\1/p' \
               "$src/objs/ngx_auto_config.h")
    # drop other dynamic modules and cc/ld options of the original build
    eval "set -- $line"
    for a in "$@"; do
        case "$a" in
            --add-dynamic-module=*|--add-module=*) ;;
            --with-cc-opt=*|--with-ld-opt=*) ;;
            *) args+=("$a") ;;
        esac
    done
fi

case " ${args[*]:-} " in
    *" --with-compat "*) ;;
    *) args+=(--with-compat) ;;
esac

args+=("--add-dynamic-module=$top")
[ -n "$cc_opt" ] && args+=("--with-cc-opt=$cc_opt")
[ -n "$ld_opt" ] && args+=("--with-ld-opt=$ld_opt")

want="$src ${args[*]} full=$full config=$(cksum < "$top/config")"

if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
    rm -rf "$tree"
    mkdir -p "$tree"
    if [ -x "$src/configure" ]; then
        cp -a "$src/." "$tree/"
    else
        cp -a "$src/." "$tree/"
        cp "$tree/auto/configure" "$tree/configure"
    fi
    rm -rf "$tree/objs" "$tree/Makefile"
    (cd "$tree" && ./configure "${args[@]}") > "$build/configure.log" 2>&1 || {
        tail -n 20 "$build/configure.log" >&2
        exit 1
    }
    echo "$want" > "$stamp"
fi

jobs=$(nproc 2>/dev/null || echo 2)

if [ "$full" = 1 ]; then
    make -C "$tree" -f objs/Makefile -j"$jobs" binary modules >/dev/null
else
    make -C "$tree" -f objs/Makefile -j"$jobs" modules >/dev/null
fi

# a new file renamed into place, never a copy over the old one: an nginx
# that has the old .so (or binary) mapped keeps its pages intact
install_new() {
    cp "$1" "$2.new.$$" && mv -f "$2.new.$$" "$2"
}
install_new "$tree/objs/ngx_http_siteflow_module.so" \
            "$build/ngx_http_siteflow_module.so"
[ "$full" = 1 ] && install_new "$tree/objs/nginx" "$build/nginx"
echo "built $build/ngx_http_siteflow_module.so"
