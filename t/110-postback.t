# vim:set ft=perl ts=4 sw=4 et:
#
# Invariant: every SiteFlow postback about an order this edge sent becomes
# exactly one PrintNow update (HTTP Basic), in the order the postbacks were
# accepted, even across a PrintNow outage: shipped -> PATCH .../shipped
# with the tracking data and customer notification (or per item), every
# other event -> PATCH .../status with the mapping's status and a comment
# naming the event (and SiteFlow's messages).  A postback is answered 200
# {"job"} only once durable; duplicates and events that would move an
# order backwards are answered 200 {"skipped"} and change nothing; unknown
# orders 404, unknown events 422, malformed bodies 400, no token 401.
# Our own updates are remembered: PrintNow's order_updated hook that
# echoes them sends nothing to SiteFlow.  What each published Handlebars
# template renders (t/unit/postback/template-*.json, rendered from
# conf-examples/siteflow-postback-templates/*.hbs) is accepted and applied.
#
# Each block starts with fresh mocks and spool (Siteflow::Flow); the order
# is first sent to the mock SiteFlow through the hook (send_and_wait in
# --- init), so that it is in the sent-orders index.  The reports list the
# PrintNow calls (PN ...) with their canonical JSON bodies.

use lib 't/lib';
use Siteflow::Test;
use Siteflow::Flow;

repeat_each(1);
plan 'no_plan';
no_shuffle();
flow_setup();
run_tests();

__DATA__

=== TEST 1: every event, each applied once, in acceptance order, with its mapped status and comment (messages for errors)
--- http_config
    siteflow_zone sf:4m;
    siteflow_spool $TEST_NGINX_SPOOL;
    siteflow_retry_backoff 100ms 500ms;
--- config eval: ::storefront_conf()
--- init
::send_and_wait(5001);
--- request eval
[::pb_req(event => 'submission_error', sourceOrderId => 'PN-5001',
          errorsClean => ['sku: SKU not found - At path orderData.items[0].sku']),
 ::pb_req(event => 'received', sourceOrderId => 'PN-5001'),
 ::pb_req(event => 'printready', sourceOrderId => 'PN-5001'),
 ::pb_req(event => 'error', sourceOrderId => 'PN-5001', message => 'Artwork unavailable'),
 ::pb_req(event => 'subbatch_scanned', sourceOrderId => 'PN-5001'),
 ::pb_req(event => 'batch_complete', sourceOrderId => 'PN-5001'),
 ::pb_req(event => 'complete', sourceOrderId => 'PN-5001'),
 ::pb_req(event => 'cancelled', sourceOrderId => 'PN-5001'),
 ::pb_req(event => 'shipped', sourceOrderId => 'PN-5001', shipmentIndex => 0,
          trackingNumber => '1Z999AA10123456784',
          trackingUrl => 'https://www.ups.com/track?tracknum=1Z999AA10123456784',
          carrier => 'UPS Ground', shipDate => '2024-05-03')]
--- error_code eval
[(200) x 9]
--- response_body_filters eval
[(map { [::report(mocks => [], wait => [[printnow => 'PATCH *', $_]])] } 1 .. 8),
 [::report(wait => [[printnow => 'PATCH *', 9]], hide => qr{^GET }, mocks => ['printnow'])]]
