#!/usr/bin/env bash
# nginx style checks for ngx_siteflow_module/ and a few project rules:
#   - lines of at most 80 columns, no tabs, no trailing whitespace,
#     no "//" comments in C sources;
#   - no blocking libcurl call (curl_easy_perform), no blocking libpq
#     call (PQexec*, PQconnectdb*, PQprepare, PQcancel, PQping...) and no
#     sleep() in the module: workers must never block;
#   - sf_*.c/h (the pure logic) never include nginx headers;
#   - every directive of the command table has a docs/directives.md entry
#     with Syntax, Default and Context;
#   - the generated console (ngx_http_siteflow_console.c) matches
#     console.html (t/tools/gen-console.sh).

set -u
cd "$(dirname "$0")/../.."

fail=0
err() { echo "style: $*"; fail=1; }

for f in ngx_siteflow_module/*.[ch] config; do
    awk -v f="$f" '
        length($0) > 80 { printf "%s:%d: line longer than 80 columns\n", f, NR }
        /\t/            { printf "%s:%d: tab character\n", f, NR }
        /[ \t]+$/       { printf "%s:%d: trailing whitespace\n", f, NR }
    ' "$f" | grep . && fail=1
done

for f in ngx_siteflow_module/*.[ch]; do
    # "//" outside string literals (URLs inside strings are fine)
    sed -e 's/\\"//g' -e 's/"[^"]*"//g' "$f" | grep -n '//' | sed "s|^|$f:|" \
        | grep . && { err "C++ comment in $f"; }
done

if grep -rnE 'curl_easy_perform|[^_a-z]sleep\(|usleep\(' ngx_siteflow_module
then
    err "blocking call in the module"
fi

# libpq's blocking calls (the PostgreSQL queue uses the asynchronous API)
if grep -rnE 'PQexec|PQconnectdb|PQsetdbLogin|PQprepare\(|PQdescribePrepared\(|PQcancel\(|PQping\(' \
       ngx_siteflow_module
then
    err "blocking libpq call in the module"
fi

if grep -lE '#include <ngx_|#include "ngx_' ngx_siteflow_module/sf_*.[ch] \
       2>/dev/null
then
    err "pure sf_* files must not include nginx headers"
fi

if ! t/tools/gen-console.sh --stdout \
       | cmp -s - ngx_siteflow_module/ngx_http_siteflow_console.c
then
    err "ngx_http_siteflow_console.c is out of date with console.html," \
        "run t/tools/gen-console.sh"
fi

# one source of truth for the directive list
dirs=$(grep -ho 'ngx_string("siteflow_[a-z_]*")' \
           ngx_siteflow_module/ngx_http_siteflow_module.c \
       | sed 's/ngx_string("\(.*\)")/\1/' | sort -u)

for d in $dirs; do
    sect=$(awk -v d="$d" '
        $0 == "### " d { on = 1; next }
        on && /^### /  { exit }
        on             { print }
    ' docs/directives.md 2>/dev/null)

    if [ -z "$sect" ]; then
        err "docs/directives.md has no \"### $d\" section"
        continue
    fi

    for k in Syntax Default Context; do
        echo "$sect" | grep -q "^\*\*$k:\*\*" \
            || err "docs/directives.md: $d lacks **$k:**"
    done
done

[ $fail = 0 ] && echo "style: ok"
exit $fail
