
/*
 * Copyright (C) ngx_siteflow_module authors
 */


#ifndef _NGX_HTTP_SITEFLOW_QUEUE_PG_SQL_H_INCLUDED_
#define _NGX_HTTP_SITEFLOW_QUEUE_PG_SQL_H_INCLUDED_


/*
 * The statements of the PostgreSQL queue (ngx_http_siteflow_queue_pg.c).
 * Times are milliseconds of the database's clock (siteflow_now_ms()), so
 * that leases and backoffs mean the same on every edge whatever their
 * clocks say.  States are SF_QSTATE_*: 0 pending, 1 retrying, 2 done,
 * 3 failed, 4 skipped; kinds NGX_HTTP_SITEFLOW_JOB_*.
 */


#define NGX_HTTP_SITEFLOW_PG_SCHEMA_VERSION  1


/*
 * run on every new connection: under an advisory lock (taken by a
 * statement of its own, so that what follows sees what the edge before
 * committed), checks the schema's version, and creates the schema only
 * when it is not there: no DDL runs next to the traffic of other
 * connections
 */

#define NGX_HTTP_SITEFLOW_PG_SCHEMA                                           \
"SET application_name = 'ngx_siteflow_module';"                              \
"BEGIN;"                                                                      \
"SELECT pg_advisory_xact_lock(531800841);"                                    \
"DO $sf$ DECLARE v integer; BEGIN"                                            \
"  IF to_regclass('siteflow_schema') IS NOT NULL THEN"                        \
"    SELECT max(version) INTO v FROM siteflow_schema;"                        \
"    IF v > 1 THEN"                                                           \
"      RAISE EXCEPTION 'the database has siteflow queue schema version %, "   \
"newer than this module knows (1): upgrade the module on this edge', v;"      \
"    END IF;"                                                                 \
"    IF v = 1 THEN RETURN; END IF;"                                           \
"  END IF;"                                                                   \
"  CREATE TABLE IF NOT EXISTS siteflow_schema ("                              \
"    version integer NOT NULL,"                                               \
"    installed timestamptz NOT NULL DEFAULT now());"                          \
"  CREATE OR REPLACE FUNCTION siteflow_now_ms() RETURNS bigint"               \
"    LANGUAGE sql VOLATILE"                                                   \
"    AS 'SELECT (extract(epoch FROM clock_timestamp()) * 1000)::bigint';"     \
"  CREATE TABLE IF NOT EXISTS siteflow_jobs ("                                \
"    id bigserial PRIMARY KEY,"                                               \
"    kind smallint NOT NULL,"                                                 \
"    storefront text NOT NULL,"                                               \
"    order_id text NOT NULL,"                                                 \
"    payload text NOT NULL,"                                                  \
"    state smallint NOT NULL DEFAULT 0,"                                      \
"    attempts integer NOT NULL DEFAULT 0,"                                    \
"    next_ms bigint NOT NULL DEFAULT 0,"                                      \
"    created_ms bigint NOT NULL,"                                             \
"    finished_ms bigint,"                                                     \
"    maybe_sent boolean NOT NULL DEFAULT false,"                              \
"    error text NOT NULL DEFAULT '',"                                         \
"    results text,"                                                           \
"    lease_owner text,"                                                       \
"    lease_until bigint NOT NULL DEFAULT 0);"                                 \
"  CREATE INDEX IF NOT EXISTS siteflow_jobs_open"                             \
"    ON siteflow_jobs (id) WHERE state IN (0, 1);"                            \
"  CREATE INDEX IF NOT EXISTS siteflow_jobs_chain"                            \
"    ON siteflow_jobs (storefront, order_id, id) WHERE state IN (0, 1);"      \
"  CREATE INDEX IF NOT EXISTS siteflow_jobs_finished"                         \
"    ON siteflow_jobs (finished_ms) WHERE state IN (2, 4);"                   \
"  CREATE TABLE IF NOT EXISTS siteflow_index ("                               \
"    storefront text NOT NULL,"                                               \
"    order_id text NOT NULL,"                                                 \
"    source_id text,"                                                         \
"    siteflow_id text,"                                                       \
"    state smallint NOT NULL DEFAULT 0,"                                      \
"    rank integer NOT NULL DEFAULT 0,"                                        \
"    fingerprint bigint NOT NULL DEFAULT 0,"                                  \
"    updated_ms bigint NOT NULL DEFAULT 0,"                                   \
"    sent_ms bigint NOT NULL DEFAULT 0,"                                      \
"    used_ms bigint NOT NULL,"                                                \
"    PRIMARY KEY (storefront, order_id));"                                    \
"  CREATE INDEX IF NOT EXISTS siteflow_index_source"                          \
"    ON siteflow_index (storefront, source_id);"                              \
"  CREATE INDEX IF NOT EXISTS siteflow_index_used"                            \
"    ON siteflow_index (used_ms);"                                            \
"  CREATE TABLE IF NOT EXISTS siteflow_horizon ("                             \
"    one boolean PRIMARY KEY DEFAULT true CHECK (one),"                       \
"    pruned_max bigint NOT NULL DEFAULT 0,"                                   \
"    pruned_other boolean NOT NULL DEFAULT false,"                            \
"    pruned bigint NOT NULL DEFAULT 0);"                                      \
"  INSERT INTO siteflow_horizon DEFAULT VALUES ON CONFLICT DO NOTHING;"       \
"  INSERT INTO siteflow_schema (version) VALUES (1);"                         \
"END $sf$;"                                                                   \
"COMMIT;"


