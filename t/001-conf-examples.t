# vim:set ft=perl ts=4 sw=4 et:
#
# Invariant: every complete configuration shipped in conf-examples/ passes
# "nginx -t" with the module under test (the module path is substituted),
# and the Ship API example's guarded location behaves as documented.
# The examples name their mapping files relative to the configuration's
# directory (siteflow/mapping.json, as /etc/nginx/siteflow/mapping.json):
# conf-examples/*.json are copied there, so the mapping examples are
# loaded and validated by the same "nginx -t".

use lib 't/lib';
use Siteflow::Test;
use Siteflow::Sign;
use File::Temp qw(tempdir);

repeat_each(1);
plan 'no_plan';

{
    my $nginx = $ENV{TEST_NGINX_BINARY} || 'nginx';
    my $module = (split ' ', $ENV{TEST_NGINX_LOAD_MODULES} || '')[0];
    my $dir = tempdir(CLEANUP => 1);
    # the spool is in here: the worker processes' user ("user", or nobody)
    # must reach it, which nginx -t checks
    chmod 0755, $dir;
    mkdir "$dir/logs";
    mkdir "$dir/siteflow";

    for my $json (glob "conf-examples/*.json") {
        my ($base) = $json =~ m{([^/]+)$};
        open my $in, '<', $json or die "$json: $!";
        open my $out, '>', "$dir/siteflow/$base" or die "$base: $!";
        print $out do { local $/; <$in> };
        close $in;
        close $out;
    }

    # mapping files are referred to by name, next to the configuration
    for my $json (glob "conf-examples/*.json") {
        system('cp', $json, $dir) == 0 or die "cp $json: $?";
    }

    for my $file (sort glob "conf-examples/*.conf") {
        open my $in, '<', $file or die "$file: $!";
        my $conf = do { local $/; <$in> };
        close $in;

        if (defined $module) {
            $conf =~ s{^\s*load_module\s+\S*ngx_http_siteflow_module\.so;}
                      {load_module $module;}m;
            $conf =~ s{__MODULE__}{$module}g;
            # the spool of the examples, kept out of the machine's /var
            $conf =~ s{/var/spool/nginx-siteflow}{$dir/spool}g;
        }

        my $tmp = "$dir/test.conf";
        open my $out, '>', $tmp or die "$tmp: $!";
        print $out $conf;
        close $out;

        my $res = `$nginx -t -p $dir/ -c $tmp 2>&1`;
        Test::More::is($?, 0, "nginx -t accepts $file")
            or Test::More::diag($res);
    }
}

run_tests();

__DATA__

=== TEST 1: the ship-api.conf guarded location, signed and unsigned
--- http_config
    siteflow_zone siteflow:10m;
--- config
    location /siteflow/ship/ {
        siteflow_verify_signature on;
        siteflow_partner example-partner 0123456789abcdef0123456789abcdef01234567;
        siteflow_shipment_validate off;
        proxy_pass http://127.0.0.1:$TEST_NGINX_SERVER_PORT/backend/;
    }
    location /backend/ {
        return 200 "label\n";
    }
--- more_headers eval
[Siteflow::Sign::headers('example-partner', $Siteflow::Sign::KEY), ""]
--- request eval
["POST /siteflow/ship/shipment\n{}", "POST /siteflow/ship/shipment\n{}"]
--- error_code eval
[200, 401]
--- response_body eval
["label\n", qq({"status":{"code":"error","message":"missing X-SiteFlow-Nonce header"}}\n)]
--- no_error_log
[alert]
[crit]
