-- Empties the queue of the module's PostgreSQL backend: jobs, sent-orders
-- index, horizon, schema rows newer than 1.  A no-op before the module has
-- created its tables.  Retried when a running edge's locks make it a
-- deadlock victim or keep it waiting more than 2 s.  Used by
-- Siteflow::Pg::pg_empty() and t/bench/pg-lib.sh's pg_empty.
SET lock_timeout = '2s';
DO $$
BEGIN
    FOR i IN 1 .. 50 LOOP
        BEGIN
            IF to_regclass('siteflow_jobs') IS NULL THEN
                RETURN;
            END IF;
            TRUNCATE siteflow_jobs, siteflow_index;
            UPDATE siteflow_horizon
               SET pruned_max = 0, pruned_other = false, pruned = 0;
            DELETE FROM siteflow_schema WHERE version > 1;
            RETURN;
        EXCEPTION WHEN deadlock_detected OR lock_not_available THEN
            PERFORM pg_sleep(0.1);
        END;
    END LOOP;
    RAISE EXCEPTION 'the siteflow tables stayed locked';
END
$$;