/*
 * The jobs of one event loop turn in one statement, so one COMMIT (group
 * commit): $1 kinds, $2 storefronts, $3 order ids, $4 payloads; with the
 * postback's part of the index entry where $5 is 1: $6 rank, $7
 * fingerprint, and $8 rank and $9 fingerprint the postback was judged by.
 * Such a job is queued only if the index entry still holds what it was
 * judged by, and only the first of an order in the batch: another
 * postback of the order committed in between (by this edge or another:
 * the UPDATE waits for its row lock and looks again) or an earlier one
 * in the batch makes its id NULL, nothing of it is written, and the
 * caller judges it again.  The ids in the order given (ids are taken in
 * that order: the jobs of one order keep it).
 */

#define NGX_HTTP_SITEFLOW_PG_ENQUEUE                                          \
"WITH t AS MATERIALIZED ("                                                    \
"  SELECT nextval(pg_get_serial_sequence('siteflow_jobs', 'id')) AS id, u.*"  \
"    FROM unnest($1::smallint[], $2::text[], $3::text[], $4::text[],"         \
"                $5::integer[], $6::integer[], $7::bigint[], $8::integer[],"  \
"                $9::bigint[])"                                               \
"         WITH ORDINALITY AS u(kind, storefront, order_id, payload,"          \
"                              has_idx, rank, fingerprint, seen_rank,"        \
"                              seen_fingerprint, n)"                          \
"   ORDER BY u.n),"                                                           \
"w AS ("                                                                      \
"  SELECT DISTINCT ON (storefront, order_id) *"                               \
"    FROM t WHERE has_idx = 1 ORDER BY storefront, order_id, n),"             \
"i AS ("                                                                      \
"  UPDATE siteflow_index AS x"                                                \
"     SET rank = w.rank, fingerprint = w.fingerprint,"                        \
"         used_ms = siteflow_now_ms()"                                        \
"    FROM w"                                                                  \
"   WHERE x.storefront = w.storefront AND x.order_id = w.order_id"            \
"     AND x.rank = w.seen_rank AND x.fingerprint = w.seen_fingerprint"        \
"  RETURNING w.n),"                                                           \
"k AS ("                                                                      \
"  SELECT t.*, (t.has_idx = 0 OR t.n IN (SELECT n FROM i)) AS ok FROM t),"    \
"j AS ("                                                                      \
"  INSERT INTO siteflow_jobs (id, kind, storefront, order_id, payload,"       \
"                             created_ms)"                                    \
"  SELECT id, kind, storefront, order_id, payload, siteflow_now_ms()"         \
"    FROM k WHERE ok ORDER BY n"                                              \
"  RETURNING 1) "                                                             \
"SELECT CASE WHEN ok THEN id END FROM k ORDER BY n"


/* the index entry and the unfinished jobs of an order: by order id ($2),
   or by sourceOrderId ($2) */