--- response_body eval
[("answer {\"job\":\"ID\"}\n") x 8,
'answer {"job":"ID"}
PN PATCH /api/v2/order/5001/status basic {"comment":"SiteFlow: submission_error: sku: SKU not found - At path orderData.items[0].sku","status":"Submission Error"} -> 200
PN PATCH /api/v2/order/5001/status basic {"comment":"SiteFlow: received","status":"Submitted"} -> 200
PN PATCH /api/v2/order/5001/status basic {"comment":"SiteFlow: printready","status":"In Production"} -> 200
PN PATCH /api/v2/order/5001/status basic {"comment":"SiteFlow: error: Artwork unavailable","status":"On Hold"} -> 200
PN PATCH /api/v2/order/5001/status basic {"comment":"SiteFlow: subbatch_scanned","status":"In Production"} -> 200
PN PATCH /api/v2/order/5001/status basic {"comment":"SiteFlow: batch_complete","status":"Production Complete"} -> 200
PN PATCH /api/v2/order/5001/status basic {"comment":"SiteFlow: complete","status":"Production Complete"} -> 200
PN PATCH /api/v2/order/5001/status basic {"comment":"SiteFlow: cancelled","status":"Cancelled"} -> 200
PN PATCH /api/v2/order/5001/shipped basic {"carrier":"UPS Ground","notify_customer":true,"ship_date":"2024-05-03","tracking_number":"1Z999AA10123456784","tracking_url":"https://www.ups.com/track?tracknum=1Z999AA10123456784"} -> 200
']
--- no_error_log
[alert]
[crit]



=== TEST 2: SiteFlow's own status names in "status", aliases in "event", PUT as well as POST, a Bearer token
--- http_config
    siteflow_zone sf:4m;
    siteflow_spool $TEST_NGINX_SPOOL;
    siteflow_retry_backoff 100ms 500ms;
--- config eval: ::storefront_conf()
--- init
::send_and_wait(5001);
--- request eval
[::pb_req(-token => undef, status => 'printready', sourceOrderId => 'PN-5001'),
 ::pb_req(-method => 'PUT', event => 'Shipment Dispatched', sourceOrderId => 'PN-5001',
          trackingNumber => 'TRK1', shipment => { carrier => { code => 'ups', service => 'ground' } },
          timestamp => '2024-05-04T08:00:00.000Z')]
--- more_headers
Authorization: Bearer pb-51e0a8c4-not-real
--- error_code eval
[200, 200]
--- response_body_filters eval
[[::report(mocks => [], wait => [[printnow => 'PATCH *', 1]])],
 [::report(wait => [[printnow => 'PATCH *', 2]], hide => qr{^GET }, mocks => ['printnow'])]]
--- response_body eval
["answer {\"job\":\"ID\"}\n",
'answer {"job":"ID"}
PN PATCH /api/v2/order/5001/status basic {"comment":"SiteFlow: printready","status":"In Production"} -> 200
PN PATCH /api/v2/order/5001/shipped basic {"carrier":"ups ground","notify_customer":true,"ship_date":"2024-05-04","tracking_number":"TRK1"} -> 200
']
--- no_error_log
[alert]
[crit]



=== TEST 3: refusals: GET 405, no token 401, wrong token 401, malformed 400, unknown event 422, unknown order 404; nothing updated
--- http_config
    siteflow_zone sf:4m;
    siteflow_spool $TEST_NGINX_SPOOL;
    siteflow_retry_backoff 100ms 500ms;
--- config eval: ::storefront_conf()
--- init
::send_and_wait(5001);
--- request eval
["GET /postback?token=pb-51e0a8c4-not-real",
 ::pb_req(-token => undef, event => 'printready', sourceOrderId => 'PN-5001'),
 ::pb_req(-token => 'pb-51e0a8c5-not-real', event => 'printready', sourceOrderId => 'PN-5001'),
 "POST /postback?token=pb-51e0a8c4-not-real\n{\"event\":\"printready\",\n\"sourceOrderId\":",
 ::pb_req(event => 'Order Reprinted', sourceOrderId => 'PN-5001'),
 ::pb_req(event => 'printready', sourceOrderId => 'PN-9999'),
 ::pb_req(event => 'printready'),
 "GET /ping"]
--- error_code eval
[405, 401, 401, 400, 422, 404, 400, 200]
--- response_body_filters eval
[[], [], [], [], [], [], [], [::report(hide => qr{^GET }, mocks => ['printnow'], jobs => 1)]]
--- response_body_like eval
['^\{"error":"(?:[^"\\\\]|\\\\.)+"\}\s*$',
 '^\{"error":"(?:[^"\\\\]|\\\\.)+"\}\s*$',
 '^\{"error":"(?:[^"\\\\]|\\\\.)+"\}\s*$',
 '^\{"error":"invalid JSON[^"]*line 2(?:[^"\\\\]|\\\\.)*"\}\s*$',
 '^\{"error":"unknown event \\\\"Order Reprinted\\\\""\}\s*$',
 '^\{"error":"(?:[^"\\\\]|\\\\.)+"\}\s*$',
 '^\{"error":"\\\\"sourceOrderId\\\\" is required"\}\s*$',
 '^answer pong
(?:job order 5001 done
)?$']
--- no_error_log
[alert]
[crit]



=== TEST 4: duplicates and reordered postbacks: one update each; nothing moves the order backwards
--- http_config
    siteflow_zone sf:4m;
    siteflow_spool $TEST_NGINX_SPOOL;
    siteflow_retry_backoff 100ms 500ms;
--- config eval: ::storefront_conf()
--- init
::send_and_wait(5001);
--- request eval
[::pb_req(event => 'printready', sourceOrderId => 'PN-5001'),
 ::pb_req(event => 'printready', sourceOrderId => 'PN-5001', timestamp => '2024-05-01T12:05:00.000Z'),
 ::pb_req(event => 'shipped', sourceOrderId => 'PN-5001', trackingNumber => 'TRK1', shipDate => '2024-05-02'),
 ::pb_req(event => 'complete', sourceOrderId => 'PN-5001'),
 ::pb_req(event => 'printready', sourceOrderId => 'PN-5001'),
 ::pb_req(event => 'shipped', sourceOrderId => 'PN-5001', trackingNumber => 'TRK1', shipDate => '2024-05-02'),
 ::pb_req(event => 'cancelled', sourceOrderId => 'PN-5001')]
--- error_code eval
[(200) x 7]
--- response_body_filters eval
[[::report(mocks => [], wait => [[printnow => 'PATCH *', 1]])],
 [::report(mocks => [], answer => 'skipped:^duplicate')],
 [::report(mocks => [], wait => [[printnow => 'PATCH *', 2]])],
 [::report(mocks => [], answer => 'skipped:.')],
 [::report(mocks => [], answer => 'skipped:.')],
 [::report(mocks => [], answer => 'skipped:^duplicate')],
 [::report(answer => 'skipped:.', hide => qr{^GET }, mocks => ['printnow'])]]
--- response_body eval
["answer {\"job\":\"ID\"}\n",
 "answer {\"skipped\": ~ /^duplicate/}\n",
 "answer {\"job\":\"ID\"}\n",
 "answer {\"skipped\": ~ /./}\n",
 "answer {\"skipped\": ~ /./}\n",
 "answer {\"skipped\": ~ /^duplicate/}\n",
'answer {"skipped": ~ /./}
PN PATCH /api/v2/order/5001/status basic {"comment":"SiteFlow: printready","status":"In Production"} -> 200
PN PATCH /api/v2/order/5001/shipped basic {"notify_customer":true,"ship_date":"2024-05-02","tracking_number":"TRK1"} -> 200
']
--- no_error_log
[alert]
[crit]



=== TEST 5: PrintNow down: postbacks still accepted (durable); after recovery the updates arrive, in acceptance order
--- http_config
    siteflow_zone sf:4m;
    siteflow_spool $TEST_NGINX_SPOOL;
    siteflow_retry_backoff 100ms 500ms;
--- config eval: ::storefront_conf()
--- init
::send_and_wait(5001);
::mock_down('printnow');
--- request eval
[::pb_req(event => 'printready', sourceOrderId => 'PN-5001'),
 ::pb_req(event => 'complete', sourceOrderId => 'PN-5001'),
 ::pb_req(event => 'shipped', sourceOrderId => 'PN-5001', trackingNumber => 'TRK9', shipDate => '2024-05-02')]
--- error_code eval
[200, 200, 200]
--- response_body_filters eval
[[::report(mocks => [], idle => 0)],
 [::report(mocks => [], idle => 0)],
 [::report(do => sub {
               my $e = ::wait_jobs('update retrying after a failed attempt', sub {
                   grep { $_->{kind} eq 'update' && $_->{state} eq 'retrying'
                          && $_->{attempts} >= 1 } @{ $_[0] } });
               my @l = ($e || 'seen retrying');
               my $j = ::admin_jobs(order_id => 5001) // [];
               push @l, 'updates queued: '
                   . scalar(grep { $_->{kind} eq 'update' && $_->{state} =~ /^(?:pending|retrying)$/ } @$j);
               ::mock_up('printnow');
               @l },
           wait => [[printnow => 'PATCH *', 3]], hide => qr{^GET }, mocks => ['printnow'])]]
--- response_body eval
["answer {\"job\":\"ID\"}\n",
 "answer {\"job\":\"ID\"}\n",
'answer {"job":"ID"}
seen retrying
updates queued: 3
PN PATCH /api/v2/order/5001/status basic {"comment":"SiteFlow: printready","status":"In Production"} -> 200
PN PATCH /api/v2/order/5001/status basic {"comment":"SiteFlow: complete","status":"Production Complete"} -> 200
PN PATCH /api/v2/order/5001/shipped basic {"notify_customer":true,"ship_date":"2024-05-02","tracking_number":"TRK9"} -> 200
']
--- no_error_log
[alert]
[crit]



=== TEST 6: PrintNow answering 503 three times: retried, then the update arrives once; a later update waits for it
--- http_config
    siteflow_zone sf:4m;
    siteflow_spool $TEST_NGINX_SPOOL;
    siteflow_retry_backoff 100ms 500ms;
--- config eval: ::storefront_conf()
--- init
::send_and_wait(5001);
::pn_rules({ on => 'PATCH /api/v2/order/5001/status', status => 503, times => 3 });
--- request eval
[::pb_req(event => 'printready', sourceOrderId => 'PN-5001'),
 ::pb_req(event => 'shipped', sourceOrderId => 'PN-5001', trackingNumber => 'TRK2', shipDate => '2024-05-02')]
--- error_code eval
[200, 200]
--- response_body_filters eval
[[::report(mocks => [], idle => 0)],
 [::report(wait => [[printnow => 'PATCH *', 5]], hide => qr{^GET }, mocks => ['printnow'])]]
--- response_body eval
["answer {\"job\":\"ID\"}\n",
'answer {"job":"ID"}
PN PATCH /api/v2/order/5001/status basic {"comment":"SiteFlow: printready","status":"In Production"} -> 503
PN PATCH /api/v2/order/5001/status basic {"comment":"SiteFlow: printready","status":"In Production"} -> 503
PN PATCH /api/v2/order/5001/status basic {"comment":"SiteFlow: printready","status":"In Production"} -> 503
PN PATCH /api/v2/order/5001/status basic {"comment":"SiteFlow: printready","status":"In Production"} -> 200
PN PATCH /api/v2/order/5001/shipped basic {"notify_customer":true,"ship_date":"2024-05-02","tracking_number":"TRK2"} -> 200
']
--- no_error_log
[alert]
[crit]



=== TEST 7: siteflow_ship_per_item on: one PATCH per item of the shipment (items of another shipment left out)
--- http_config
    siteflow_zone sf:4m;
    siteflow_spool $TEST_NGINX_SPOOL;
    siteflow_retry_backoff 100ms 500ms;
--- config eval: ::storefront_conf(extra => '    siteflow_ship_per_item on;')
--- init
::send_and_wait(5002);
--- request eval
::pb_req(event => 'shipped', sourceOrderId => 'PN-5002', shipmentIndex => 0,
         trackingNumber => 'TRK3', shipDate => '2024-05-02',
         items => [{ sourceItemId => '101', shipmentIndex => 0 },
                   { sourceItemId => '102', shipmentIndex => 1 },
                   { sourceItemId => '103', shipmentIndex => 0 }])
--- error_code: 200
--- response_body_filters eval
::report(wait => [[printnow => 'PATCH *', 2]], hide => qr{^GET }, mocks => ['printnow'], sort => 1)
--- response_body
answer {"job":"ID"}
PN PATCH /api/v2/order/5002/shipped/101 basic {"notify_customer":true,"ship_date":"2024-05-02","tracking_number":"TRK3"} -> 200
PN PATCH /api/v2/order/5002/shipped/103 basic {"notify_customer":true,"ship_date":"2024-05-02","tracking_number":"TRK3"} -> 200
--- no_error_log
[alert]
[crit]



=== TEST 8: the mapping's printnow section shapes the bodies (shop2), and an event without a mapped status is skipped
--- http_config eval
'    siteflow_zone sf:4m;
    siteflow_spool $TEST_NGINX_SPOOL;
    siteflow_retry_backoff 100ms 500ms;
    server {
        listen 127.0.0.1:$TEST_NGINX_SHOP2_PORT;
        server_name shop2;
' . ::storefront_conf(shop => 'shop2') . '    }
'
--- config eval: ::storefront_conf()
--- init
::send_and_wait(7001, shop => 'shop2');
--- request
GET /ping
--- response_body_filters eval
::report(do => sub {
             my @a = map { my $r = ::postback($_, shop => 'shop2');
                           "$r->{status} " . ($r->{body} =~ s/"job":"[^"]+"/"job":"ID"/r =~ s/"skipped":"(?:[^"\\]|\\.)*"/"skipped":"..."/r =~ s/\s+$//r) }
                 { event => 'received', sourceOrderId => 'SHOP2-7001' },
                 { event => 'printready', sourceOrderId => 'SHOP2-7001' },
                 { event => 'shipped', sourceOrderId => 'SHOP2-7001', trackingNumber => 'TRK4',
                   trackingUrl => 'https://t.example/TRK4', carrier => 'DHL', shipDate => '2024-05-02' };
             @a },
         wait => [[printnow => 'PATCH *', 2]], hide => qr{^GET }, mocks => ['printnow'],
         admin => [undef, 'shop2'])
--- response_body
answer pong
200 {"skipped":"..."}
200 {"job":"ID"}
200 {"job":"ID"}
PN PATCH /api/v2/order/7001/status basic {"note":"SiteFlow: printready","notify":false,"status":"Printing"} -> 200
PN PATCH /api/v2/order/7001/shipped basic {"carrier":"DHL","date":"2024-05-02","email_customer":true,"link":"https://t.example/TRK4","tracking":"TRK4"} -> 200
--- no_error_log
[alert]
[crit]



=== TEST 9: echo suppression with the order flow: after "shipped" reached PrintNow, its order_updated hooks send nothing to SiteFlow
--- http_config
    siteflow_zone sf:4m;
    siteflow_spool $TEST_NGINX_SPOOL;
    siteflow_retry_backoff 100ms 500ms;
--- config eval: ::storefront_conf()
--- init
::send_and_wait(5001);
--- request eval
[::pb_req(event => 'shipped', sourceOrderId => 'PN-5001', trackingNumber => 'TRK5', shipDate => '2024-05-02'),
 "POST /hook?token=hook-9f3b2c7d-not-real\n{\"event\":\"order_updated\",\"id\":5001}",
 "POST /hook?token=hook-9f3b2c7d-not-real\n{\"event\":\"order_updated\",\"order\":{\"id\":5001,\"status\":\"Shipped\"}}"]
--- error_code eval
[200, 200, 200]
--- response_body_filters eval
[[::report(mocks => [], wait => [[printnow => 'PATCH *', 1]])],
 [::report(mocks => [], answer => 'skipped:echo')],
 [::report(answer => 'skipped:echo', hide => qr{^GET /api/v2})]]
--- response_body eval
["answer {\"job\":\"ID\"}\n",
 "answer {\"skipped\": ~ /echo/}\n",
'answer {"skipped": ~ /echo/}
PN PATCH /api/v2/order/5001/shipped basic {"notify_customer":true,"ship_date":"2024-05-02","tracking_number":"TRK5"} -> 200
SF POST /api/order/validate oneflow PN-5001 fields-ok -> 200
SF POST /api/order oneflow PN-5001 fields-ok -> 201
']
--- no_error_log
[alert]
[crit]



=== TEST 10: what each published template renders (t/unit/postback/template-*.json) is accepted and applied
--- http_config
    siteflow_zone sf:4m;
    siteflow_spool $TEST_NGINX_SPOOL;
    siteflow_retry_backoff 100ms 500ms;
--- config eval: ::storefront_conf()
--- init
::send_and_wait(5001);
--- request eval
my $dir = "$Siteflow::Flow::ROOT/t/unit/postback";
[map { my $b = Siteflow::Flow::_slurp("$dir/template-$_.json");
       $b =~ s/"PN-500\d"/"PN-5001"/;
       "POST /postback?token=pb-51e0a8c4-not-real\n$b" }
 qw(submission_error received printready subbatch_scanned batch_complete
    complete error cancelled shipment_shipped)]
--- error_code eval
[(200) x 9]
--- response_body_filters eval
[(map { [::report(mocks => [], wait => [[printnow => 'PATCH *', $_]])] } 1 .. 8),
 [::report(do => sub {
      my $hbs = CORE::join ' ', sort map { m{/([^/]+)\.hbs$} } glob "$Siteflow::Flow::ROOT/conf-examples/siteflow-postback-templates/*.hbs";
      my $got = CORE::join ' ', sort map { m{/template-([^/]+)\.json$} } glob "$Siteflow::Flow::ROOT/t/unit/postback/template-*.json";
      $hbs eq $got ? 'every template has its rendering' : "templates: $hbs; renderings: $got" },
   wait => [[printnow => 'PATCH *', 9]], hide => qr{^GET }, mocks => ['printnow'])]]
--- response_body eval
[("answer {\"job\":\"ID\"}\n") x 8,
'answer {"job":"ID"}
every template has its rendering
PN PATCH /api/v2/order/5001/status basic {"comment":"SiteFlow: submission_error: sku: SKU not found - At path orderData.items[0].sku; destination: Destination \'acme\' unknown; Unknown error","status":"Submission Error"} -> 200
PN PATCH /api/v2/order/5001/status basic {"comment":"SiteFlow: received","status":"Submitted"} -> 200
PN PATCH /api/v2/order/5001/status basic {"comment":"SiteFlow: printready","status":"In Production"} -> 200
PN PATCH /api/v2/order/5001/status basic {"comment":"SiteFlow: subbatch_scanned","status":"In Production"} -> 200
PN PATCH /api/v2/order/5001/status basic {"comment":"SiteFlow: batch_complete","status":"Production Complete"} -> 200
PN PATCH /api/v2/order/5001/status basic {"comment":"SiteFlow: complete","status":"Production Complete"} -> 200
PN PATCH /api/v2/order/5001/status basic {"comment":"SiteFlow: error: fetch: Impossible de récupérer « carte.pdf » (HTTP 404) - At path orderData.items[0].components[0].path; Preflight failed: <TrimBox> missing & bleed < 3mm, \"strict\" mode","status":"On Hold"} -> 200
PN PATCH /api/v2/order/5001/status basic {"comment":"SiteFlow: cancelled","status":"Cancelled"} -> 200
PN PATCH /api/v2/order/5001/shipped basic {"carrier":"ups ground","notify_customer":true,"ship_date":"2024-05-02","tracking_number":"1Z999AA10123456784","tracking_url":"https://www.ups.com/track?loc=en_US&tracknum=1Z999AA10123456784"} -> 200
']
--- no_error_log
[alert]
[crit]



=== TEST 11: hostile tracking number, carrier or tracking URL (they reach the customer's e-mail): 400 naming the field, nothing updated
--- http_config
    siteflow_zone sf:4m;
    siteflow_spool $TEST_NGINX_SPOOL;
    siteflow_retry_backoff 100ms 500ms;
--- config eval: ::storefront_conf()
--- init
::send_and_wait(5001);
--- request eval
[::pb_req(event => 'shipped', sourceOrderId => 'PN-5001',
          trackingNumber => '1Z<a href="https://evil.test/">click</a>'),
 ::pb_req(event => 'shipped', sourceOrderId => 'PN-5001', trackingNumber => 'X' x 65),
 ::pb_req(event => 'shipped', sourceOrderId => 'PN-5001', trackingNumber => 'TRK1',
          carrier => "UPS\x{a0}Ground"),
 ::pb_req(event => 'shipped', sourceOrderId => 'PN-5001', trackingNumber => 'TRK1',
          shipment => { carrier => { code => 'ups', service => 'ground&quot;&gt;&lt;img src=x&gt;' } }),
 ::pb_req(event => 'shipped', sourceOrderId => 'PN-5001', trackingNumber => 'TRK1',
          trackingUrl => 'javascript:alert(1)'),
 ::pb_req(event => 'shipped', sourceOrderId => 'PN-5001', trackingNumber => 'TRK1',
          trackingUrl => 'https://t.example/"><script>x</script>'),
 "GET /ping"]
--- error_code eval
[400, 400, 400, 400, 400, 400, 200]
--- response_body_filters eval
[[], [], [], [], [], [], [::report(hide => qr{^GET }, mocks => ['printnow'], jobs => 1)]]
--- response_body_like eval
['^\{"error":"\\\\"trackingNumber\\\\" may contain only ASCII letters, digits, spaces and -\./_"\}\s*$',
 '^\{"error":"\\\\"trackingNumber\\\\" is too long \(at most 64 characters\)"\}\s*$',
 '^\{"error":"\\\\"carrier\\\\" may contain only ASCII letters, digits, spaces and -\./_\(\)"\}\s*$',
 '^\{"error":"\\\\"shipment\.carrier\\\\" may contain only ASCII letters, digits, spaces and -\./_\(\)"\}\s*$',
 '^\{"error":"\\\\"trackingUrl\\\\" must be an http:// or https:// URL"\}\s*$',
 '^\{"error":"\\\\"trackingUrl\\\\" must contain only URL characters \(RFC 3986, ASCII\)"\}\s*$',
 '^answer pong
(?:job order 5001 done
)?$']
--- no_error_log
[alert]
[crit]



=== TEST 12: every kind of Site Flow Log entry (hook, postback, Ship API in; PrintNow and SiteFlow calls out) has a sane duration_ms
--- http_config
    siteflow_zone sf:4m;
    siteflow_spool $TEST_NGINX_SPOOL;
    siteflow_retry_backoff 100ms 500ms;
--- config eval
::storefront_conf(extra => <<'EOC')
    location /ship/ {
        siteflow_verify_signature on;
        siteflow_partner p1 0123456789abcdef0123456789abcdef01234567;
        proxy_pass http://127.0.0.1:$TEST_NGINX_SERVER_PORT/backend/;
    }
    location /backend/ {
        return 200 '{"tracking":"T-1"}';
    }
EOC
--- init
::send_and_wait(5001);
--- more_headers eval
["", Siteflow::Sign::headers('p1', $Siteflow::Sign::KEY), ""]
--- request eval
[::pb_req(event => 'shipped', sourceOrderId => 'PN-5001', trackingNumber => 'TRK1'),
 "POST /ship/shipment\n{\"orderNumber\":\"PN-5001\",\"shipTo\":{}}",
 "GET /ping"]
--- error_code eval
[200, 200, 200]
--- response_body_filters eval
[[::report(mocks => [], wait => [[printnow => 'PATCH *', 1]])],
 [],
 [::report(mocks => [], durations => 1)]]
--- response_body eval
["answer {\"job\":\"ID\"}\n",
 '{"tracking":"T-1"}',
 "answer pong
duration_ms 0..59999 in 7 entries: in POST /hook, in POST /postback, in POST /ship/shipment, out GET /api/v2/order/{id}, out PATCH /api/v2/order/{id}/shipped, out POST /api/order, out POST /api/order/validate
"]
--- no_error_log
[alert]
[crit]



=== TEST 13: postbacks that arrive at the same moment are judged one after the other: the same one six times makes one update, and received sent with batch_complete never moves the order back
--- http_config
    siteflow_zone sf:4m;
    siteflow_spool $TEST_NGINX_SPOOL;
    siteflow_retry_backoff 100ms 500ms;
--- config eval: ::storefront_conf()
--- init
::send_and_wait(5001);
--- request
GET /ping
--- response_body_filters eval
::report(do => sub {
             my @l;
             my $idle = sub {
                 ::wait_jobs('no job pending or retrying', sub {
                     !grep { $_->{state} =~ /^(?:pending|retrying)$/ } @{ $_[0] } });
             };
             my $count = sub {
                 my ($event, @r) = @_;
                 my %n = (job => 0, skipped => 0, other => 0);
                 for my $r (@r) {
                     my $d = ::json_of($r->{body});
                     my $k = ref $d eq 'HASH' && defined $d->{job} ? 'job'
                           : ref $d eq 'HASH' && defined $d->{skipped} ? 'skipped'
                           : 'other';
                     $n{$k}++;
                 }
                 "$event: $n{job} job, $n{skipped} skipped, $n{other} other";
             };
             # batch_complete and received, three of each, interleaved
             my @r = ::postbacks_at_once([map {
                         { event => $_, sourceOrderId => 'PN-5001' } }
                     (qw(batch_complete received)) x 3]);
             push @l, $count->('batch_complete x3', @r[0, 2, 4]);
             push @l, $idle->();
             my @st = map { ::json_of($_->{body})->{status} }
                      @{ ::mock_requests(printnow => 'PATCH *') };
             my $pc = grep { $_ eq 'Production Complete' } @st;
             push @l, "Production Complete updates: $pc";
             push @l, "last status: $st[-1]";
             # the same shipped postback six times
             @r = ::postbacks_at_once([({ event => 'shipped',
                     sourceOrderId => 'PN-5001', trackingNumber => 'TRK-ONCE',
                     shipDate => '2024-05-02' }) x 6]);
             push @l, $count->('shipped x6', @r);
             push @l, $idle->();
             push @l, 'shipped updates: '
                 . @{ ::mock_requests(printnow => 'PATCH /api/v2/order/5001/shipped') };
             grep { $_ ne '' } @l },
         mocks => [])
--- response_body
answer pong
batch_complete x3: 1 job, 2 skipped, 0 other
Production Complete updates: 1
last status: Production Complete
shipped x6: 1 job, 5 skipped, 0 other
shipped updates: 1
--- no_error_log
[alert]
[crit]



=== TEST 14: more than 64 item ids (docs/postbacks.md, siteflow_ship_per_item): 400 "items": too many items (more than 64), nothing queued or sent; 64 are accepted, one PATCH each
--- http_config
    siteflow_zone sf:4m;
    siteflow_spool $TEST_NGINX_SPOOL;
    siteflow_retry_backoff 100ms 500ms;
--- config eval: ::storefront_conf(extra => '    siteflow_ship_per_item on;')
--- init
::send_and_wait(5002);
--- request
GET /ping
--- response_body_filters eval
::report(do => sub {
             my $before = @{ ::admin_jobs() || [] };
             my @a = map { my $n = $_;
                           my $r = ::postback({ event => 'shipped', sourceOrderId => 'PN-5002',
                                                trackingNumber => "TRK$n",
                                                timestamp => '2024-05-02T00:00:00Z',
                                                items => [map { { sourceItemId => "I$_" } } 1 .. $n] });
                           my $jobs = ::admin_jobs() || [];
                           "$n items: $r->{status} "
                           . ($r->{body} =~ s/"job":"[^"]+"/"job":"ID"/r =~ s/\s+$//r)
                           . "; new jobs: " . (@$jobs - $before) }
                 65, 200, 64;
             @a },
         wait => [[printnow => 'PATCH *', 64]], mocks => [],
         then => sub {
             my @p = @{ ::mock_requests('printnow', 'PATCH *') };
             my %ids = map { $_->{path} =~ m{^/api/v2/order/5002/shipped/I(\d+)$} ? ($1 => 1) : ("bad $_->{path}" => 1) } @p;
             my @tn = sort keys %{{ map { ((::json_of($_->{body}) // {})->{tracking_number} // '?') => 1 } @p }};
             (scalar(@p) . " PATCH calls",
              "items: " . CORE::join(',', sort { $a <=> $b } keys %ids),
              "tracking numbers: @tn") })
--- response_body
answer pong
65 items: 400 {"error":"\"items\": too many items (more than 64)"}; new jobs: 0
200 items: 400 {"error":"\"items\": too many items (more than 64)"}; new jobs: 0
64 items: 200 {"job":"ID"}; new jobs: 1
64 PATCH calls
items: 1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16,17,18,19,20,21,22,23,24,25,26,27,28,29,30,31,32,33,34,35,36,37,38,39,40,41,42,43,44,45,46,47,48,49,50,51,52,53,54,55,56,57,58,59,60,61,62,63,64
tracking numbers: TRK64
--- no_error_log
[alert]
[crit]



=== TEST 15: the mapping's printnow section: a field whose template uses a value the postback did not give is left out (docs/mapping.md), never sent as "" or with a hole in its text
--- http_config
    siteflow_zone sf:4m;
    siteflow_spool $TEST_NGINX_SPOOL;
    siteflow_retry_backoff 100ms 500ms;
--- user_files eval
">>> mapping-pn.json\n" . do {
    open my $fh, '<', 't/fixtures/mapping-shop1.json' or die "mapping-shop1.json: $!";
    my $m = JSON::PP->new->decode(do { local $/; <$fh> });
    $m->{printnow} = { shipped => { trackingNumber => '{tracking_number}',
                                    shipDate => '{ship_date}',
                                    url => '{tracking_url}',
                                    carrier => '{carrier}',
                                    note => 'order {order_id} shipped via {carrier}',
                                    notify => JSON::PP::true } };
    JSON::PP->new->canonical->encode($m) . "\n" }
--- config eval
::storefront_conf() =~ s{siteflow_mapping \S+;}{siteflow_mapping ../html/mapping-pn.json;}r
--- init
::send_and_wait(5001);
--- request
GET /ping
--- response_body_filters eval
::report(do => sub {
             map { my $r = ::postback($_);
                   "$r->{status} " . ($r->{body} =~ s/"job":"[^"]+"/"job":"ID"/r =~ s/\s+$//r) }
                 { event => 'shipped', sourceOrderId => 'PN-5001', trackingNumber => 'T10',
                   timestamp => '2024-05-03T00:00:00Z' },
                 { event => 'shipped', sourceOrderId => 'PN-5001', trackingNumber => 'T11',
                   trackingUrl => 'https://t.example/T11', carrier => 'DHL',
                   timestamp => '2024-05-04T00:00:00Z' } },
         wait => [[printnow => 'PATCH *', 2]], hide => qr{^GET }, mocks => ['printnow'])
--- response_body
answer pong
200 {"job":"ID"}
200 {"job":"ID"}
PN PATCH /api/v2/order/5001/shipped basic {"notify":true,"shipDate":"2024-05-03","trackingNumber":"T10"} -> 200
PN PATCH /api/v2/order/5001/shipped basic {"carrier":"DHL","note":"order 5001 shipped via DHL","notify":true,"shipDate":"2024-05-04","trackingNumber":"T11","url":"https://t.example/T11"} -> 200
--- no_error_log
[alert]
[crit]



=== TEST 16: a shipment postback sent again after the next shipment's (shipmentIndex 0, 1, then 0 again) is a duplicate: two shipped updates, not three; a third shipment's is new
--- http_config
    siteflow_zone sf:4m;
    siteflow_spool $TEST_NGINX_SPOOL;
    siteflow_retry_backoff 100ms 500ms;
--- config eval: ::storefront_conf()
--- init
::send_and_wait(5001);
--- request eval
[::pb_req(event => 'shipped', sourceOrderId => 'PN-5001', shipmentIndex => 0, trackingNumber => '1ZAAA', shipDate => '2024-05-02'),
 ::pb_req(event => 'shipped', sourceOrderId => 'PN-5001', shipmentIndex => 1, trackingNumber => '1ZBBB', shipDate => '2024-05-02'),
 ::pb_req(event => 'shipped', sourceOrderId => 'PN-5001', shipmentIndex => 0, trackingNumber => '1ZAAA', shipDate => '2024-05-02'),
 ::pb_req(event => 'shipped', sourceOrderId => 'PN-5001', shipmentIndex => 1, trackingNumber => '1ZBBB', shipDate => '2024-05-02'),
 ::pb_req(event => 'shipped', sourceOrderId => 'PN-5001', shipmentIndex => 2, trackingNumber => '1ZCCC', shipDate => '2024-05-03')]
--- error_code eval
[(200) x 5]
--- response_body_filters eval
[[::report(mocks => [], wait => [[printnow => 'PATCH *', 1]])],
 [::report(mocks => [], wait => [[printnow => 'PATCH *', 2]])],
 [::report(mocks => [], answer => 'skipped:^duplicate')],
 [::report(mocks => [], answer => 'skipped:^duplicate')],
 [::report(wait => [[printnow => 'PATCH *', 3]], hide => qr{^GET }, mocks => ['printnow'])]]
--- response_body eval
["answer {\"job\":\"ID\"}\n",
 "answer {\"job\":\"ID\"}\n",
 "answer {\"skipped\": ~ /^duplicate/}\n",
 "answer {\"skipped\": ~ /^duplicate/}\n",
'answer {"job":"ID"}
PN PATCH /api/v2/order/5001/shipped basic {"notify_customer":true,"ship_date":"2024-05-02","tracking_number":"1ZAAA"} -> 200
PN PATCH /api/v2/order/5001/shipped basic {"notify_customer":true,"ship_date":"2024-05-02","tracking_number":"1ZBBB"} -> 200
PN PATCH /api/v2/order/5001/shipped basic {"notify_customer":true,"ship_date":"2024-05-03","tracking_number":"1ZCCC"} -> 200
']
--- no_error_log
[alert]
[crit]