#define NGX_HTTP_SITEFLOW_PG_LOOKUP_COLUMNS                                   \
"SELECT i.order_id, coalesce(i.source_id, ''), coalesce(i.siteflow_id, ''),"  \
"  i.state, i.rank, i.fingerprint, i.updated_ms, i.sent_ms,"                  \
"  EXISTS (SELECT 1 FROM siteflow_jobs j WHERE j.storefront = $1::text"       \
"          AND j.order_id = i.order_id AND j.kind = 1"                        \
"          AND j.state IN (0, 1))::integer,"                                  \
"  EXISTS (SELECT 1 FROM siteflow_jobs j WHERE j.storefront = $1::text"       \
"          AND j.order_id = i.order_id AND j.kind = 2"                        \
"          AND j.state IN (0, 1))::integer,"                                  \
"  EXISTS (SELECT 1 FROM siteflow_jobs j WHERE j.storefront = $1::text"       \
"          AND j.order_id = $2::text AND j.kind = 1"                          \
"          AND j.state IN (0, 1))::integer,"                                  \
"  EXISTS (SELECT 1 FROM siteflow_jobs j WHERE j.storefront = $1::text"       \
"          AND j.order_id = $2::text AND j.kind = 2"                          \
"          AND j.state IN (0, 1))::integer "

#define NGX_HTTP_SITEFLOW_PG_LOOKUP_ORDER                                     \
NGX_HTTP_SITEFLOW_PG_LOOKUP_COLUMNS                                           \
"FROM (SELECT 1) AS d LEFT JOIN siteflow_index i"                             \
"  ON i.storefront = $1::text AND i.order_id = $2::text"

#define NGX_HTTP_SITEFLOW_PG_LOOKUP_SOURCE                                    \
NGX_HTTP_SITEFLOW_PG_LOOKUP_COLUMNS                                           \
"FROM (SELECT 1) AS d LEFT JOIN LATERAL ("                                    \
"  SELECT * FROM siteflow_index"                                              \
"   WHERE storefront = $1::text AND source_id = $2::text"                     \
"   ORDER BY used_ms DESC LIMIT 1) AS i ON true"


/*
 * Claim: $1 this edge, $2 lease (ms), $3 how many; $4 and $5 the
 * storefronts and kinds whose jobs wait for this edge's breakers.  Due
 * jobs, oldest first, only the first unfinished job of an order, none
 * leased to a live edge; SKIP LOCKED lets the edges claim side by
 * side.  The oldest 512 due jobs are the candidates (an index scan that
 * stops there, whatever the backlog), of which those at the head of
 * their order are taken; the conditions on the locked row itself are
 * checked again on its newest version (another edge may have claimed it
 * meanwhile).  A job whose lease ran out (its edge died) may have had its
 * create sent.
 */

#define NGX_HTTP_SITEFLOW_PG_CLAIM                                            \
"WITH now AS MATERIALIZED (SELECT siteflow_now_ms() AS ms),"                  \
"c AS ("                                                                      \
"  SELECT j.id FROM ("                                                        \
"    SELECT d.id FROM siteflow_jobs d"                                        \
"     WHERE d.state IN (0, 1)"                                                \
"       AND d.next_ms <= (SELECT ms FROM now)"                                \
"       AND d.lease_until <= (SELECT ms FROM now)"                            \
"       AND NOT EXISTS (SELECT 1"                                             \
"                         FROM unnest($4::text[], $5::smallint[])"            \
"                           AS x(s, k)"                                       \
"                        WHERE x.s = d.storefront AND x.k = d.kind)"          \
"     ORDER BY d.id LIMIT 512) AS cand"                                       \
"  JOIN siteflow_jobs j ON j.id = cand.id"                                    \
"   WHERE j.state IN (0, 1)"                                                  \
"     AND j.next_ms <= (SELECT ms FROM now)"                                  \
"     AND j.lease_until <= (SELECT ms FROM now)"                              \
"     AND NOT EXISTS (SELECT 1 FROM siteflow_jobs p"                          \
"                      WHERE p.storefront = j.storefront"                     \
"                        AND p.order_id = j.order_id"                         \
"                        AND p.state IN (0, 1) AND p.id < j.id)"              \
"   ORDER BY j.id LIMIT $3::integer"                                          \
"   FOR UPDATE OF j SKIP LOCKED),"                                            \
"u AS ("                                                                      \
"  UPDATE siteflow_jobs j"                                                    \
"     SET lease_owner = $1::text,"                                            \
"         maybe_sent = j.maybe_sent OR (j.lease_until > 0 AND j.kind = 1),"   \
"         lease_until = (SELECT ms FROM now) + $2::bigint"                    \
"    FROM c WHERE j.id = c.id"                                                \
"  RETURNING j.id, j.kind, j.storefront, j.order_id, j.payload, j.attempts,"  \
"            j.created_ms, j.maybe_sent, j.results) "                         \
"SELECT u.id, u.kind, u.storefront, u.order_id, u.payload, u.attempts,"       \
"  u.created_ms, u.maybe_sent::integer, coalesce(u.results, ''),"             \
"  i.order_id, coalesce(i.source_id, ''), coalesce(i.siteflow_id, ''),"       \
"  i.state, i.rank, i.fingerprint, i.updated_ms, i.sent_ms,"                  \
"  h.pruned_max, h.pruned_other::integer "                                    \
"FROM u LEFT JOIN siteflow_index i"                                           \
"  ON i.storefront = u.storefront AND i.order_id = u.order_id"                \
"  CROSS JOIN siteflow_horizon h "                                            \
"ORDER BY u.id"


/*
 * A run's outcome: $1 id, $2 this edge, $3 state, $4 attempts, $5 delay
 * before the next attempt (ms, -1 none), $6 error, $7 maybe_sent, $8
 * results; the order's part of the index entry when $9 is 1: $10
 * storefront, $11 order id, $12 source id, $13 SiteFlow id, $14 state,
 * $15 updated, $16 sent.  Nothing is written if the lease went to
 * another edge meanwhile.
 */

#define NGX_HTTP_SITEFLOW_PG_DONE                                             \
"WITH u AS ("                                                                 \
"  UPDATE siteflow_jobs"                                                      \
"     SET state = $3::smallint, attempts = $4::integer,"                      \
"         next_ms = CASE WHEN $5::bigint >= 0"                                \
"                        THEN siteflow_now_ms() + $5::bigint"                 \
"                        ELSE 0 END,"                                         \
"         error = $6::text, maybe_sent = $7::boolean, results = $8::text,"    \
"         lease_owner = NULL, lease_until = 0,"                               \
"         finished_ms = CASE WHEN $3::smallint IN (2, 3, 4)"                  \
"                            THEN siteflow_now_ms() END"                      \
"   WHERE id = $1::bigint AND lease_owner = $2::text"                         \
"  RETURNING id),"                                                            \
"i AS ("                                                                      \
"  INSERT INTO siteflow_index AS x (storefront, order_id, source_id,"         \
"    siteflow_id, state, updated_ms, sent_ms, used_ms)"                       \
"  SELECT $10::text, $11::text, nullif($12::text, ''),"                       \
"         nullif($13::text, ''), $14::smallint, $15::bigint, $16::bigint,"    \
"         siteflow_now_ms()"                                                  \
"    FROM u WHERE $9::integer = 1"                                            \
"  ON CONFLICT (storefront, order_id) DO UPDATE"                              \
"    SET state = EXCLUDED.state, updated_ms = EXCLUDED.updated_ms,"           \
"        sent_ms = EXCLUDED.sent_ms,"                                         \
"        source_id = coalesce(EXCLUDED.source_id, x.source_id),"              \
"        siteflow_id = coalesce(EXCLUDED.siteflow_id, x.siteflow_id),"        \
"        used_ms = EXCLUDED.used_ms"                                          \
"  RETURNING 1) "                                                             \
"SELECT (SELECT count(*) FROM u), (SELECT count(*) FROM i)"


/* $1 this edge, $2 job ids: claimed, but their breaker lets one probe
   go and it went; the lease is given back as if never taken */

#define NGX_HTTP_SITEFLOW_PG_RELEASE                                          \
"UPDATE siteflow_jobs SET lease_owner = NULL, lease_until = 0"                \
" WHERE lease_owner = $1::text AND id = ANY($2::bigint[])"


/* $1 this edge, $2 lease: the leases of the jobs it runs go on */

#define NGX_HTTP_SITEFLOW_PG_RENEW                                            \
"UPDATE siteflow_jobs SET lease_until = siteflow_now_ms() + $2::bigint"       \
" WHERE lease_owner = $1::text AND state IN (0, 1)"


/* $1 state (-1 any), $2 storefront ("" any), $3 order id ("" any),
   $4 limit */

#define NGX_HTTP_SITEFLOW_PG_LIST                                             \
"SELECT id, kind, storefront, order_id, state, attempts, next_ms, error,"     \
"  created_ms FROM siteflow_jobs"                                             \
" WHERE ($1::integer < 0 OR state = $1::integer)"                             \
"   AND ($2::text = '' OR storefront = $2::text)"                             \
"   AND ($3::text = '' OR order_id = $3::text)"                               \
" ORDER BY id DESC LIMIT $4::integer"


/* $1 id: a failed job pending again; (its state before, changed) */

#define NGX_HTTP_SITEFLOW_PG_RETRY                                            \
"WITH u AS ("                                                                 \
"  UPDATE siteflow_jobs SET state = 0, next_ms = 0, lease_until = 0,"         \
"         lease_owner = NULL, finished_ms = NULL"                             \
"   WHERE id = $1::bigint AND state = 3 RETURNING id) "                       \
"SELECT (SELECT state FROM siteflow_jobs WHERE id = $1::bigint),"             \
"       (SELECT count(*) FROM u)"


/* jobs by state and storefront (the oldest of each), the index's size */

#define NGX_HTTP_SITEFLOW_PG_STATS                                            \
"SELECT state, storefront, count(*), min(created_ms), 0, 0"                   \
"  FROM siteflow_jobs GROUP BY state, storefront "                            \
"UNION ALL "                                                                  \
"SELECT -1, '', 0, 0, (SELECT count(*) FROM siteflow_index),"                 \
"       (SELECT pruned FROM siteflow_horizon)"


/*
 * $1 index_retention (ms): the index forgets orders unused that long
 * (none with unfinished jobs), and finished jobs that old go; the
 * horizon remembers the highest numeric order id forgotten
 */

#define NGX_HTTP_SITEFLOW_PG_PRUNE                                            \
"WITH d AS ("                                                                 \
"  DELETE FROM siteflow_index x"                                              \
"   WHERE x.used_ms < siteflow_now_ms() - $1::bigint"                         \
"     AND NOT EXISTS (SELECT 1 FROM siteflow_jobs j"                          \
"                      WHERE j.storefront = x.storefront"                     \
"                        AND j.order_id = x.order_id"                         \
"                        AND j.state IN (0, 1))"                              \
"  RETURNING x.order_id),"                                                    \
"h AS ("                                                                      \
"  UPDATE siteflow_horizon SET"                                               \
"    pruned = pruned + (SELECT count(*) FROM d),"                             \
"    pruned_max = greatest(pruned_max, coalesce((SELECT max(order_id::bigint)" \
"        FROM d WHERE order_id ~ '^[0-9]{1,18}$'), 0)),"                      \
"    pruned_other = pruned_other OR coalesce((SELECT bool_or(true) FROM d"    \
"        WHERE order_id !~ '^[0-9]{1,18}$'), false)"                          \
"  RETURNING 1),"                                                             \
"f AS ("                                                                      \
"  DELETE FROM siteflow_jobs"                                                 \
"   WHERE state IN (2, 4) AND finished_ms < siteflow_now_ms() - $1::bigint"   \
"  RETURNING 1) "                                                             \
"SELECT (SELECT count(*) FROM d), (SELECT count(*) FROM f),"                  \
"       (SELECT count(*) FROM h)"


/*
 * Every new connection runs the schema's set-up, then prepares each
 * statement once (the queue executes them by name: no parse and plan
 * per call).
 */

#define NGX_HTTP_SITEFLOW_PG_SETUP                                            \
NGX_HTTP_SITEFLOW_PG_SCHEMA                                                   \
"PREPARE siteflow_enqueue AS " NGX_HTTP_SITEFLOW_PG_ENQUEUE ";"               \
"PREPARE siteflow_lookup_order AS " NGX_HTTP_SITEFLOW_PG_LOOKUP_ORDER ";"     \
"PREPARE siteflow_lookup_source AS " NGX_HTTP_SITEFLOW_PG_LOOKUP_SOURCE ";"   \
"PREPARE siteflow_claim AS " NGX_HTTP_SITEFLOW_PG_CLAIM ";"                   \
"PREPARE siteflow_release AS " NGX_HTTP_SITEFLOW_PG_RELEASE ";"               \
"PREPARE siteflow_done AS " NGX_HTTP_SITEFLOW_PG_DONE ";"                     \
"PREPARE siteflow_renew AS " NGX_HTTP_SITEFLOW_PG_RENEW ";"                   \
"PREPARE siteflow_list AS " NGX_HTTP_SITEFLOW_PG_LIST ";"                     \
"PREPARE siteflow_retry AS " NGX_HTTP_SITEFLOW_PG_RETRY ";"                   \
"PREPARE siteflow_stats AS " NGX_HTTP_SITEFLOW_PG_STATS ";"                   \
"PREPARE siteflow_prune AS " NGX_HTTP_SITEFLOW_PG_PRUNE ";"


#endif /* _NGX_HTTP_SITEFLOW_QUEUE_PG_SQL_H_INCLUDED_ */
