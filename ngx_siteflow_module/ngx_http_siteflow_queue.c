
/*
 * Copyright (C) ngx_siteflow_module authors
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include <jansson.h>

#if (NGX_LINUX)
#include <sys/prctl.h>
#endif

#include "ngx_http_siteflow.h"
#include "ngx_http_siteflow_queue.h"
#include "ngx_http_siteflow_queue_int.h"
#include "sf_job.h"
#include "sf_qrec.h"


/*
 * The durable job queue.  See docs/internals/delivery.md for the design;
 * in short:
 *
 * - The spool directory holds journal segments "journal-<seq>.sfq" and
 *   snapshots "snapshot-<seq>.sfq" (everything live in segments <= seq).
 *   Records are sf_qrec records: JOB (a new job), STATE (a job's new
 *   state, with a per-job version), INDEX (a sent-orders index entry).
 *
 * - All workers append to the one active segment (O_APPEND, the write()
 *   under a shared mutex so that a short write can be cut off again), in
 *   batches: the records of one event loop iteration are written with one
 *   write() and made durable with one fdatasync() on nginx's thread pool
 *   (group commit).  Only then are they applied to the job table in
 *   shared memory and the requests that wait for them answered.
 *
 * - The job table, the per-order chains and the sent-orders index live in
 *   a shared memory zone of their own ("siteflow_spool" size=).  It is
 *   rebuilt from the spool when nginx starts (and kept across reloads).
 *
 * - Worker 0 is the only consumer: it claims due jobs (oldest first, only
 *   the first unfinished job of an order), runs them through libcurl, and
 *   writes their outcome.  A job claimed by a process that died is
 *   released by the next consumer's sweep.
 *
 * - The consumer compacts the spool: when the active segment grows past
 *   NGX_HTTP_SITEFLOW_SEGMENT_MAX it starts a new one and writes a
 *   snapshot of everything live, after which older files are removed.
 */


#define NGX_HTTP_SITEFLOW_SEGMENT_MAX     (16 * 1024 * 1024)  /* default */
#define NGX_HTTP_SITEFLOW_SEGMENT_LIMIT   ((off_t) 1024 * 1024 * 1024)
#define NGX_HTTP_SITEFLOW_FINISHED_KEEP   1000
#define NGX_HTTP_SITEFLOW_POLL            50        /* ms */
#define NGX_HTTP_SITEFLOW_SWEEP           1000      /* ms */
#define NGX_HTTP_SITEFLOW_CLAIM_BATCH     8         /* jobs started per
                                                       event loop turn */
#define NGX_HTTP_SITEFLOW_ERROR_MAX       1024

#define NGX_HTTP_SITEFLOW_QUEUE_MAGIC     0x51464c53  /* "SLFQ" */
#define NGX_HTTP_SITEFLOW_QUEUE_LAYOUT    3
#define NGX_HTTP_SITEFLOW_SH_BREAKERS     64        /* published */

/* the sent-orders index forgets an order this long after its last use */
#define NGX_HTTP_SITEFLOW_RETENTION       (ngx_msec_t) (30 * 86400000ULL)
#define NGX_HTTP_SITEFLOW_PRUNE_SCAN      1000


typedef struct ngx_http_siteflow_order_s  ngx_http_siteflow_order_t;


typedef struct {
    ngx_rbtree_node_t              node;         /* by id */
    ngx_rbtree_node_t              due;          /* due or waiting tree */
    ngx_queue_t                    all;          /* every job, by id */
    ngx_queue_t                    link;         /* order chain or
                                                    finished list */
    ngx_queue_t                    run_link;     /* running list */
    ngx_http_siteflow_order_t     *order;        /* NULL when not chained */

    uint64_t                       id;
    uint64_t                       created_ms;
    uint64_t                       next_ms;
    uint32_t                       version;
    uint32_t                       attempts;
    ngx_pid_t                      owner;

    uint8_t                        kind;
    uint8_t                        state;
    unsigned                       running:1;
    unsigned                       in_due:1;
    unsigned                       in_waiting:1;
    unsigned                       maybe_sent:1;
    unsigned                       finished:1;

    ngx_str_t                      storefront;
    ngx_str_t                      order_id;
    ngx_str_t                      payload;
    ngx_str_t                      error;        /* own allocation */
    ngx_str_t                      results;      /* own allocation */
} ngx_http_siteflow_job_t;


struct ngx_http_siteflow_order_s {
    ngx_rbtree_node_t              node;         /* crc32 of the key */
    ngx_queue_t                    jobs;         /* unfinished, by id */
    ngx_str_t                      key;          /* storefront \0 order */
};


typedef struct {
    ngx_rbtree_node_t              by_order;     /* crc32 */
    ngx_rbtree_node_t              by_source;    /* crc32, if source_id */
    ngx_queue_t                    all;

    uint32_t                       version_order;
    uint32_t                       version_postback;
    uint32_t                       fingerprint;
    int32_t                        rank;
    uint8_t                        state;
    unsigned                       has_source:1;
    unsigned                       sf_inline:1;  /* siteflow_id in the
                                                    entry's own block */
    uint64_t                       updated_ms;
    uint64_t                       sent_ms;

    ngx_str_t                      order_key;    /* storefront \0 order */
    ngx_str_t                      source_key;   /* storefront \0 source */
    ngx_str_t                      siteflow_id;
} ngx_http_siteflow_idx_t;


typedef struct {
    uint32_t                       magic;
    uint32_t                       layout;

    ngx_rbtree_t                   jobs;
    ngx_rbtree_node_t              jobs_sentinel;
    ngx_rbtree_t                   due;          /* key: id */
    ngx_rbtree_node_t              due_sentinel;
    ngx_rbtree_t                   waiting;      /* key: next_ms */
    ngx_rbtree_node_t              waiting_sentinel;
    ngx_rbtree_t                   orders;
    ngx_rbtree_node_t              orders_sentinel;
    ngx_rbtree_t                   by_order;
    ngx_rbtree_node_t              by_order_sentinel;
    ngx_rbtree_t                   by_source;
    ngx_rbtree_node_t              by_source_sentinel;

    ngx_queue_t                    all;          /* jobs by id */
    ngx_queue_t                    finished;     /* done/skipped, oldest
                                                    first */
    ngx_queue_t                    running;
    ngx_queue_t                    index;

    ngx_uint_t                     nfinished;
    ngx_uint_t                     counts[5];    /* by SF_QSTATE_* */
    ngx_uint_t                     nindex;

    uint64_t                       next_id;
    uint64_t                       segment;      /* active segment */
    uint64_t                       snapshot;     /* newest snapshot */
    ngx_atomic_t                   inflight[2];  /* batches written, not
                                                    applied, by parity */
    ngx_atomic_t                   generation;   /* bumped on new work */

    ngx_shmtx_sh_t                 write_lock;
    ngx_shmtx_t                    write_mtx;    /* in shared memory: its
                                                    semaphore must be */

    /* the consumer's breakers, for the metrics (layout 2) */
    ngx_uint_t                     nbreakers;
    struct {
        u_char                     name[SF_QJOB_STOREFRONT_LEN];
        size_t                     len;
        ngx_uint_t                 failures;
    } breakers[NGX_HTTP_SITEFLOW_SH_BREAKERS];

    ngx_uint_t                     damaged;      /* damaged stretches found
                                                    at the last start */
    uint64_t                       damaged_bytes;

    ngx_pid_t                      snapshot_pid; /* walking the index */
    uint64_t                       pruned_max;   /* highest numeric order
                                                    id the index forgot */
    ngx_uint_t                     pruned_other; /* forgot another id */
    ngx_uint_t                     npruned;
} ngx_http_siteflow_queue_sh_t;


struct ngx_http_siteflow_queue_conf_s {
    ngx_path_t                    *path;
    size_t                         size;
    size_t                         segment;      /* compaction threshold */
    ngx_msec_t                     retention;    /* index_retention= */
    ngx_shm_zone_t                *shm_zone;
    ngx_http_siteflow_queue_sh_t  *sh;
    ngx_slab_pool_t               *shpool;
    ngx_shmtx_t                   *write_lock;   /* &sh->write_mtx */
#if (NGX_THREADS)
    ngx_thread_pool_t             *thread_pool;
#endif
};


/* one record to write, and what to do when it is durable */
typedef struct {
    ngx_uint_t                     type;         /* SF_QREC_* */
    ngx_http_siteflow_enqueue_pt   handler;
    void                          *data;

    /* JOB */
    void                          *job;          /* allocated at enqueue */
    uint64_t                       id;
    ngx_uint_t                     kind;
    ngx_str_t                      storefront;
    ngx_str_t                      order_id;
    ngx_str_t                      payload;
    uint64_t                       created_ms;

    /* STATE */
    ngx_uint_t                     state;
    ngx_uint_t                     attempts;
    uint64_t                       next_ms;
    ngx_str_t                      error;
    ngx_str_t                      results;
    ngx_uint_t                     maybe_sent;
    uint32_t                       version;
    ngx_uint_t                     release;      /* end of a run */

    /* INDEX */
    ngx_uint_t                     postback;     /* which half */
    ngx_http_siteflow_index_t      idx;
} ngx_http_siteflow_op_t;


typedef struct {
    ngx_pool_t                    *pool;
    ngx_array_t                    ops;          /* ngx_http_siteflow_op_t */
    u_char                        *buf;
    size_t                         len;
    size_t                         cap;

    ngx_fd_t                       fd;
    ngx_fd_t                       dir;          /* or -1 */
    uint64_t                       seq;
    ngx_err_t                      err;
    const char                    *failed;       /* call that failed */
    ngx_uint_t                     torn;         /* part of it may be in
                                                    the segment */
} ngx_http_siteflow_batch_t;


typedef struct {
    ngx_queue_t                    queue;
    ngx_http_siteflow_run_t       *run;
    ngx_http_siteflow_outcome_t    out;
    ngx_str_t                      error;
    ngx_http_siteflow_index_t      idx;
    ngx_event_t                    retry;
} ngx_http_siteflow_finish_t;


static ngx_int_t ngx_http_siteflow_queue_init_zone(ngx_shm_zone_t *shm_zone,
    void *data);
static ngx_uint_t ngx_http_siteflow_queue_old_zone(ngx_shm_zone_t *zone);
static ngx_int_t ngx_http_siteflow_queue_recover(
    ngx_http_siteflow_queue_conf_t *qc,
    ngx_log_t *log);
static ngx_fd_t ngx_http_siteflow_spool_open(u_char *name, ngx_log_t *log,
    ngx_file_info_t *fi);
static void ngx_http_siteflow_queue_damaged_ids(
    ngx_http_siteflow_queue_conf_t *qc, u_char *name, ngx_log_t *log);
static void ngx_http_siteflow_queue_keep_damaged(u_char *name,
    ngx_array_t *keep, ngx_log_t *log);
static ngx_int_t ngx_http_siteflow_queue_load(
    ngx_http_siteflow_queue_conf_t *qc, u_char *name, ngx_uint_t last,
    ngx_log_t *log);
static int ngx_http_siteflow_queue_record(const sf_qrec_t *r, void *data);

static ngx_http_siteflow_batch_t *ngx_http_siteflow_batch(void);
static ngx_http_siteflow_batch_t *ngx_http_siteflow_batch_alloc(void);
static ngx_int_t ngx_http_siteflow_append(ngx_http_siteflow_op_t *op);
static ngx_int_t ngx_http_siteflow_encode(ngx_http_siteflow_op_t *op,
    ngx_http_siteflow_batch_t *b);
static void ngx_http_siteflow_flush_handler(ngx_event_t *ev);
static void ngx_http_siteflow_flush(void);
static ngx_int_t ngx_http_siteflow_write(ngx_http_siteflow_batch_t *b);
static void ngx_http_siteflow_sync(void *data, ngx_log_t *log);
#if (NGX_THREADS)
static void ngx_http_siteflow_sync_task(void *data, ngx_log_t *log);
#endif
static void ngx_http_siteflow_synced(ngx_event_t *ev);
static void ngx_http_siteflow_batch_end(ngx_http_siteflow_batch_t *b);

static void ngx_http_siteflow_apply(ngx_http_siteflow_queue_sh_t *sh,
    ngx_slab_pool_t *shpool, ngx_http_siteflow_op_t *op);
static ngx_http_siteflow_job_t *ngx_http_siteflow_job_new(
    ngx_slab_pool_t *shpool, ngx_http_siteflow_op_t *op);
static void ngx_http_siteflow_job_state(ngx_http_siteflow_queue_sh_t *sh,
    ngx_slab_pool_t *shpool, ngx_http_siteflow_job_t *job,
    ngx_http_siteflow_op_t *op);
static ngx_http_siteflow_job_t *ngx_http_siteflow_job_find(
    ngx_http_siteflow_queue_sh_t *sh, uint64_t id);
static void ngx_http_siteflow_job_free(ngx_http_siteflow_queue_sh_t *sh,
    ngx_slab_pool_t *shpool, ngx_http_siteflow_job_t *job);
static void ngx_http_siteflow_chain_add(ngx_http_siteflow_queue_sh_t *sh,
    ngx_slab_pool_t *shpool, ngx_http_siteflow_job_t *job);
static void ngx_http_siteflow_chain_remove(ngx_http_siteflow_queue_sh_t *sh,
    ngx_slab_pool_t *shpool, ngx_http_siteflow_job_t *job);
static void ngx_http_siteflow_chain_sync(ngx_http_siteflow_queue_sh_t *sh,
    ngx_http_siteflow_order_t *order);
static void ngx_http_siteflow_due_remove(ngx_http_siteflow_queue_sh_t *sh,
    ngx_http_siteflow_job_t *job);
static void ngx_http_siteflow_finished_trim(ngx_http_siteflow_queue_sh_t *sh,
    ngx_slab_pool_t *shpool);
static ngx_http_siteflow_order_t *ngx_http_siteflow_order_find(
    ngx_http_siteflow_queue_sh_t *sh, ngx_str_t *key, uint32_t hash);
static ngx_http_siteflow_idx_t *ngx_http_siteflow_idx_find(
    ngx_rbtree_t *tree, ngx_str_t *key, ngx_uint_t by_source);
static void ngx_http_siteflow_idx_apply(ngx_http_siteflow_queue_sh_t *sh,
    ngx_slab_pool_t *shpool, ngx_http_siteflow_op_t *op);
static ngx_int_t ngx_http_siteflow_key(ngx_pool_t *pool, ngx_str_t *a,
    ngx_str_t *b, ngx_str_t *key);
static ngx_int_t ngx_http_siteflow_shm_str(ngx_slab_pool_t *shpool,
    ngx_str_t *dst, ngx_str_t *src);
static void ngx_http_siteflow_rbtree_insert_id(ngx_rbtree_node_t *temp,
    ngx_rbtree_node_t *node, ngx_rbtree_node_t *sentinel);
static void ngx_http_siteflow_rbtree_insert_str(ngx_rbtree_node_t *temp,
    ngx_rbtree_node_t *node, ngx_rbtree_node_t *sentinel);
static void ngx_http_siteflow_rbtree_insert_order(ngx_rbtree_node_t *temp,
    ngx_rbtree_node_t *node, ngx_rbtree_node_t *sentinel);
static void ngx_http_siteflow_rbtree_insert_source(ngx_rbtree_node_t *temp,
    ngx_rbtree_node_t *node, ngx_rbtree_node_t *sentinel);
typedef ngx_int_t (*ngx_http_siteflow_tie_pt)(ngx_rbtree_node_t *a,
    ngx_rbtree_node_t *b);
static void ngx_http_siteflow_rbtree_insert(ngx_rbtree_node_t *temp,
    ngx_rbtree_node_t *node, ngx_rbtree_node_t *sentinel,
    ngx_http_siteflow_tie_pt tie);
static ngx_rbtree_node_t *ngx_http_siteflow_str_find(ngx_rbtree_t *tree,
    ngx_str_t *key, uint32_t hash, size_t delta);
static ngx_int_t ngx_http_siteflow_tie_str(ngx_rbtree_node_t *a,
    ngx_rbtree_node_t *b, size_t delta);
static ngx_int_t ngx_http_siteflow_tie_order(ngx_rbtree_node_t *a,
    ngx_rbtree_node_t *b);
static ngx_int_t ngx_http_siteflow_tie_id(ngx_rbtree_node_t *a,
    ngx_rbtree_node_t *b);
static ngx_int_t ngx_http_siteflow_tie_idx_order(ngx_rbtree_node_t *a,
    ngx_rbtree_node_t *b);
static ngx_int_t ngx_http_siteflow_tie_idx_source(ngx_rbtree_node_t *a,
    ngx_rbtree_node_t *b);

static void ngx_http_siteflow_consumer_handler(ngx_event_t *ev);
static void ngx_http_siteflow_consumer_wake(void);
static ngx_http_siteflow_run_t *ngx_http_siteflow_claim(uint64_t now,
    uint64_t *next);
static void ngx_http_siteflow_sweep(void);
static void ngx_http_siteflow_index_prune(void);
static void ngx_http_siteflow_finish_write(ngx_http_siteflow_finish_t *f);
static void ngx_http_siteflow_finished(void *data, ngx_int_t rc,
    uint64_t id);
static void ngx_http_siteflow_finish_retry(ngx_event_t *ev);
static void ngx_http_siteflow_run_free(ngx_http_siteflow_run_t *run);

static void ngx_http_siteflow_compact(void);
static void ngx_http_siteflow_compact_handler(ngx_event_t *ev);
static ngx_http_siteflow_job_t *ngx_http_siteflow_job_after(
    ngx_http_siteflow_queue_sh_t *sh, uint64_t id);
static void ngx_http_siteflow_snapshot_task(void *data, ngx_log_t *log);
static void ngx_http_siteflow_snapshot_done(ngx_event_t *ev);
static ngx_int_t ngx_http_siteflow_snapshot_build(
    ngx_http_siteflow_batch_t *b);
static ngx_int_t ngx_http_siteflow_state_op(ngx_http_siteflow_job_t *job,
    ngx_http_siteflow_op_t *op);


static ngx_uint_t  ngx_http_siteflow_started;


/*
 * The queue configuration of the current cycle: without a master process
 * a reload replaces the cycle (and frees the old one later) without
 * starting the process again.
 */

static ngx_http_siteflow_queue_conf_t *
ngx_http_siteflow_queue_conf(void)
{
    ngx_http_siteflow_main_conf_t  *smcf;

    if (!ngx_http_siteflow_started) {
        return NULL;
    }

    smcf = ngx_http_cycle_get_module_main_conf(ngx_cycle,
                                               ngx_http_siteflow_module);

    return smcf ? smcf->queue : NULL;
}

#define ngx_http_siteflow_qc  ngx_http_siteflow_queue_conf()

static ngx_http_siteflow_batch_t  *ngx_http_siteflow_collecting;
static ngx_http_siteflow_batch_t  *ngx_http_siteflow_flying;
static ngx_event_t                 ngx_http_siteflow_flush_event;
static ngx_event_t                 ngx_http_siteflow_hold_event;
static ngx_fd_t                    ngx_http_siteflow_seg_fd = NGX_INVALID_FILE;
static uint64_t                    ngx_http_siteflow_seg_seq;
static ngx_uint_t                  ngx_http_siteflow_seg_synced;
static time_t                      ngx_http_siteflow_refused_time;
static ngx_uint_t                  ngx_http_siteflow_refused;
static ngx_uint_t                  ngx_http_siteflow_refusing;

static ngx_pid_t                   ngx_http_siteflow_master;
static ngx_uint_t                  ngx_http_siteflow_consumer;
static ngx_event_t                 ngx_http_siteflow_consumer_event;
static ngx_uint_t                  ngx_http_siteflow_runs;
static ngx_msec_t                  ngx_http_siteflow_last_sweep;
static ngx_atomic_uint_t           ngx_http_siteflow_seen_generation;

/*
 * compaction state (consumer only): 0 idle, 1 waiting for the batches of
 * the old segment, 2 building the snapshot a chunk per event loop turn,
 * 3 writing it in a thread
 */
static ngx_uint_t                  ngx_http_siteflow_compacting;
static uint64_t                    ngx_http_siteflow_compact_seq;
static ngx_msec_t                  ngx_http_siteflow_compact_start;
static ngx_http_siteflow_batch_t  *ngx_http_siteflow_snap_batch;
static ngx_queue_t                *ngx_http_siteflow_snap_idx;
static uint64_t                    ngx_http_siteflow_snap_job;
static ngx_event_t                 ngx_http_siteflow_compact_event;
static ngx_fd_t                    ngx_http_siteflow_snap_fd =
                                                      NGX_INVALID_FILE;
static off_t                       ngx_http_siteflow_snap_bytes;

#define NGX_HTTP_SITEFLOW_SNAP_CHUNK  256

static ngx_connection_t            ngx_http_siteflow_dummy;


/*
 * A storefront whose upstream keeps failing is not hammered by its whole
 * backlog: after a retryable failure only one job (a probe) is started
 * after the breaker's backoff, and the rest wait for its result.  Jobs
 * then drain oldest first.  Consumer-local.
 */

#define NGX_HTTP_SITEFLOW_BREAKERS     64
#define NGX_HTTP_SITEFLOW_SCAN_MAX     1000

typedef struct {
    u_char                         name[SF_QJOB_STOREFRONT_LEN];
    size_t                         len;
    ngx_uint_t                     failures;
    uint64_t                       until;
    ngx_uint_t                     probing;
} ngx_http_siteflow_breaker_t;

static ngx_http_siteflow_breaker_t
                         ngx_http_siteflow_breakers[NGX_HTTP_SITEFLOW_BREAKERS];
static ngx_uint_t                  ngx_http_siteflow_nbreakers;

static void ngx_http_siteflow_breaker_publish(
    ngx_http_siteflow_breaker_t *b);

static const char  *ngx_http_siteflow_kinds[] = {
    "", "order", "cancel", "update"
};


/* configuration */

char *
ngx_http_siteflow_spool(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_http_siteflow_main_conf_t  *smcf = conf;

    off_t                            size, segment;
    ngx_str_t                       *value, name, s, *size_arg, *seg_arg;
    ngx_str_t                        default_size = ngx_string("size=32m");
    ngx_uint_t                       i;
    ngx_msec_t                       retention;
    ngx_path_t                      *path;
    ngx_http_siteflow_queue_conf_t  *qc;

    if (smcf->queue != NULL) {
        return "is duplicate";
    }

    value = cf->args->elts;

    if (value[1].len == 0) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "empty value in \"%V\"", &cmd->name);
        return NGX_CONF_ERROR;
    }

    size = 32 * 1024 * 1024;
    segment = NGX_HTTP_SITEFLOW_SEGMENT_MAX;
    size_arg = NULL;
    seg_arg = NULL;
    retention = NGX_HTTP_SITEFLOW_RETENTION;

    for (i = 2; i < cf->args->nelts; i++) {

        if (ngx_strncmp(value[i].data, "size=", 5) == 0) {
            s.data = value[i].data + 5;
            s.len = value[i].len - 5;

            /* k, m and g suffixes, as in nginx's "max_size=" */

            size = ngx_parse_offset(&s);

            if (size == NGX_ERROR) {
                ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                                   "invalid size \"%V\" in \"%V\", "
                                   "expected a size such as 32m (k, m or g "
                                   "suffix)", &value[i], &cmd->name);
                return NGX_CONF_ERROR;
            }

            if (size < 1024 * 1024
                || size > (off_t) (NGX_MAX_SIZE_T_VALUE / 2))
            {
                ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                                   "invalid size \"%V\" in \"%V\", "
                                   "expected at least 1m", &value[i],
                                   &cmd->name);
                return NGX_CONF_ERROR;
            }

            size_arg = &value[i];
            continue;
        }

        if (ngx_strncmp(value[i].data, "segment=", 8) == 0) {
            s.data = value[i].data + 8;
            s.len = value[i].len - 8;

            segment = ngx_parse_offset(&s);

            if (segment == NGX_ERROR) {
                ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                                   "invalid segment size \"%V\" in "
                                   "\"%V\", expected a size such as 16m "
                                   "(k, m or g suffix) from 64k to 1g",
                                   &value[i], &cmd->name);
                return NGX_CONF_ERROR;
            }

            if (segment < 64 * 1024) {
                ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                                   "invalid segment size \"%V\" in "
                                   "\"%V\": too small, at least 64k",
                                   &value[i], &cmd->name);
                return NGX_CONF_ERROR;
            }

            seg_arg = &value[i];
            continue;
        }

        if (ngx_strncmp(value[i].data, "index_retention=", 16) == 0) {
            s.data = value[i].data + 16;
            s.len = value[i].len - 16;

            retention = ngx_parse_time(&s, 0);

            if (retention == (ngx_msec_t) NGX_ERROR) {
                ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                                   "invalid time \"%V\" in \"%V\"",
                                   &value[i], &cmd->name);
                return NGX_CONF_ERROR;
            }

            continue;
        }

        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "invalid parameter \"%V\" in \"%V\", "
                           "expected \"size=\", \"segment=\" or "
                           "\"index_retention=\"",
                           &value[i], &cmd->name);
        return NGX_CONF_ERROR;
    }

    /*
     * The journal is compacted into a snapshot of the table, which fits
     * the zone: letting the journal grow past the whole zone before
     * compacting only keeps dead records on disk and makes starts slow.
     */

    if (seg_arg == NULL) {
        segment = ngx_min(segment, size);

    } else if (segment > size) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "invalid segment size \"%V\" in \"%V\": "
                           "larger than the zone (%s\"%V\"); the journal "
                           "is compacted into a snapshot of the zone's "
                           "table, so \"segment=\" must be at most "
                           "\"size=\" (and at most 1g)",
                           seg_arg, &cmd->name,
                           size_arg ? "" : "the default ",
                           size_arg ? size_arg : &default_size);
        return NGX_CONF_ERROR;

    } else if (segment > NGX_HTTP_SITEFLOW_SEGMENT_LIMIT) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "invalid segment size \"%V\" in \"%V\": "
                           "larger than 1g, the most a journal file may "
                           "grow before it is compacted (every start reads "
                           "it whole)", seg_arg, &cmd->name);
        return NGX_CONF_ERROR;
    }

    qc = ngx_pcalloc(cf->pool, sizeof(ngx_http_siteflow_queue_conf_t));
    if (qc == NULL) {
        return NGX_CONF_ERROR;
    }

    path = ngx_pcalloc(cf->pool, sizeof(ngx_path_t));
    if (path == NULL) {
        return NGX_CONF_ERROR;
    }

    path->name = value[1];

    while (path->name.len > 1
           && path->name.data[path->name.len - 1] == '/')
    {
        path->name.len--;
    }

    if (ngx_conf_full_name(cf->cycle, &path->name, 0) != NGX_OK) {
        return NGX_CONF_ERROR;
    }

    path->conf_file = cf->conf_file->file.name.data;
    path->line = cf->conf_file->line;

    /* created, and given to the worker processes' user, at start-up */

    if (ngx_add_path(cf, &path) != NGX_OK) {
        return NGX_CONF_ERROR;
    }

    qc->path = path;
    qc->size = (size_t) size;
    qc->segment = (size_t) segment;
    qc->retention = retention;

    ngx_str_set(&name, "siteflow_spool");

    qc->shm_zone = ngx_shared_memory_add(cf, &name, (size_t) size,
                                         &ngx_http_siteflow_module);
    if (qc->shm_zone == NULL) {
        return NGX_CONF_ERROR;
    }

    qc->shm_zone->init = ngx_http_siteflow_queue_init_zone;
    qc->shm_zone->data = qc;

#if (NGX_THREADS)
    qc->thread_pool = ngx_thread_pool_add(cf, NULL);
    if (qc->thread_pool == NULL) {
        return NGX_CONF_ERROR;
    }
#endif

    smcf->queue = qc;

    return NGX_CONF_OK;
}


static ngx_int_t
ngx_http_siteflow_queue_init_zone(ngx_shm_zone_t *shm_zone, void *data)
{
    ngx_http_siteflow_queue_conf_t  *oqc = data;

    ngx_slab_pool_t                 *shpool;
    ngx_http_siteflow_queue_sh_t    *sh;
    ngx_http_siteflow_queue_conf_t  *qc;

    qc = shm_zone->data;
    shpool = (ngx_slab_pool_t *) shm_zone->shm.addr;

    if (oqc) {
        qc->sh = oqc->sh;
        qc->shpool = oqc->shpool;

        if (qc->sh->magic != NGX_HTTP_SITEFLOW_QUEUE_MAGIC
            || qc->sh->layout != NGX_HTTP_SITEFLOW_QUEUE_LAYOUT)
        {
            ngx_log_error(NGX_LOG_EMERG, shm_zone->shm.log, 0,
                          "the \"siteflow_spool\" shared memory was made "
                          "by another version of the module; restart "
                          "nginx instead of reloading it");
            return NGX_ERROR;
        }

        qc->write_lock = &qc->sh->write_mtx;
        return NGX_OK;
    }

    qc->shpool = shpool;

    /*
     * a reload that changes size= would get a new, empty table rebuilt
     * from the spool while the old workers go on with the old one
     */

    if (ngx_http_siteflow_queue_old_zone(shm_zone)) {
        ngx_log_error(NGX_LOG_EMERG, shm_zone->shm.log, 0,
                      "the size of \"siteflow_spool\" cannot change on "
                      "reload; restart nginx to resize it");
        return NGX_ERROR;
    }

    if (shm_zone->shm.exists) {
        qc->sh = shpool->data;
        qc->write_lock = &qc->sh->write_mtx;
        return NGX_OK;
    }

    sh = ngx_slab_calloc(shpool, sizeof(ngx_http_siteflow_queue_sh_t));
    if (sh == NULL) {
        return NGX_ERROR;
    }

    shpool->data = sh;
    qc->sh = sh;

    sh->magic = NGX_HTTP_SITEFLOW_QUEUE_MAGIC;
    sh->layout = NGX_HTTP_SITEFLOW_QUEUE_LAYOUT;

    ngx_rbtree_init(&sh->jobs, &sh->jobs_sentinel,
                    ngx_rbtree_insert_value);
    ngx_rbtree_init(&sh->due, &sh->due_sentinel,
                    ngx_rbtree_insert_value);
    ngx_rbtree_init(&sh->waiting, &sh->waiting_sentinel,
                    ngx_http_siteflow_rbtree_insert_id);
    ngx_rbtree_init(&sh->orders, &sh->orders_sentinel,
                    ngx_http_siteflow_rbtree_insert_str);
    ngx_rbtree_init(&sh->by_order, &sh->by_order_sentinel,
                    ngx_http_siteflow_rbtree_insert_order);
    ngx_rbtree_init(&sh->by_source, &sh->by_source_sentinel,
                    ngx_http_siteflow_rbtree_insert_source);

    ngx_queue_init(&sh->all);
    ngx_queue_init(&sh->finished);
    ngx_queue_init(&sh->running);
    ngx_queue_init(&sh->index);

    sh->next_id = 1;

    shpool->log_nomem = 0;

    if (ngx_shmtx_create(&sh->write_mtx, &sh->write_lock, NULL) != NGX_OK) {
        return NGX_ERROR;
    }

    qc->write_lock = &sh->write_mtx;

    /* under "nginx -t" the spool files are only checked, not loaded */

    return ngx_http_siteflow_queue_recover(qc, shm_zone->shm.log);
}


static ngx_uint_t
ngx_http_siteflow_queue_old_zone(ngx_shm_zone_t *zone)
{
    ngx_uint_t       i;
    ngx_list_part_t *part;
    ngx_shm_zone_t  *old;

    if (ngx_cycle == NULL || ngx_cycle->shared_memory.part.elts == NULL) {
        return 0;
    }

    part = (ngx_list_part_t *) &ngx_cycle->shared_memory.part;
    old = part->elts;

    for (i = 0; /* void */ ; i++) {

        if (i >= part->nelts) {
            if (part->next == NULL) {
                break;
            }

            part = part->next;
            old = part->elts;
            i = 0;
        }

        if (old[i].tag == zone->tag
            && old[i].shm.name.len == zone->shm.name.len
            && ngx_strncmp(old[i].shm.name.data, zone->shm.name.data,
                           zone->shm.name.len)
               == 0
            && old[i].shm.size != zone->shm.size)
        {
            return 1;
        }
    }

    return 0;
}


/* start-up: rebuild the table from the newest snapshot and the segments */

static ngx_int_t
ngx_http_siteflow_queue_recover(ngx_http_siteflow_queue_conf_t *qc,
    ngx_log_t *log)
{
    size_t                         len;
    u_char                        *name, *p;
    ngx_fd_t                       fd;
    ngx_str_t                     *d;
    uint64_t                       seq, snap, max;
    ngx_int_t                      rc;
    ngx_dir_t                      dir;
    ngx_file_info_t                fi;
    ngx_uint_t                     i, n;
    ngx_array_t                    segs, damaged;
    ngx_queue_t                   *q, *next;
    ngx_msec_t                     start;
    ngx_http_siteflow_job_t       *job;
    ngx_http_siteflow_queue_sh_t  *sh;
    u_char                         file[NGX_MAX_PATH];

    sh = qc->sh;
    start = ngx_current_msec;

    if (ngx_open_dir(&qc->path->name, &dir) == NGX_ERROR) {
        if (ngx_errno != NGX_ENOENT) {
            ngx_log_error(NGX_LOG_EMERG, log, ngx_errno,
                          "siteflow: cannot read the spool \"%V\"",
                          &qc->path->name);
            return NGX_ERROR;
        }

        return NGX_OK;
    }

    if (ngx_array_init(&segs, ngx_cycle->pool, 16, sizeof(uint64_t))
        != NGX_OK
        || ngx_array_init(&damaged, ngx_cycle->pool, 4, sizeof(ngx_str_t))
           != NGX_OK)
    {
        (void) ngx_close_dir(&dir);
        return NGX_ERROR;
    }

    rc = NGX_OK;

    snap = 0;
    max = 0;

    for ( ;; ) {
        ngx_set_errno(0);

        if (ngx_read_dir(&dir) == NGX_ERROR) {
            break;
        }

        name = ngx_de_name(&dir);
        len = ngx_de_namelen(&dir);

        if ((len == 8 + 16 + 4
             && ngx_strncmp(name, "journal-", 8) == 0
             && ngx_strncmp(name + 24, ".sfq", 4) == 0)
            || (len == 9 + 16 + 4
                && ngx_strncmp(name, "snapshot-", 9) == 0
                && ngx_strncmp(name + 25, ".sfq", 4) == 0))
        {
            /*
             * a file that cannot be read stops the start: starting with
             * an empty queue would drop acknowledged work
             */

            ngx_snprintf(file, NGX_MAX_PATH, "%V/%*s%Z", &qc->path->name,
                         len, name);

            fd = ngx_http_siteflow_spool_open(file, log, &fi);

            if (fd == NGX_INVALID_FILE) {
                rc = NGX_ERROR;
                continue;
            }

            (void) ngx_close_file(fd);
        }

        if (len > 12 + 8
            && ngx_strlcasestrn(name, name + len, (u_char *) ".sfq.damaged",
                                12 - 1)
               != NULL)
        {
            /* kept aside by an earlier start: its job ids stay used */

            d = ngx_array_push(&damaged);
            if (d == NULL) {
                break;
            }

            d->len = qc->path->name.len + 1 + len;
            d->data = ngx_pnalloc(ngx_cycle->pool, d->len + 1);
            if (d->data == NULL) {
                break;
            }

            p = ngx_sprintf(d->data, "%V/%*s", &qc->path->name, len, name);
            *p = '\0';

            continue;
        }

        if (len == 8 + 16 + 4
            && ngx_strncmp(name, "journal-", 8) == 0
            && ngx_strncmp(name + 24, ".sfq", 4) == 0)
        {
            seq = (uint64_t) ngx_hextoi(name + 8, 16);

            if (seq == (uint64_t) NGX_ERROR) {
                continue;
            }

            if (ngx_array_push(&segs) == NULL) {
                break;
            }

            ((uint64_t *) segs.elts)[segs.nelts - 1] = seq;

            if (seq > max) {
                max = seq;
            }

        } else if (len == 9 + 16 + 4
                   && ngx_strncmp(name, "snapshot-", 9) == 0
                   && ngx_strncmp(name + 25, ".sfq", 4) == 0)
        {
            seq = (uint64_t) ngx_hextoi(name + 9, 16);

            if (seq != (uint64_t) NGX_ERROR && seq > snap) {
                snap = seq;
            }
        }
    }

    (void) ngx_close_dir(&dir);

    if (rc != NGX_OK || ngx_test_config) {
        return rc;
    }

    if (snap) {
        ngx_snprintf(file, NGX_MAX_PATH, "%V/snapshot-%016uxL.sfq%Z",
                     &qc->path->name, snap);

        if (ngx_http_siteflow_queue_load(qc, file, 0, log) != NGX_OK) {
            return NGX_ERROR;
        }
    }

    /* segments in order; those covered by the snapshot are skipped */

    n = segs.nelts;

    for ( ;; ) {
        seq = (uint64_t) -1;

        for (i = 0; i < n; i++) {
            if (((uint64_t *) segs.elts)[i] < seq) {
                seq = ((uint64_t *) segs.elts)[i];
            }
        }

        if (seq == (uint64_t) -1) {
            break;
        }

        for (i = 0; i < n; i++) {
            if (((uint64_t *) segs.elts)[i] == seq) {
                ((uint64_t *) segs.elts)[i] = (uint64_t) -1;
            }
        }

        if (seq <= snap) {
            continue;
        }

        ngx_snprintf(file, NGX_MAX_PATH, "%V/journal-%016uxL.sfq%Z",
                     &qc->path->name, seq);

        if (ngx_http_siteflow_queue_load(qc, file, seq == max, log)
            != NGX_OK)
        {
            return NGX_ERROR;
        }
    }

    d = damaged.elts;

    for (i = 0; i < damaged.nelts; i++) {
        ngx_http_siteflow_queue_damaged_ids(qc, d[i].data, log);
    }

    sh->segment = (max > snap ? max : snap) + 1;
    sh->snapshot = snap;

    /*
     * whatever was not finished may have been in flight when nginx
     * stopped: an order create is looked up before it is sent again
     */

    n = 0;

    for (q = ngx_queue_head(&sh->all);
         q != ngx_queue_sentinel(&sh->all);
         q = next)
    {
        next = ngx_queue_next(q);
        job = ngx_queue_data(q, ngx_http_siteflow_job_t, all);

        if (job->state == SF_QSTATE_PENDING
            || job->state == SF_QSTATE_RETRYING)
        {
            if (job->kind == NGX_HTTP_SITEFLOW_JOB_ORDER) {
                job->maybe_sent = 1;
            }

            n++;
        }
    }

    ngx_http_siteflow_finished_trim(sh, qc->shpool);

    ngx_time_update();

    ngx_log_error(NGX_LOG_NOTICE, log, 0,
                  "siteflow: spool \"%V\" recovered: %ui jobs to deliver, "
                  "%ui failed, %ui orders in the index, in %M ms",
                  &qc->path->name, n, sh->counts[SF_QSTATE_FAILED],
                  sh->nindex, ngx_current_msec - start);

    return NGX_OK;
}


typedef struct {
    ngx_http_siteflow_queue_conf_t  *qc;
    ngx_log_t                       *log;
    ngx_pool_t                      *pool;
    u_char                          *name;
} ngx_http_siteflow_load_t;


typedef struct {
    const u_char                    *start;
    size_t                           len;
} ngx_http_siteflow_range_t;


static void
ngx_http_siteflow_load_gap(size_t off, size_t len, void *data)
{
    ngx_http_siteflow_load_t  *ld = data;

    ngx_log_error(NGX_LOG_ALERT, ld->log, 0,
                  "siteflow: \"%s\": %uz bytes at offset %uz are damaged "
                  "and were skipped; the records after them are recovered",
                  ld->name, len, off);
}


static int
ngx_http_siteflow_load_keep(const sf_qrec_t *r, void *data)
{
    ngx_array_t  *keep = data;

    ngx_http_siteflow_range_t  *k;

    k = ngx_array_push(keep);
    if (k == NULL) {
        return 1;
    }

    k->start = r->payload - SF_QREC_HEADER_SIZE;
    k->len = sf_qrec_size(r->len);

    return 0;
}


/*
 * A spool file is opened only if it is a regular file (a symbolic link to
 * one is fine): a FIFO would block the master in open(), a directory or a
 * device is not a journal.  O_NONBLOCK in case it changed in between.
 */

static ngx_fd_t
ngx_http_siteflow_spool_open(u_char *name, ngx_log_t *log, ngx_file_info_t *fi)
{
    ngx_fd_t     fd;
    const char  *what;

    if (ngx_file_info(name, fi) == NGX_FILE_ERROR) {
        ngx_log_error(NGX_LOG_EMERG, log, ngx_errno,
                      "siteflow: the spool file \"%s\" cannot be read "
                      "(a dangling symbolic link?); move it away or repair "
                      "it, nginx does not start without it", name);
        return NGX_INVALID_FILE;
    }

    fd = NGX_INVALID_FILE;

    if (ngx_is_file(fi)) {
        fd = open((char *) name, O_RDONLY|O_NONBLOCK|O_CLOEXEC);

        if (fd == NGX_INVALID_FILE) {
            ngx_log_error(NGX_LOG_EMERG, log, ngx_errno,
                          "siteflow: the spool file \"%s\" cannot be "
                          "opened; nginx does not start without it", name);
            return NGX_INVALID_FILE;
        }

        if (ngx_fd_info(fd, fi) != NGX_FILE_ERROR && ngx_is_file(fi)) {
            return fd;
        }

        (void) ngx_close_file(fd);
    }

    what = ngx_is_dir(fi) ? "a directory"
           : S_ISFIFO(fi->st_mode) ? "a FIFO"
           : (S_ISCHR(fi->st_mode) || S_ISBLK(fi->st_mode)) ? "a device"
           : S_ISSOCK(fi->st_mode) ? "a socket"
           : "not a regular file";

    ngx_log_error(NGX_LOG_EMERG, log, 0,
                  "siteflow: the spool file \"%s\" is %s; move it away, "
                  "nginx does not start with it", name, what);

    return NGX_INVALID_FILE;
}


static ngx_int_t
ngx_http_siteflow_queue_load(ngx_http_siteflow_queue_conf_t *qc, u_char *name,
    ngx_uint_t last, ngx_log_t *log)
{
    u_char                    *buf;
    size_t                     good, size;
    ssize_t                    n;
    uint64_t                   id;
    ngx_fd_t                   fd;
    ngx_array_t                keep;
    sf_qrec_stats_t            st;
    ngx_http_siteflow_load_t   ld;
    ngx_file_info_t            fi;

    fd = ngx_http_siteflow_spool_open(name, log, &fi);
    if (fd == NGX_INVALID_FILE) {
        return NGX_ERROR;
    }

    size = (size_t) ngx_file_size(&fi);

    if (size == 0) {
        (void) ngx_close_file(fd);
        return NGX_OK;
    }

    buf = ngx_alloc(size, log);
    if (buf == NULL) {
        (void) ngx_close_file(fd);
        return NGX_ERROR;
    }

    for (good = 0; good < size; good += n) {
        n = ngx_read_fd(fd, buf + good, size - good);

        if (n == -1) {
            ngx_log_error(NGX_LOG_EMERG, log, ngx_errno,
                          "siteflow: the spool file \"%s\" cannot be read; "
                          "nginx does not start without it", name);
            (void) ngx_close_file(fd);
            ngx_free(buf);
            return NGX_ERROR;
        }

        if (n == 0) {
            break;
        }
    }

    (void) ngx_close_file(fd);

    n = (ssize_t) good;

    ld.qc = qc;
    ld.log = log;
    ld.name = name;
    ld.pool = ngx_create_pool(4096, log);

    if (ld.pool == NULL) {
        ngx_free(buf);
        return NGX_ERROR;
    }

    /*
     * a damaged record does not end the file: the scan goes on at the
     * next valid record (each record is checksummed and starts with a
     * magic word), and every damaged stretch is logged
     */

    (void) sf_qrec_scan_resync(buf, n, ngx_http_siteflow_queue_record,
                               ngx_http_siteflow_load_gap, &ld, &st);

    if (st.gaps || (st.tail && !last)) {

        /*
         * corruption of records that were synced, not a torn write: a
         * torn write can only be the end of the last segment
         */

        ngx_log_error(NGX_LOG_ALERT, log, 0,
                      "siteflow: the spool file \"%s\" is damaged: %uz "
                      "bytes skipped (%uz damaged in %uz places, %uz at "
                      "its end), %uz records recovered; the original is "
                      "kept as \"%s.damaged\" (see \"Damaged spool "
                      "files\" in docs/delivery.md)",
                      name, st.skipped + st.tail, st.skipped, st.gaps,
                      st.tail, st.records, name);

        qc->sh->damaged += st.gaps + (st.tail ? 1 : 0);
        qc->sh->damaged_bytes += st.skipped + st.tail;

        if (ngx_array_init(&keep, ld.pool, 64,
                           sizeof(ngx_http_siteflow_range_t))
            == NGX_OK
            && sf_qrec_scan_resync(buf, n, ngx_http_siteflow_load_keep,
                                   NULL, &keep, NULL)
               == SF_QREC_OK)
        {
            ngx_http_siteflow_queue_keep_damaged(name, &keep, log);
        }

        /*
         * the ids of jobs whose records were lost are never given again:
         * a record takes at least 32 bytes
         */

        id = st.max_job_id + 1 + (st.skipped + st.tail) / SF_QREC_HEADER_SIZE;

        if (id > qc->sh->next_id) {
            qc->sh->next_id = id;
        }

    } else if (st.tail) {
        /* a torn write at the tail: never delivered as half a job */
        ngx_log_error(NGX_LOG_WARN, log, 0,
                      "siteflow: \"%s\": %uz bytes after offset %uz are not "
                      "a complete record (%s) and were ignored",
                      name, st.tail, st.good_end,
                      sf_qrec_strerror(st.tail_rc));
    }

    if (st.max_job_id >= qc->sh->next_id) {
        qc->sh->next_id = st.max_job_id + 1;
    }

    ngx_destroy_pool(ld.pool);
    ngx_free(buf);

    return NGX_OK;
}


/*
 * A damaged file is kept for a person (a hard link, "<name>.damaged"),
 * and replaced by the records that were read, so that it is not damaged
 * again at the next start and compaction may drop it as usual; the
 * copy is never removed by the module.
 */

static void
ngx_http_siteflow_queue_keep_damaged(u_char *name, ngx_array_t *keep,
    ngx_log_t *log)
{
    u_char                     *p, *slash;
    ngx_fd_t                    fd;
    ngx_uint_t                  i;
    ngx_http_siteflow_range_t  *k;
    u_char                      aside[NGX_MAX_PATH];
    u_char                      tmp[NGX_MAX_PATH];

    ngx_snprintf(aside, NGX_MAX_PATH, "%s.damaged%Z", name);

    if (link((char *) name, (char *) aside) == -1) {

        if (ngx_errno == NGX_EEXIST) {
            ngx_snprintf(aside, NGX_MAX_PATH, "%s.%T.sfq.damaged%Z", name,
                         ngx_time());
        }

        if (ngx_errno != NGX_EEXIST
            || link((char *) name, (char *) aside) == -1)
        {
            ngx_log_error(NGX_LOG_ALERT, log, ngx_errno,
                          "siteflow: link() \"%s\" to \"%s\" failed; the "
                          "damaged file is left as it is", name, aside);
            return;
        }
    }

    ngx_snprintf(tmp, NGX_MAX_PATH, "%s.tmp%Z", name);

    fd = open((char *) tmp, O_WRONLY|O_CREAT|O_TRUNC|O_CLOEXEC, 0600);

    if (fd == NGX_INVALID_FILE) {
        goto failed;
    }

    k = keep->elts;

    for (i = 0; i < keep->nelts; i++) {
        if (write(fd, k[i].start, k[i].len) != (ssize_t) k[i].len) {
            (void) close(fd);
            goto failed;
        }
    }

    if (fsync(fd) == -1) {
        (void) close(fd);
        goto failed;
    }

    (void) close(fd);

    if (rename((char *) tmp, (char *) name) == -1) {
        goto failed;
    }

    slash = (u_char *) strrchr((char *) name, (int) '/');

    if (slash) {
        p = ngx_cpymem(tmp, name, slash - name);
        *p = '\0';

        fd = open((char *) tmp, O_RDONLY|O_CLOEXEC);

        if (fd != NGX_INVALID_FILE) {
            (void) fsync(fd);
            (void) close(fd);
        }
    }

    ngx_log_error(NGX_LOG_NOTICE, log, 0,
                  "siteflow: \"%s\" now holds the %ui records that were "
                  "read; the damaged original is \"%s\"",
                  name, keep->nelts, aside);
    return;

failed:

    ngx_log_error(NGX_LOG_ALERT, log, ngx_errno,
                  "siteflow: rewriting the damaged \"%s\" failed; it is "
                  "left as it is (its copy is \"%s\")", name, aside);

    (void) unlink((char *) tmp);
}


/* a file kept aside: the job ids it holds or held stay used */

static void
ngx_http_siteflow_queue_damaged_ids(ngx_http_siteflow_queue_conf_t *qc,
    u_char *name, ngx_log_t *log)
{
    u_char           *buf;
    size_t            size;
    ssize_t           n;
    uint64_t          id;
    ngx_fd_t          fd;
    ngx_file_info_t   fi;
    sf_qrec_stats_t   st;

    if (ngx_file_info(name, &fi) == NGX_FILE_ERROR || !ngx_is_file(&fi)) {
        return;
    }

    size = (size_t) ngx_file_size(&fi);

    fd = open((char *) name, O_RDONLY|O_NONBLOCK|O_CLOEXEC);
    if (fd == NGX_INVALID_FILE) {
        return;
    }

    buf = ngx_alloc(size ? size : 1, log);
    if (buf == NULL) {
        (void) close(fd);
        return;
    }

    n = ngx_read_fd(fd, buf, size);

    (void) close(fd);

    if (n > 0) {
        (void) sf_qrec_scan_resync(buf, n, NULL, NULL, NULL, &st);

        id = st.max_job_id + 1 + (st.skipped + st.tail) / SF_QREC_HEADER_SIZE;

        if (id > qc->sh->next_id) {
            qc->sh->next_id = id;
        }
    }

    ngx_free(buf);
}


static int
ngx_http_siteflow_queue_record(const sf_qrec_t *r, void *data)
{
    ngx_http_siteflow_load_t  *ld = data;

    json_t                   *root, *v;
    json_error_t              err;
    ngx_http_siteflow_op_t    op;

    root = json_loadb((const char *) r->payload, r->len, 0, &err);
    if (root == NULL || !json_is_object(root)) {
        ngx_log_error(NGX_LOG_WARN, ld->log, 0,
                      "siteflow: a spool record of job %uL is not valid "
                      "JSON, ignored", r->job_id);
        json_decref(root);
        return 0;
    }

    ngx_memzero(&op, sizeof(ngx_http_siteflow_op_t));

    op.type = r->type;
    op.id = r->job_id;

#define sf_str(dst, key)                                                     \
    v = json_object_get(root, key);                                          \
    if (json_is_string(v)) {                                                 \
        (dst).data = (u_char *) json_string_value(v);                        \
        (dst).len = json_string_length(v);                                   \
    }
#define sf_int(dst, key)                                                     \
    v = json_object_get(root, key);                                          \
    if (json_is_integer(v)) {                                                \
        (dst) = json_integer_value(v);                                       \
    }

    switch (r->type) {

    case SF_QREC_JOB:
        sf_int(op.kind, "k");
        sf_str(op.storefront, "s");
        sf_str(op.order_id, "o");
        sf_int(op.created_ms, "c");

        v = json_object_get(root, "j");
        op.payload.data = (u_char *) json_dumps(v, JSON_COMPACT);

        if (op.payload.data == NULL) {
            break;
        }

        op.payload.len = ngx_strlen(op.payload.data);

        if (op.id >= ld->qc->sh->next_id) {
            ld->qc->sh->next_id = op.id + 1;
        }

        ngx_shmtx_lock(&ld->qc->shpool->mutex);
        ngx_http_siteflow_apply(ld->qc->sh, ld->qc->shpool, &op);
        ngx_shmtx_unlock(&ld->qc->shpool->mutex);

        free(op.payload.data);
        break;

    case SF_QREC_STATE:
        sf_int(op.version, "v");
        sf_int(op.state, "st");
        sf_int(op.attempts, "a");
        sf_int(op.next_ms, "n");
        sf_int(op.maybe_sent, "ms");
        sf_str(op.error, "e");

        v = json_object_get(root, "r");

        if (v != NULL) {
            op.results.data = (u_char *) json_dumps(v, JSON_COMPACT);
            op.results.len = op.results.data
                             ? ngx_strlen(op.results.data) : 0;
        }

        op.release = 1;

        ngx_shmtx_lock(&ld->qc->shpool->mutex);
        ngx_http_siteflow_apply(ld->qc->sh, ld->qc->shpool, &op);
        ngx_shmtx_unlock(&ld->qc->shpool->mutex);

        free(op.results.data);
        break;

    case SF_QREC_INDEX:
        sf_int(op.postback, "pb");
        sf_int(op.version, "v");
        sf_str(op.idx.storefront, "s");
        sf_str(op.idx.order_id, "p");
        sf_str(op.idx.source_id, "src");
        sf_str(op.idx.siteflow_id, "sf");
        sf_int(op.idx.state, "st");
        sf_int(op.idx.rank, "rk");
        sf_int(op.idx.fingerprint, "fp");
        sf_int(op.idx.updated_ms, "u");
        sf_int(op.idx.sent_ms, "t");

        ngx_shmtx_lock(&ld->qc->shpool->mutex);
        ngx_http_siteflow_idx_apply(ld->qc->sh, ld->qc->shpool, &op);
        ngx_shmtx_unlock(&ld->qc->shpool->mutex);
        break;

    default:
        break;
    }

#undef sf_str
#undef sf_int

    json_decref(root);

    return 0;
}


/* process start and exit */

ngx_int_t
ngx_http_siteflow_queue_init_process(ngx_cycle_t *cycle)
{
    ngx_http_siteflow_main_conf_t  *smcf;

    if (ngx_process != NGX_PROCESS_WORKER
        && ngx_process != NGX_PROCESS_SINGLE)
    {
        return NGX_OK;
    }

    smcf = ngx_http_cycle_get_module_main_conf(cycle,
                                               ngx_http_siteflow_module);
    if (smcf == NULL || smcf->queue == NULL) {
        return NGX_OK;
    }

    ngx_http_siteflow_started = 1;

    if (ngx_process == NGX_PROCESS_WORKER) {
        /*
         * a worker whose master is killed must not live on beside the
         * nginx started next on the same spool: it is sent SIGTERM and
         * writes nothing more (ngx_http_siteflow_write())
         */

        ngx_http_siteflow_master = getppid();

#if (NGX_LINUX)
        if (prctl(PR_SET_PDEATHSIG, SIGTERM, 0, 0, 0) == -1) {
            ngx_log_error(NGX_LOG_ALERT, cycle->log, ngx_errno,
                          "siteflow: prctl(PR_SET_PDEATHSIG) failed");
        }
#endif
    }

    if (access((char *) smcf->queue->path->name.data, W_OK|X_OK) != 0) {
        ngx_log_error(NGX_LOG_ALERT, cycle->log, ngx_errno,
                      "siteflow: the spool \"%V\" is not writable by the "
                      "worker processes; every hook and postback will be "
                      "refused with 503 until it is",
                      &smcf->queue->path->name);
    }

    ngx_http_siteflow_dummy.fd = (ngx_socket_t) -1;

    ngx_http_siteflow_flush_event.handler = ngx_http_siteflow_flush_handler;
    ngx_http_siteflow_flush_event.data = &ngx_http_siteflow_dummy;
    ngx_http_siteflow_flush_event.log = cycle->log;

    /* keeps an exiting worker alive while a batch is being made durable */
    ngx_http_siteflow_hold_event.handler = ngx_http_siteflow_flush_handler;
    ngx_http_siteflow_hold_event.data = &ngx_http_siteflow_dummy;
    ngx_http_siteflow_hold_event.log = cycle->log;

    if (ngx_worker != 0) {
        return NGX_OK;
    }

    if (ngx_http_siteflow_curl_init_process(cycle, smcf->concurrency, 0)
        != NGX_OK)
    {
        return NGX_ERROR;
    }

    ngx_http_siteflow_consumer = 1;

    ngx_http_siteflow_consumer_event.handler =
                                         ngx_http_siteflow_consumer_handler;
    ngx_http_siteflow_consumer_event.data = &ngx_http_siteflow_dummy;
    ngx_http_siteflow_consumer_event.log = cycle->log;
    ngx_http_siteflow_consumer_event.cancelable = 1;

    /* jobs left running by a process that is gone are released first */
    ngx_http_siteflow_last_sweep = 0;

    ngx_add_timer(&ngx_http_siteflow_consumer_event, 1);

    return NGX_OK;
}


void
ngx_http_siteflow_queue_exit_process(ngx_cycle_t *cycle)
{
    ngx_http_siteflow_batch_t  *b;

    if (ngx_http_siteflow_qc == NULL) {
        return;
    }

    /*
     * what is waiting for a write is written now, blocking: the process
     * is going away, and answers already sent must stay true
     */

    /*
     * (a batch still being synced in a thread is complete on disk when
     * the thread pool lets the process go; it is not applied here, and
     * need not be: the records are versioned)
     */

    b = ngx_http_siteflow_collecting;

    if (b != NULL && b->len) {
        ngx_http_siteflow_collecting = NULL;

        if (ngx_http_siteflow_write(b) == NGX_OK) {
            ngx_http_siteflow_sync(b, cycle->log);
        }
    }

    if (ngx_http_siteflow_consumer) {
        ngx_http_siteflow_curl_exit_process(cycle);
    }

    if (ngx_http_siteflow_seg_fd != NGX_INVALID_FILE) {
        (void) ngx_close_file(ngx_http_siteflow_seg_fd);
        ngx_http_siteflow_seg_fd = NGX_INVALID_FILE;
    }
}


/* writing: batches of records, one write() and one fdatasync() each */

static ngx_http_siteflow_batch_t *
ngx_http_siteflow_batch(void)
{
    if (ngx_http_siteflow_collecting == NULL) {
        ngx_http_siteflow_collecting = ngx_http_siteflow_batch_alloc();
    }

    return ngx_http_siteflow_collecting;
}


static ngx_http_siteflow_batch_t *
ngx_http_siteflow_batch_alloc(void)
{
    ngx_pool_t                 *pool;
    ngx_http_siteflow_batch_t  *b;

    pool = ngx_create_pool(4096, ngx_cycle->log);
    if (pool == NULL) {
        return NULL;
    }

    b = ngx_pcalloc(pool, sizeof(ngx_http_siteflow_batch_t));
    if (b == NULL) {
        ngx_destroy_pool(pool);
        return NULL;
    }

    b->pool = pool;
    b->fd = NGX_INVALID_FILE;
    b->dir = NGX_INVALID_FILE;

    if (ngx_array_init(&b->ops, pool, 8, sizeof(ngx_http_siteflow_op_t))
        != NGX_OK)
    {
        ngx_destroy_pool(pool);
        return NULL;
    }

    return b;
}


static ngx_int_t
ngx_http_siteflow_append(ngx_http_siteflow_op_t *op)
{
    ngx_http_siteflow_op_t     *o;
    ngx_http_siteflow_batch_t  *b;

    b = ngx_http_siteflow_batch();
    if (b == NULL) {
        return NGX_ERROR;
    }

    o = ngx_array_push(&b->ops);
    if (o == NULL) {
        return NGX_ERROR;
    }

    *o = *op;

    if (ngx_http_siteflow_encode(o, b) != NGX_OK) {
        b->ops.nelts--;
        return NGX_ERROR;
    }

    if (!ngx_http_siteflow_flush_event.posted) {
        ngx_post_event(&ngx_http_siteflow_flush_event, &ngx_posted_events);
    }

    return NGX_OK;
}


/* the op's record into the batch buffer; the op's strings are copied */

static ngx_int_t
ngx_http_siteflow_encode(ngx_http_siteflow_op_t *op,
    ngx_http_siteflow_batch_t *b)
{
    char       *text;
    size_t      len, size, cap;
    u_char     *p;
    json_t     *root, *v;
    sf_qrec_t   r;
    ngx_str_t  *s[8];
    ngx_uint_t  i, n;

    root = json_object();
    if (root == NULL) {
        return NGX_ERROR;
    }

#define sf_set(key, value)                                                   \
    if ((v = (value)) == NULL || json_object_set_new(root, key, v) != 0) {   \
        goto failed;                                                         \
    }
#define sf_jstr(str)  json_stringn((const char *) (str).data, (str).len)

    switch (op->type) {

    case SF_QREC_JOB:
        sf_set("k", json_integer(op->kind));
        sf_set("s", sf_jstr(op->storefront));
        sf_set("o", sf_jstr(op->order_id));
        sf_set("c", json_integer(op->created_ms));
        sf_set("j", json_loadb((const char *) op->payload.data,
                               op->payload.len, 0, NULL));
        break;

    case SF_QREC_STATE:
        sf_set("v", json_integer(op->version));
        sf_set("st", json_integer(op->state));
        sf_set("a", json_integer(op->attempts));
        sf_set("n", json_integer(op->next_ms));
        sf_set("ms", json_integer(op->maybe_sent));

        if (op->error.len) {
            sf_set("e", sf_jstr(op->error));
        }

        if (op->results.len) {
            sf_set("r", json_loadb((const char *) op->results.data,
                                   op->results.len, 0, NULL));
        }

        break;

    default: /* SF_QREC_INDEX */
        sf_set("pb", json_integer(op->postback));
        sf_set("v", json_integer(op->version));
        sf_set("s", sf_jstr(op->idx.storefront));
        sf_set("p", sf_jstr(op->idx.order_id));

        if (op->postback) {
            sf_set("rk", json_integer(op->idx.rank));
            sf_set("fp", json_integer(op->idx.fingerprint));

        } else {
            sf_set("src", sf_jstr(op->idx.source_id));
            sf_set("sf", sf_jstr(op->idx.siteflow_id));
            sf_set("st", json_integer(op->idx.state));
            sf_set("u", json_integer(op->idx.updated_ms));
            sf_set("t", json_integer(op->idx.sent_ms));
        }

        break;
    }

#undef sf_set
#undef sf_jstr

    text = json_dumps(root, JSON_COMPACT);
    json_decref(root);

    if (text == NULL) {
        return NGX_ERROR;
    }

    len = ngx_strlen(text);
    size = sf_qrec_size(len);

    if (size == 0) {
        free(text);
        return NGX_ERROR;
    }

    if (b->len + size > b->cap) {
        cap = ngx_max(b->cap * 2, b->len + size);
        cap = ngx_max(cap, 4096);

        p = ngx_palloc(b->pool, cap);
        if (p == NULL) {
            free(text);
            return NGX_ERROR;
        }

        if (b->len) {
            ngx_memcpy(p, b->buf, b->len);
        }

        b->buf = p;
        b->cap = cap;
    }

    r.type = (uint16_t) op->type;
    r.job_id = op->id;
    r.time_ms = ngx_http_siteflow_now_ms();
    r.payload = (const unsigned char *) text;
    r.len = len;

    if (sf_qrec_encode(&r, b->buf + b->len, b->cap - b->len) != size) {
        free(text);
        return NGX_ERROR;
    }

    free(text);

    b->len += size;

    /* the op outlives the caller's buffers */

    s[0] = &op->storefront;
    s[1] = &op->order_id;
    s[2] = &op->payload;
    s[3] = &op->error;
    s[4] = &op->results;
    s[5] = &op->idx.storefront;
    s[6] = &op->idx.order_id;
    s[7] = &op->idx.source_id;
    n = 8;

    for (i = 0; i < n; i++) {
        if (s[i]->len == 0) {
            continue;
        }

        p = ngx_pnalloc(b->pool, s[i]->len);
        if (p == NULL) {
            return NGX_ERROR;
        }

        ngx_memcpy(p, s[i]->data, s[i]->len);
        s[i]->data = p;
    }

    if (op->idx.siteflow_id.len) {
        p = ngx_pnalloc(b->pool, op->idx.siteflow_id.len);
        if (p == NULL) {
            return NGX_ERROR;
        }

        ngx_memcpy(p, op->idx.siteflow_id.data, op->idx.siteflow_id.len);
        op->idx.siteflow_id.data = p;
    }

    return NGX_OK;

failed:

    json_decref(root);
    return NGX_ERROR;
}


static void
ngx_http_siteflow_flush_handler(ngx_event_t *ev)
{
    if (ev == &ngx_http_siteflow_hold_event) {
        /* re-armed until the batch in flight is done */
        if (ngx_http_siteflow_flying) {
            ngx_add_timer(ev, 1000);
        }

        return;
    }

    ngx_http_siteflow_flush();
}


static void
ngx_http_siteflow_flush(void)
{
    ngx_http_siteflow_batch_t  *b;
#if (NGX_THREADS)
    ngx_thread_task_t          *task;
#endif

    if (ngx_http_siteflow_flying != NULL) {
        return;     /* the next batch goes when this one is durable */
    }

    b = ngx_http_siteflow_collecting;

    if (b == NULL || b->ops.nelts == 0) {
        return;
    }

    ngx_http_siteflow_collecting = NULL;
    ngx_http_siteflow_flying = b;

    if (ngx_http_siteflow_write(b) != NGX_OK) {
        ngx_http_siteflow_batch_end(b);
        return;
    }

    if (!ngx_http_siteflow_hold_event.timer_set) {
        ngx_add_timer(&ngx_http_siteflow_hold_event, 1000);
    }

#if (NGX_THREADS)

    task = ngx_thread_task_alloc(b->pool, sizeof(void *));
    if (task == NULL) {
        b->err = NGX_ENOMEM;
        b->failed = "ngx_thread_task_alloc()";
        ngx_http_siteflow_batch_end(b);
        return;
    }

    *(ngx_http_siteflow_batch_t **) task->ctx = b;
    task->handler = ngx_http_siteflow_sync_task;
    task->event.handler = ngx_http_siteflow_synced;
    task->event.data = b;

    if (ngx_thread_task_post(ngx_http_siteflow_qc->thread_pool, task)
        == NGX_OK)
    {
        return;
    }

#endif

    /* no thread pool: the fsync runs here */

    ngx_http_siteflow_sync(b, ngx_cycle->log);
    ngx_http_siteflow_batch_end(b);
}


/* under the write lock: the right segment, one write(), cut on failure */

static ngx_int_t
ngx_http_siteflow_write(ngx_http_siteflow_batch_t *b)
{
    off_t                            off;
    ssize_t                          n;
    ngx_fd_t                         fd;
    ngx_http_siteflow_queue_sh_t    *sh;
    ngx_http_siteflow_queue_conf_t  *qc;
    u_char                           file[NGX_MAX_PATH];

    qc = ngx_http_siteflow_qc;
    sh = qc->sh;

    if (ngx_http_siteflow_master && getppid() != ngx_http_siteflow_master) {
        /* killed with its master, as far as the spool is concerned */
        b->err = NGX_ESRCH;
        b->failed = "write() by a worker whose master process is gone";
        return NGX_ERROR;
    }

    ngx_shmtx_lock(qc->write_lock);

    if (ngx_http_siteflow_seg_fd == NGX_INVALID_FILE
        || ngx_http_siteflow_seg_seq != sh->segment)
    {
        if (ngx_http_siteflow_seg_fd != NGX_INVALID_FILE) {
            (void) ngx_close_file(ngx_http_siteflow_seg_fd);
            ngx_http_siteflow_seg_fd = NGX_INVALID_FILE;
        }

        ngx_snprintf(file, NGX_MAX_PATH, "%V/journal-%016uxL.sfq%Z",
                     &qc->path->name, sh->segment);

        fd = open((char *) file, O_WRONLY|O_APPEND|O_CREAT|O_CLOEXEC, 0600);

        if (fd == NGX_INVALID_FILE) {
            b->err = ngx_errno;
            b->failed = "open()";
            ngx_shmtx_unlock(qc->write_lock);
            return NGX_ERROR;
        }

        ngx_http_siteflow_seg_fd = fd;
        ngx_http_siteflow_seg_seq = sh->segment;
        ngx_http_siteflow_seg_synced = 0;
    }

    off = lseek(ngx_http_siteflow_seg_fd, 0, SEEK_END);

    n = write(ngx_http_siteflow_seg_fd, b->buf, b->len);

    if (n != (ssize_t) b->len) {
        b->err = (n == -1) ? ngx_errno : NGX_ENOSPC;
        b->failed = "write()";

        /* half a batch is never left behind for others to append to */

        if (n > 0
            && (off == -1 || ftruncate(ngx_http_siteflow_seg_fd, off) == -1))
        {
            ngx_log_error(NGX_LOG_ALERT, ngx_cycle->log, ngx_errno,
                          "siteflow: ftruncate() of the spool segment "
                          "failed; the torn record is skipped on start");
            b->torn = 1;
        }

        ngx_shmtx_unlock(qc->write_lock);
        return NGX_ERROR;
    }

    b->seq = ngx_http_siteflow_seg_seq;
    (void) ngx_atomic_fetch_add(&sh->inflight[b->seq & 1], 1);

    ngx_shmtx_unlock(qc->write_lock);

    /* the thread uses its own descriptors: rotation may close ours */

    b->fd = dup(ngx_http_siteflow_seg_fd);

    if (b->fd == NGX_INVALID_FILE) {
        b->err = ngx_errno;
        b->failed = "dup()";
        (void) ngx_atomic_fetch_add(&sh->inflight[b->seq & 1], -1);
        return NGX_ERROR;
    }

    if (!ngx_http_siteflow_seg_synced) {
        b->dir = open((char *) qc->path->name.data, O_RDONLY|O_CLOEXEC);

        if (b->dir == NGX_INVALID_FILE) {
            b->err = ngx_errno;
            b->failed = "open() of the spool directory";
            (void) ngx_close_file(b->fd);
            b->fd = NGX_INVALID_FILE;
            (void) ngx_atomic_fetch_add(&sh->inflight[b->seq & 1], -1);
            return NGX_ERROR;
        }
    }

    return NGX_OK;
}


/* in a thread (or at exit): make the batch durable */

static void
ngx_http_siteflow_sync(void *data, ngx_log_t *log)
{
    ngx_http_siteflow_batch_t  *b = data;

    if (b->fd != NGX_INVALID_FILE && fdatasync(b->fd) == -1) {
        b->err = ngx_errno;
        b->failed = "fdatasync()";
    }

    if (b->err == 0 && b->dir != NGX_INVALID_FILE && fsync(b->dir) == -1) {
        b->err = ngx_errno;
        b->failed = "fsync() of the spool directory";
    }
}


#if (NGX_THREADS)

static void
ngx_http_siteflow_sync_task(void *data, ngx_log_t *log)
{
    ngx_http_siteflow_sync(*(ngx_http_siteflow_batch_t **) data, log);
}

#endif


static void
ngx_http_siteflow_synced(ngx_event_t *ev)
{
    ngx_http_siteflow_batch_end(ev->data);
}


/* durable (or not): apply to the table, answer the waiters, go on */

static void
ngx_http_siteflow_batch_end(ngx_http_siteflow_batch_t *b)
{
    ngx_int_t                        rc;
    ngx_uint_t                       i;
    ngx_http_siteflow_op_t          *op;
    ngx_http_siteflow_queue_sh_t    *sh;
    ngx_http_siteflow_queue_conf_t  *qc;

    qc = ngx_http_siteflow_qc;
    sh = qc->sh;
    op = b->ops.elts;

    if (b->fd != NGX_INVALID_FILE) {
        (void) ngx_close_file(b->fd);
    }

    if (b->dir != NGX_INVALID_FILE) {
        (void) ngx_close_file(b->dir);

        if (b->err == 0 && b->seq == ngx_http_siteflow_seg_seq) {
            ngx_http_siteflow_seg_synced = 1;
        }
    }

    if (b->err) {
        rc = NGX_ERROR;

        ngx_shmtx_lock(&qc->shpool->mutex);

        for (i = 0; i < b->ops.nelts; i++) {
            if (op[i].job) {
                ngx_slab_free_locked(qc->shpool, op[i].job);
                op[i].job = NULL;
            }
        }

        ngx_shmtx_unlock(&qc->shpool->mutex);

        /*
         * a full disk refuses every batch: one line per 10 seconds, with
         * how many were refused in between
         */

        if (ngx_time() - ngx_http_siteflow_refused_time >= 10) {
            ngx_log_error(NGX_LOG_CRIT, ngx_cycle->log, b->err,
                          "siteflow: %s failed in the spool \"%V\": %ui "
                          "records were not made durable and are refused "
                          "(and %ui earlier batches since the last such "
                          "message)",
                          b->failed, &qc->path->name, b->ops.nelts,
                          ngx_http_siteflow_refused);

            ngx_http_siteflow_refused_time = ngx_time();
            ngx_http_siteflow_refused = 0;

        } else {
            ngx_http_siteflow_refused++;
        }

        ngx_http_siteflow_refusing = 1;

        /*
         * the next batch starts a new segment only if this one may have
         * left part of itself in the segment (a cut write that could not
         * be truncated, a failed sync); a write that wrote nothing, or
         * was cut back, leaves the segment as it was: a full disk does
         * not get a new empty segment per refused batch
         */

        if ((b->torn || b->fd != NGX_INVALID_FILE)
            && (b->seq == 0 || b->seq == ngx_http_siteflow_seg_seq))
        {
            ngx_shmtx_lock(qc->write_lock);

            if (sh->segment == ngx_http_siteflow_seg_seq
                && ngx_http_siteflow_seg_fd != NGX_INVALID_FILE)
            {
                sh->segment++;
            }

            ngx_shmtx_unlock(qc->write_lock);
        }

    } else {
        rc = NGX_OK;

        if (ngx_http_siteflow_refusing) {
            ngx_log_error(NGX_LOG_NOTICE, ngx_cycle->log, 0,
                          "siteflow: the spool \"%V\" takes records again "
                          "(%ui batches refused since the last message)",
                          &qc->path->name, ngx_http_siteflow_refused);
            ngx_http_siteflow_refusing = 0;
            ngx_http_siteflow_refused = 0;
            ngx_http_siteflow_refused_time = 0;
        }

        ngx_shmtx_lock(&qc->shpool->mutex);

        for (i = 0; i < b->ops.nelts; i++) {
            if (op[i].type == SF_QREC_INDEX) {
                ngx_http_siteflow_idx_apply(sh, qc->shpool, &op[i]);

            } else {
                ngx_http_siteflow_apply(sh, qc->shpool, &op[i]);
            }
        }

        ngx_shmtx_unlock(&qc->shpool->mutex);

        (void) ngx_atomic_fetch_add(&sh->generation, 1);
    }

    if (b->seq) {
        (void) ngx_atomic_fetch_add(&sh->inflight[b->seq & 1], -1);
    }

    if (ngx_http_siteflow_flying == b) {
        ngx_http_siteflow_flying = NULL;
    }

    for (i = 0; i < b->ops.nelts; i++) {
        if (op[i].handler) {
            op[i].handler(op[i].data, rc, op[i].id);
        }
    }

    ngx_destroy_pool(b->pool);

    if (ngx_http_siteflow_consumer) {
        ngx_http_siteflow_consumer_wake();
    }

    ngx_http_siteflow_flush();
}


/* the job table (the shpool mutex is held) */

static void
ngx_http_siteflow_apply(ngx_http_siteflow_queue_sh_t *sh,
    ngx_slab_pool_t *shpool, ngx_http_siteflow_op_t *op)
{
    ngx_http_siteflow_job_t  *job;

    if (op->type == SF_QREC_JOB) {
        if (ngx_http_siteflow_job_find(sh, op->id) != NULL) {
            if (op->job) {
                ngx_slab_free_locked(shpool, op->job);
            }

            return;
        }

        job = op->job ? op->job : ngx_http_siteflow_job_new(shpool, op);
        if (job == NULL) {
            ngx_log_error(NGX_LOG_ALERT, ngx_cycle->log, 0,
                          "siteflow: the \"siteflow_spool\" zone is full; "
                          "job %uL is on disk but not scheduled until "
                          "nginx restarts with a larger size=", op->id);
            return;
        }

        ngx_rbtree_insert(&sh->jobs, &job->node);

        /* jobs arrive almost in id order: insert from the tail */

        {
            ngx_queue_t              *q;
            ngx_http_siteflow_job_t  *j;

            for (q = ngx_queue_last(&sh->all);
                 q != ngx_queue_sentinel(&sh->all);
                 q = ngx_queue_prev(q))
            {
                j = ngx_queue_data(q, ngx_http_siteflow_job_t, all);

                if (j->id < job->id) {
                    break;
                }
            }

            ngx_queue_insert_after(q, &job->all);
        }

        sh->counts[SF_QSTATE_PENDING]++;

        ngx_http_siteflow_chain_add(sh, shpool, job);

        return;
    }

    /* SF_QREC_STATE */

    job = ngx_http_siteflow_job_find(sh, op->id);
    if (job == NULL) {
        return;     /* finished and gone */
    }

    if (op->version < job->version) {
        return;
    }

    ngx_http_siteflow_job_state(sh, shpool, job, op);
}


static ngx_http_siteflow_job_t *
ngx_http_siteflow_job_new(ngx_slab_pool_t *shpool, ngx_http_siteflow_op_t *op)
{
    u_char                   *p;
    size_t                    size;
    ngx_http_siteflow_job_t  *job;

    size = sizeof(ngx_http_siteflow_job_t) + op->storefront.len
           + op->order_id.len + op->payload.len;

    job = ngx_slab_alloc_locked(shpool, size);
    if (job == NULL) {
        return NULL;
    }

    ngx_memzero(job, sizeof(ngx_http_siteflow_job_t));

    job->id = op->id;
    job->node.key = (ngx_rbtree_key_t) op->id;
    job->kind = (uint8_t) op->kind;
    job->state = SF_QSTATE_PENDING;
    job->created_ms = op->created_ms;

    p = (u_char *) job + sizeof(ngx_http_siteflow_job_t);

    job->storefront.data = p;
    job->storefront.len = op->storefront.len;
    p = ngx_cpymem(p, op->storefront.data, op->storefront.len);

    job->order_id.data = p;
    job->order_id.len = op->order_id.len;
    p = ngx_cpymem(p, op->order_id.data, op->order_id.len);

    job->payload.data = p;
    job->payload.len = op->payload.len;
    ngx_memcpy(p, op->payload.data, op->payload.len);

    return job;
}


static void
ngx_http_siteflow_job_state(ngx_http_siteflow_queue_sh_t *sh,
    ngx_slab_pool_t *shpool, ngx_http_siteflow_job_t *job,
    ngx_http_siteflow_op_t *op)
{
    ngx_uint_t  old;

    old = job->state;

    job->version = op->version;
    job->attempts = (uint32_t) op->attempts;
    job->next_ms = op->next_ms;
    job->maybe_sent = op->maybe_sent ? 1 : 0;

    if (ngx_http_siteflow_shm_str(shpool, &job->error, &op->error)
        != NGX_OK
        || ngx_http_siteflow_shm_str(shpool, &job->results, &op->results)
           != NGX_OK)
    {
        ngx_log_error(NGX_LOG_ALERT, ngx_cycle->log, 0,
                      "siteflow: the \"siteflow_spool\" zone is full; "
                      "the last error of job %uL is not shown", job->id);
    }

    if (op->state <= SF_QSTATE_SKIPPED) {
        sh->counts[old]--;
        job->state = (uint8_t) op->state;
        sh->counts[job->state]++;
    }

    if (op->release && job->running) {
        job->running = 0;
        ngx_queue_remove(&job->run_link);
    }

    if (job->running) {
        return;
    }

    switch (job->state) {

    case SF_QSTATE_PENDING:
    case SF_QSTATE_RETRYING:
        if (job->finished) {
            ngx_queue_remove(&job->link);
            job->finished = 0;
            sh->nfinished--;
        }

        if (job->order == NULL) {
            ngx_http_siteflow_chain_add(sh, shpool, job);

        } else {
            ngx_http_siteflow_due_remove(sh, job);
            ngx_http_siteflow_chain_sync(sh, job->order);
        }

        break;

    case SF_QSTATE_FAILED:
        /* a failed job waits for a person, not in its order's way */
        ngx_http_siteflow_chain_remove(sh, shpool, job);
        break;

    default: /* done, skipped */
        ngx_http_siteflow_chain_remove(sh, shpool, job);

        if (!job->finished) {
            job->finished = 1;
            ngx_queue_insert_tail(&sh->finished, &job->link);
            sh->nfinished++;
            ngx_http_siteflow_finished_trim(sh, shpool);
        }

        break;
    }
}


static ngx_http_siteflow_job_t *
ngx_http_siteflow_job_find(ngx_http_siteflow_queue_sh_t *sh, uint64_t id)
{
    ngx_rbtree_node_t  *node, *sentinel;

    node = sh->jobs.root;
    sentinel = sh->jobs.sentinel;

    while (node != sentinel) {
        if ((uint64_t) node->key == id) {
            return (ngx_http_siteflow_job_t *) node;
        }

        node = ((uint64_t) node->key > id) ? node->left : node->right;
    }

    return NULL;
}


static void
ngx_http_siteflow_job_free(ngx_http_siteflow_queue_sh_t *sh,
    ngx_slab_pool_t *shpool, ngx_http_siteflow_job_t *job)
{
    ngx_rbtree_delete(&sh->jobs, &job->node);
    ngx_queue_remove(&job->all);

    sh->counts[job->state]--;

    if (job->error.data) {
        ngx_slab_free_locked(shpool, job->error.data);
    }

    if (job->results.data) {
        ngx_slab_free_locked(shpool, job->results.data);
    }

    ngx_slab_free_locked(shpool, job);
}


static void
ngx_http_siteflow_finished_trim(ngx_http_siteflow_queue_sh_t *sh,
    ngx_slab_pool_t *shpool)
{
    ngx_queue_t              *q;
    ngx_http_siteflow_job_t  *job;

    while (sh->nfinished > NGX_HTTP_SITEFLOW_FINISHED_KEEP) {
        q = ngx_queue_head(&sh->finished);
        job = ngx_queue_data(q, ngx_http_siteflow_job_t, link);

        ngx_queue_remove(q);
        sh->nfinished--;

        ngx_http_siteflow_job_free(sh, shpool, job);
    }
}


/* order chains: only the first unfinished job of an order may run */

static void
ngx_http_siteflow_chain_add(ngx_http_siteflow_queue_sh_t *sh,
    ngx_slab_pool_t *shpool, ngx_http_siteflow_job_t *job)
{
    u_char                     *p;
    uint32_t                    hash;
    ngx_str_t                   key;
    ngx_queue_t                *q;
    ngx_http_siteflow_job_t    *j;
    ngx_http_siteflow_order_t  *order;
    u_char                      buf[512];

    key.len = job->storefront.len + 1 + job->order_id.len;

    if (key.len > sizeof(buf)) {
        key.len = sizeof(buf);
    }

    p = ngx_cpymem(buf, job->storefront.data,
                   ngx_min(job->storefront.len, sizeof(buf) - 1));
    *p++ = '\0';
    ngx_memcpy(p, job->order_id.data, key.len - (p - buf));
    key.data = buf;

    hash = ngx_crc32_short(key.data, key.len);

    order = ngx_http_siteflow_order_find(sh, &key, hash);

    if (order == NULL) {
        order = ngx_slab_alloc_locked(shpool,
                              sizeof(ngx_http_siteflow_order_t) + key.len);
        if (order == NULL) {
            /* no chain: the job runs on its own, in id order anyway */
            job->in_due = 1;
            ngx_rbtree_insert(&sh->due, &job->due);
            return;
        }

        order->node.key = hash;
        order->key.len = key.len;
        order->key.data = (u_char *) order + sizeof(ngx_http_siteflow_order_t);
        ngx_memcpy(order->key.data, key.data, key.len);
        ngx_queue_init(&order->jobs);

        ngx_rbtree_insert(&sh->orders, &order->node);
    }

    for (q = ngx_queue_last(&order->jobs);
         q != ngx_queue_sentinel(&order->jobs);
         q = ngx_queue_prev(q))
    {
        j = ngx_queue_data(q, ngx_http_siteflow_job_t, link);

        if (j->id < job->id) {
            break;
        }
    }

    ngx_queue_insert_after(q, &job->link);
    job->order = order;

    ngx_http_siteflow_chain_sync(sh, order);
}


static void
ngx_http_siteflow_chain_remove(ngx_http_siteflow_queue_sh_t *sh,
    ngx_slab_pool_t *shpool, ngx_http_siteflow_job_t *job)
{
    ngx_http_siteflow_order_t  *order;

    ngx_http_siteflow_due_remove(sh, job);

    order = job->order;

    if (order == NULL) {
        return;
    }

    ngx_queue_remove(&job->link);
    job->order = NULL;

    if (ngx_queue_empty(&order->jobs)) {
        ngx_rbtree_delete(&sh->orders, &order->node);
        ngx_slab_free_locked(shpool, order);
        return;
    }

    ngx_http_siteflow_chain_sync(sh, order);
}


/* the head of the chain, and only it, waits in the due or waiting tree */

static void
ngx_http_siteflow_chain_sync(ngx_http_siteflow_queue_sh_t *sh,
    ngx_http_siteflow_order_t *order)
{
    ngx_uint_t                running;
    ngx_queue_t              *q;
    ngx_http_siteflow_job_t  *job;

    running = 0;

    for (q = ngx_queue_head(&order->jobs);
         q != ngx_queue_sentinel(&order->jobs);
         q = ngx_queue_next(q))
    {
        job = ngx_queue_data(q, ngx_http_siteflow_job_t, link);

        running |= job->running;

        if (q != ngx_queue_head(&order->jobs)) {
            ngx_http_siteflow_due_remove(sh, job);
        }
    }

    job = ngx_queue_data(ngx_queue_head(&order->jobs),
                         ngx_http_siteflow_job_t, link);

    /*
     * one job of an order at a time: a failed job retried by hand joins
     * its order's line by id, maybe in front of a job that is running
     */

    if (running) {
        ngx_http_siteflow_due_remove(sh, job);
        return;
    }

    if (job->in_due || job->in_waiting) {
        return;
    }

    if (job->next_ms > ngx_http_siteflow_now_ms()) {
        job->due.key = (ngx_rbtree_key_t) job->next_ms;
        job->in_waiting = 1;
        ngx_rbtree_insert(&sh->waiting, &job->due);

    } else {
        job->due.key = (ngx_rbtree_key_t) job->id;
        job->in_due = 1;
        ngx_rbtree_insert(&sh->due, &job->due);
    }
}


static void
ngx_http_siteflow_due_remove(ngx_http_siteflow_queue_sh_t *sh,
    ngx_http_siteflow_job_t *job)
{
    if (job->in_due) {
        ngx_rbtree_delete(&sh->due, &job->due);
        job->in_due = 0;
    }

    if (job->in_waiting) {
        ngx_rbtree_delete(&sh->waiting, &job->due);
        job->in_waiting = 0;
    }
}


/*
 * The string-keyed trees (order chains, the two index trees) are keyed by
 * the crc32 of the string, equal crc32s ordered by the string itself; the
 * string is an ngx_str_t at "delta" bytes from the tree node.
 */

#define ngx_http_siteflow_node_key(node, delta)                               \
    ((ngx_str_t *) ((u_char *) (node) + (delta)))

#define NGX_HTTP_SITEFLOW_ORDER_KEY                                           \
    (offsetof(ngx_http_siteflow_order_t, key)                                 \
     - offsetof(ngx_http_siteflow_order_t, node))
#define NGX_HTTP_SITEFLOW_IDX_ORDER_KEY                                       \
    (offsetof(ngx_http_siteflow_idx_t, order_key)                             \
     - offsetof(ngx_http_siteflow_idx_t, by_order))
#define NGX_HTTP_SITEFLOW_IDX_SOURCE_KEY                                      \
    (offsetof(ngx_http_siteflow_idx_t, source_key)                            \
     - offsetof(ngx_http_siteflow_idx_t, by_source))


static ngx_rbtree_node_t *
ngx_http_siteflow_str_find(ngx_rbtree_t *tree, ngx_str_t *key, uint32_t hash,
    size_t delta)
{
    ngx_int_t           rc;
    ngx_str_t          *k;
    ngx_rbtree_node_t  *node, *sentinel;

    node = tree->root;
    sentinel = tree->sentinel;

    while (node != sentinel) {

        if (hash != node->key) {
            node = (hash < node->key) ? node->left : node->right;
            continue;
        }

        k = ngx_http_siteflow_node_key(node, delta);

        rc = ngx_memn2cmp(key->data, k->data, key->len, k->len);

        if (rc == 0) {
            return node;
        }

        node = (rc < 0) ? node->left : node->right;
    }

    return NULL;
}


static ngx_int_t
ngx_http_siteflow_tie_str(ngx_rbtree_node_t *a, ngx_rbtree_node_t *b,
    size_t delta)
{
    ngx_str_t  *x, *y;

    x = ngx_http_siteflow_node_key(a, delta);
    y = ngx_http_siteflow_node_key(b, delta);

    return ngx_memn2cmp(x->data, y->data, x->len, y->len);
}


static ngx_http_siteflow_order_t *
ngx_http_siteflow_order_find(ngx_http_siteflow_queue_sh_t *sh, ngx_str_t *key,
    uint32_t hash)
{
    return (ngx_http_siteflow_order_t *)
           ngx_http_siteflow_str_find(&sh->orders, key, hash,
                                      NGX_HTTP_SITEFLOW_ORDER_KEY);
}


static void
ngx_http_siteflow_rbtree_insert_str(ngx_rbtree_node_t *temp,
    ngx_rbtree_node_t *node, ngx_rbtree_node_t *sentinel)
{
    ngx_http_siteflow_rbtree_insert(temp, node, sentinel,
                                    ngx_http_siteflow_tie_order);
}


/*
 * The trees of this file are keyed by a number (a crc32, a time) that
 * several nodes may share; equal keys are ordered by "tie", so that a
 * search can go left or right where the plain nginx insert would not
 * tell.
 */

static void
ngx_http_siteflow_rbtree_insert(ngx_rbtree_node_t *temp,
    ngx_rbtree_node_t *node, ngx_rbtree_node_t *sentinel,
    ngx_http_siteflow_tie_pt tie)
{
    ngx_rbtree_node_t  **p;

    for ( ;; ) {

        if (node->key < temp->key) {
            p = &temp->left;

        } else if (node->key > temp->key) {
            p = &temp->right;

        } else {
            p = (tie(node, temp) < 0) ? &temp->left : &temp->right;
        }

        if (*p == sentinel) {
            break;
        }

        temp = *p;
    }

    *p = node;
    node->parent = temp;
    node->left = sentinel;
    node->right = sentinel;
    ngx_rbt_red(node);
}


static ngx_int_t
ngx_http_siteflow_tie_order(ngx_rbtree_node_t *a, ngx_rbtree_node_t *b)
{
    return ngx_http_siteflow_tie_str(a, b, NGX_HTTP_SITEFLOW_ORDER_KEY);
}


static ngx_int_t
ngx_http_siteflow_tie_id(ngx_rbtree_node_t *a, ngx_rbtree_node_t *b)
{
    ngx_http_siteflow_job_t  *n, *t;

    n = ngx_rbtree_data(a, ngx_http_siteflow_job_t, due);
    t = ngx_rbtree_data(b, ngx_http_siteflow_job_t, due);

    return (n->id < t->id) ? -1 : 1;
}


static ngx_int_t
ngx_http_siteflow_tie_idx_order(ngx_rbtree_node_t *a, ngx_rbtree_node_t *b)
{
    return ngx_http_siteflow_tie_str(a, b, NGX_HTTP_SITEFLOW_IDX_ORDER_KEY);
}


static ngx_int_t
ngx_http_siteflow_tie_idx_source(ngx_rbtree_node_t *a, ngx_rbtree_node_t *b)
{
    return ngx_http_siteflow_tie_str(a, b, NGX_HTTP_SITEFLOW_IDX_SOURCE_KEY);
}


/* the waiting tree: by next_ms, then by id */

static void
ngx_http_siteflow_rbtree_insert_id(ngx_rbtree_node_t *temp,
    ngx_rbtree_node_t *node, ngx_rbtree_node_t *sentinel)
{
    ngx_http_siteflow_rbtree_insert(temp, node, sentinel,
                                    ngx_http_siteflow_tie_id);
}


static ngx_int_t
ngx_http_siteflow_shm_str(ngx_slab_pool_t *shpool, ngx_str_t *dst,
    ngx_str_t *src)
{
    size_t   len;
    u_char  *p;

    if (dst->data) {
        ngx_slab_free_locked(shpool, dst->data);
        dst->data = NULL;
        dst->len = 0;
    }

    if (src->len == 0) {
        return NGX_OK;
    }

    len = src->len;

    p = ngx_slab_alloc_locked(shpool, len);
    if (p == NULL) {
        return NGX_ERROR;
    }

    ngx_memcpy(p, src->data, len);

    dst->data = p;
    dst->len = len;

    return NGX_OK;
}


/* the sent-orders index */

static ngx_int_t
ngx_http_siteflow_key(ngx_pool_t *pool, ngx_str_t *a, ngx_str_t *b,
    ngx_str_t *key)
{
    u_char  *p;

    key->len = a->len + 1 + b->len;
    key->data = ngx_pnalloc(pool, key->len);

    if (key->data == NULL) {
        return NGX_ERROR;
    }

    p = ngx_cpymem(key->data, a->data, a->len);
    *p++ = '\0';
    ngx_memcpy(p, b->data, b->len);

    return NGX_OK;
}


static ngx_http_siteflow_idx_t *
ngx_http_siteflow_idx_find(ngx_rbtree_t *tree, ngx_str_t *key,
    ngx_uint_t by_source)
{
    uint32_t            hash;
    ngx_rbtree_node_t  *node;

    hash = ngx_crc32_short(key->data, key->len);

    if (by_source) {
        node = ngx_http_siteflow_str_find(tree, key, hash,
                                          NGX_HTTP_SITEFLOW_IDX_SOURCE_KEY);
        return node ? ngx_rbtree_data(node, ngx_http_siteflow_idx_t,
                                      by_source)
                    : NULL;
    }

    node = ngx_http_siteflow_str_find(tree, key, hash,
                                      NGX_HTTP_SITEFLOW_IDX_ORDER_KEY);

    return node ? ngx_rbtree_data(node, ngx_http_siteflow_idx_t, by_order)
                : NULL;
}


static void
ngx_http_siteflow_rbtree_insert_order(ngx_rbtree_node_t *temp,
    ngx_rbtree_node_t *node, ngx_rbtree_node_t *sentinel)
{
    ngx_http_siteflow_rbtree_insert(temp, node, sentinel,
                                    ngx_http_siteflow_tie_idx_order);
}


static void
ngx_http_siteflow_rbtree_insert_source(ngx_rbtree_node_t *temp,
    ngx_rbtree_node_t *node, ngx_rbtree_node_t *sentinel)
{
    ngx_http_siteflow_rbtree_insert(temp, node, sentinel,
                                    ngx_http_siteflow_tie_idx_source);
}


static void
ngx_http_siteflow_idx_apply(ngx_http_siteflow_queue_sh_t *sh,
    ngx_slab_pool_t *shpool, ngx_http_siteflow_op_t *op)
{
    size_t                    sf;
    u_char                   *p;
    ngx_str_t                 key, skey;
    ngx_pool_t               *pool;
    ngx_http_siteflow_idx_t  *e;

    pool = ngx_create_pool(1024, ngx_cycle->log);
    if (pool == NULL) {
        return;
    }

    if (ngx_http_siteflow_key(pool, &op->idx.storefront, &op->idx.order_id,
                              &key)
        != NGX_OK)
    {
        goto done;
    }

    e = ngx_http_siteflow_idx_find(&sh->by_order, &key, 0);

    if (e == NULL) {

        /* one allocation: the entry and the strings known now */

        ngx_str_null(&skey);

        if (!op->postback && op->idx.source_id.len
            && ngx_http_siteflow_key(pool, &op->idx.storefront,
                                     &op->idx.source_id, &skey)
               != NGX_OK)
        {
            goto done;
        }

        sf = op->postback ? 0 : op->idx.siteflow_id.len;

        e = ngx_slab_calloc_locked(shpool, sizeof(ngx_http_siteflow_idx_t)
                                           + key.len + skey.len + sf);
        if (e == NULL) {
            goto nomem;
        }

        p = (u_char *) e + sizeof(ngx_http_siteflow_idx_t);

        e->order_key.data = p;
        e->order_key.len = key.len;
        p = ngx_cpymem(p, key.data, key.len);

        e->by_order.key = ngx_crc32_short(key.data, key.len);
        ngx_rbtree_insert(&sh->by_order, &e->by_order);
        ngx_queue_insert_tail(&sh->index, &e->all);
        sh->nindex++;

        if (skey.len) {
            e->source_key.data = p;
            e->source_key.len = skey.len;
            p = ngx_cpymem(p, skey.data, skey.len);

            e->by_source.key = ngx_crc32_short(skey.data, skey.len);
            ngx_rbtree_insert(&sh->by_source, &e->by_source);
            e->has_source = 1;
        }

        if (sf) {
            e->siteflow_id.data = p;
            e->siteflow_id.len = sf;
            ngx_memcpy(p, op->idx.siteflow_id.data, sf);
            e->sf_inline = 1;
        }
    }

    if (op->postback) {
        if (op->version < e->version_postback) {
            goto done;
        }

        e->version_postback = op->version;
        e->rank = (int32_t) op->idx.rank;
        e->fingerprint = op->idx.fingerprint;

        goto done;
    }

    if (op->version < e->version_order) {
        goto done;
    }

    e->version_order = op->version;
    e->state = (uint8_t) op->idx.state;
    e->updated_ms = op->idx.updated_ms;
    e->sent_ms = op->idx.sent_ms;

    if (e->order_key.len == 1) {
        /* the horizon of the index (index_prune()): never decreases */

        if (op->idx.sent_ms > sh->pruned_max) {
            sh->pruned_max = op->idx.sent_ms;
        }

        if (op->idx.updated_ms) {
            sh->pruned_other = 1;
        }

        e->sent_ms = sh->pruned_max;
        e->updated_ms = sh->pruned_other;

        goto done;
    }

    if (op->idx.siteflow_id.len
        && (op->idx.siteflow_id.len != e->siteflow_id.len
            || ngx_memcmp(op->idx.siteflow_id.data, e->siteflow_id.data,
                          e->siteflow_id.len)
               != 0))
    {
        if (e->sf_inline) {
            /* the bytes in the entry's own block are left unused */
            ngx_str_null(&e->siteflow_id);
            e->sf_inline = 0;
        }

        if (ngx_http_siteflow_shm_str(shpool, &e->siteflow_id,
                                      &op->idx.siteflow_id)
            != NGX_OK)
        {
            goto nomem;
        }
    }

    if (op->idx.source_id.len && !e->has_source) {
        if (ngx_http_siteflow_key(pool, &op->idx.storefront,
                                  &op->idx.source_id, &skey)
            != NGX_OK
            || ngx_http_siteflow_shm_str(shpool, &e->source_key, &skey)
               != NGX_OK)
        {
            goto nomem;
        }

        e->by_source.key = ngx_crc32_short(skey.data, skey.len);
        ngx_rbtree_insert(&sh->by_source, &e->by_source);
        e->has_source = 1;
    }

    goto done;

nomem:

    ngx_log_error(NGX_LOG_ALERT, ngx_cycle->log, 0,
                  "siteflow: the \"siteflow_spool\" zone is full; an index "
                  "entry of order \"%V\" is on disk only until nginx "
                  "restarts with a larger size=", &op->idx.order_id);

done:

    ngx_destroy_pool(pool);
}


ngx_int_t
ngx_http_siteflow_index_get(ngx_str_t *storefront, ngx_str_t *order_id,
    ngx_str_t *source_id, ngx_pool_t *pool, ngx_http_siteflow_index_t *idx)
{
    u_char                          *p;
    ngx_str_t                        key;
    ngx_http_siteflow_idx_t         *e;
    ngx_http_siteflow_queue_conf_t  *qc;

    qc = ngx_http_siteflow_qc;

    if (qc == NULL) {
        return NGX_DECLINED;
    }

    if (ngx_http_siteflow_key(pool, storefront,
                              order_id ? order_id : source_id, &key)
        != NGX_OK)
    {
        return NGX_ERROR;
    }

    ngx_shmtx_lock(&qc->shpool->mutex);

    e = ngx_http_siteflow_idx_find(order_id ? &qc->sh->by_order
                                            : &qc->sh->by_source,
                                   &key, order_id ? 0 : 1);

    if (e == NULL) {
        ngx_shmtx_unlock(&qc->shpool->mutex);
        return NGX_DECLINED;
    }

    ngx_memzero(idx, sizeof(ngx_http_siteflow_index_t));

    idx->storefront = *storefront;
    idx->state = e->state;
    idx->rank = e->rank;
    idx->fingerprint = e->fingerprint;
    idx->updated_ms = e->updated_ms;
    idx->sent_ms = e->sent_ms;

    p = ngx_pnalloc(pool, e->order_key.len + e->source_key.len
                          + e->siteflow_id.len + 1);
    if (p == NULL) {
        ngx_shmtx_unlock(&qc->shpool->mutex);
        return NGX_ERROR;
    }

    idx->order_id.data = p + storefront->len + 1;
    idx->order_id.len = e->order_key.len - storefront->len - 1;
    p = ngx_cpymem(p, e->order_key.data, e->order_key.len);

    if (e->has_source) {
        idx->source_id.data = p + storefront->len + 1;
        idx->source_id.len = e->source_key.len - storefront->len - 1;
        p = ngx_cpymem(p, e->source_key.data, e->source_key.len);
    }

    idx->siteflow_id.data = p;
    idx->siteflow_id.len = e->siteflow_id.len;
    ngx_memcpy(p, e->siteflow_id.data, e->siteflow_id.len);

    ngx_shmtx_unlock(&qc->shpool->mutex);

    return NGX_OK;
}


static uint32_t
ngx_http_siteflow_idx_version(ngx_http_siteflow_index_t *idx,
    ngx_uint_t postback)
{
    uint32_t                         v;
    ngx_str_t                        key;
    ngx_pool_t                      *pool;
    ngx_http_siteflow_idx_t         *e;
    ngx_http_siteflow_queue_conf_t  *qc;

    qc = ngx_http_siteflow_qc;
    v = 1;

    pool = ngx_create_pool(512, ngx_cycle->log);
    if (pool == NULL) {
        return v;
    }

    if (ngx_http_siteflow_key(pool, &idx->storefront, &idx->order_id, &key)
        == NGX_OK)
    {
        ngx_shmtx_lock(&qc->shpool->mutex);

        e = ngx_http_siteflow_idx_find(&qc->sh->by_order, &key, 0);

        if (e) {
            v = (postback ? e->version_postback : e->version_order) + 1;
        }

        ngx_shmtx_unlock(&qc->shpool->mutex);
    }

    ngx_destroy_pool(pool);

    return v;
}


ngx_int_t
ngx_http_siteflow_queue_enqueue(ngx_uint_t kind, ngx_str_t *storefront,
    ngx_str_t *order_id, json_t *job, ngx_http_siteflow_enqueue_pt handler,
    void *data)
{
    return ngx_http_siteflow_queue_enqueue_indexed(kind, storefront,
                                                   order_id, job, NULL,
                                                   handler, data);
}


ngx_int_t
ngx_http_siteflow_queue_enqueue_indexed(ngx_uint_t kind,
    ngx_str_t *storefront, ngx_str_t *order_id, json_t *job,
    ngx_http_siteflow_index_t *idx, ngx_http_siteflow_enqueue_pt handler,
    void *data)
{
    char                            *text;
    ngx_int_t                        rc;
    ngx_http_siteflow_op_t           op;
    ngx_http_siteflow_queue_conf_t  *qc;

    qc = ngx_http_siteflow_qc;

    if (qc == NULL) {
        return NGX_ERROR;
    }

    text = json_dumps(job, JSON_COMPACT);
    if (text == NULL) {
        return NGX_ERROR;
    }

    if (idx) {
        ngx_memzero(&op, sizeof(ngx_http_siteflow_op_t));

        op.type = SF_QREC_INDEX;
        op.postback = 1;
        op.idx = *idx;
        op.version = ngx_http_siteflow_idx_version(idx, 1);

        if (ngx_http_siteflow_append(&op) != NGX_OK) {
            free(text);
            return NGX_ERROR;
        }
    }

    ngx_memzero(&op, sizeof(ngx_http_siteflow_op_t));

    op.type = SF_QREC_JOB;
    op.id = ngx_atomic_fetch_add((ngx_atomic_t *) &qc->sh->next_id, 1);
    op.kind = kind;
    op.storefront = *storefront;
    op.order_id = *order_id;
    op.payload.data = (u_char *) text;
    op.payload.len = ngx_strlen(text);
    op.created_ms = ngx_http_siteflow_now_ms();
    op.handler = handler;
    op.data = data;

    /* room in the table is taken now: a full zone refuses the job */

    ngx_shmtx_lock(&qc->shpool->mutex);
    op.job = ngx_http_siteflow_job_new(qc->shpool, &op);
    ngx_shmtx_unlock(&qc->shpool->mutex);

    if (op.job == NULL) {
        free(text);

        ngx_log_error(NGX_LOG_ERR, ngx_cycle->log, 0,
                      "siteflow: the \"siteflow_spool\" zone is full "
                      "(%uz bytes); a job of order \"%V\" was refused",
                      qc->size, order_id);

        return NGX_DECLINED;
    }

    rc = ngx_http_siteflow_append(&op);

    free(text);

    if (rc != NGX_OK) {
        ngx_shmtx_lock(&qc->shpool->mutex);
        ngx_slab_free_locked(qc->shpool, op.job);
        ngx_shmtx_unlock(&qc->shpool->mutex);
    }

    return rc;
}


ngx_int_t
ngx_http_siteflow_queue_pending(ngx_uint_t kind, ngx_str_t *storefront,
    ngx_str_t *order_id)
{
    u_char                          *p;
    uint32_t                         hash;
    ngx_str_t                        key;
    ngx_int_t                        rc;
    ngx_queue_t                     *q;
    ngx_http_siteflow_job_t         *job;
    ngx_http_siteflow_order_t       *order;
    ngx_http_siteflow_queue_conf_t  *qc;
    u_char                           buf[512];

    qc = ngx_http_siteflow_qc;

    if (qc == NULL || storefront->len + 1 + order_id->len > sizeof(buf)) {
        return 0;
    }

    p = ngx_cpymem(buf, storefront->data, storefront->len);
    *p++ = '\0';
    p = ngx_cpymem(p, order_id->data, order_id->len);

    key.data = buf;
    key.len = p - buf;
    hash = ngx_crc32_short(key.data, key.len);

    rc = 0;

    ngx_shmtx_lock(&qc->shpool->mutex);

    order = ngx_http_siteflow_order_find(qc->sh, &key, hash);

    if (order) {
        for (q = ngx_queue_head(&order->jobs);
             q != ngx_queue_sentinel(&order->jobs);
             q = ngx_queue_next(q))
        {
            job = ngx_queue_data(q, ngx_http_siteflow_job_t, link);

            if (job->kind == kind) {
                rc = 1;
                break;
            }
        }
    }

    ngx_shmtx_unlock(&qc->shpool->mutex);

    return rc;
}


uint64_t
ngx_http_siteflow_now_ms(void)
{
    ngx_time_t  *tp;

    tp = ngx_timeofday();

    return (uint64_t) tp->sec * 1000 + tp->msec;
}


const char *
ngx_http_siteflow_kind_name(ngx_uint_t kind)
{
    return kind < 4 ? ngx_http_siteflow_kinds[kind] : "unknown";
}


ngx_http_siteflow_srv_conf_t *
ngx_http_siteflow_storefront(ngx_str_t *name)
{
    ngx_uint_t                       i;
    ngx_http_siteflow_srv_conf_t   **sp;
    ngx_http_siteflow_main_conf_t   *smcf;

    smcf = ngx_http_cycle_get_module_main_conf(ngx_cycle,
                                               ngx_http_siteflow_module);
    if (smcf == NULL) {
        return NULL;
    }

    sp = smcf->storefronts.elts;

    for (i = 0; i < smcf->storefronts.nelts; i++) {
        if (sp[i]->storefront.len == name->len
            && ngx_strncmp(sp[i]->storefront.data, name->data, name->len)
               == 0)
        {
            return sp[i];
        }
    }

    return NULL;
}


/* the admin API */

static json_t *
ngx_http_siteflow_time_json(uint64_t ms)
{
    u_char     buf[32];
    ngx_tm_t   tm;

    if (ms == 0) {
        return json_null();
    }

    ngx_gmtime((time_t) (ms / 1000), &tm);

    ngx_snprintf(buf, sizeof(buf), "%4d-%02d-%02dT%02d:%02d:%02d.%03dZ%Z",
                 tm.ngx_tm_year, tm.ngx_tm_mon, tm.ngx_tm_mday,
                 tm.ngx_tm_hour, tm.ngx_tm_min, tm.ngx_tm_sec,
                 (int) (ms % 1000));

    return json_string((char *) buf);
}


ngx_int_t
ngx_http_siteflow_queue_list(json_t *jobs,
    ngx_http_siteflow_queue_filter_t *f)
{
    u_char                           idbuf[NGX_INT64_LEN + 1];
    json_t                          *o;
    ngx_uint_t                       n;
    ngx_queue_t                     *q;
    ngx_http_siteflow_job_t         *job;
    ngx_http_siteflow_queue_conf_t  *qc;

    qc = ngx_http_siteflow_qc;

    if (qc == NULL) {
        return NGX_DECLINED;
    }

    n = 0;

    ngx_shmtx_lock(&qc->shpool->mutex);

    for (q = ngx_queue_last(&qc->sh->all);
         q != ngx_queue_sentinel(&qc->sh->all);
         q = ngx_queue_prev(q))
    {
        job = ngx_queue_data(q, ngx_http_siteflow_job_t, all);

        if (f->state >= 0 && job->state != f->state) {
            continue;
        }

        if (f->storefront.len
            && (f->storefront.len != job->storefront.len
                || ngx_strncmp(f->storefront.data, job->storefront.data,
                               job->storefront.len) != 0))
        {
            continue;
        }

        if (f->order_id.len
            && (f->order_id.len != job->order_id.len
                || ngx_strncmp(f->order_id.data, job->order_id.data,
                               job->order_id.len) != 0))
        {
            continue;
        }

        if (f->limit && n >= f->limit) {
            break;
        }

        ngx_sprintf(idbuf, "%uL%Z", job->id);

        o = json_pack("{s:s, s:s, s:s#, s:s#, s:s, s:i, s:o, s:s#, s:o}",
                      "id", (char *) idbuf,
                      "kind", ngx_http_siteflow_kind_name(job->kind),
                      "storefront", job->storefront.data,
                      (int) job->storefront.len,
                      "order_id", job->order_id.data,
                      (int) job->order_id.len,
                      "state", sf_qstate_name(job->state),
                      "attempts", (json_int_t) job->attempts,
                      "next_attempt",
                      (job->state == SF_QSTATE_PENDING
                       || job->state == SF_QSTATE_RETRYING)
                      ? ngx_http_siteflow_time_json(job->next_ms)
                      : json_null(),
                      "last_error", job->error.len
                                    ? (char *) job->error.data : "",
                      (int) job->error.len,
                      "created",
                      ngx_http_siteflow_time_json(job->created_ms));

        if (o == NULL || json_array_append_new(jobs, o) != 0) {
            ngx_shmtx_unlock(&qc->shpool->mutex);
            return NGX_ERROR;
        }

        n++;
    }

    ngx_shmtx_unlock(&qc->shpool->mutex);

    return NGX_OK;
}


ngx_int_t
ngx_http_siteflow_queue_stats(ngx_uint_t counts[5])
{
    ngx_http_siteflow_queue_conf_t  *qc;

    qc = ngx_http_siteflow_qc;

    if (qc == NULL) {
        return NGX_DECLINED;
    }

    ngx_shmtx_lock(&qc->shpool->mutex);
    ngx_memcpy(counts, qc->sh->counts, 5 * sizeof(ngx_uint_t));
    ngx_shmtx_unlock(&qc->shpool->mutex);

    return NGX_OK;
}


ngx_int_t
ngx_http_siteflow_queue_oldest(ngx_pool_t *pool, ngx_array_t *out)
{
    ngx_uint_t                         i;
    ngx_queue_t                       *q;
    ngx_http_siteflow_job_t           *job;
    ngx_http_siteflow_queue_conf_t    *qc;
    ngx_http_siteflow_queue_oldest_t  *o;

    qc = ngx_http_siteflow_qc;

    if (qc == NULL) {
        return NGX_DECLINED;
    }

    if (ngx_array_init(out, pool, 8, sizeof(ngx_http_siteflow_queue_oldest_t))
        != NGX_OK)
    {
        return NGX_ERROR;
    }

    ngx_shmtx_lock(&qc->shpool->mutex);

    for (q = ngx_queue_head(&qc->sh->all);
         q != ngx_queue_sentinel(&qc->sh->all);
         q = ngx_queue_next(q))
    {
        job = ngx_queue_data(q, ngx_http_siteflow_job_t, all);

        if (job->state != SF_QSTATE_PENDING
            && job->state != SF_QSTATE_RETRYING
            && job->state != SF_QSTATE_FAILED)
        {
            continue;
        }

        o = out->elts;

        for (i = 0; i < out->nelts; i++) {
            if (o[i].state == job->state
                && o[i].storefront.len == job->storefront.len
                && ngx_memcmp(o[i].storefront.data, job->storefront.data,
                              job->storefront.len) == 0)
            {
                break;
            }
        }

        if (i < out->nelts) {
            if (job->created_ms < o[i].created_ms) {
                o[i].created_ms = job->created_ms;
            }

            continue;
        }

        o = ngx_array_push(out);
        if (o == NULL) {
            goto failed;
        }

        o->state = job->state;
        o->created_ms = job->created_ms;
        o->storefront.len = job->storefront.len;
        o->storefront.data = ngx_pnalloc(pool, job->storefront.len + 1);
        if (o->storefront.data == NULL) {
            goto failed;
        }

        ngx_memcpy(o->storefront.data, job->storefront.data,
                   job->storefront.len);
        o->storefront.data[job->storefront.len] = '\0';
    }

    ngx_shmtx_unlock(&qc->shpool->mutex);

    return NGX_OK;

failed:

    ngx_shmtx_unlock(&qc->shpool->mutex);

    return NGX_ERROR;
}


ngx_int_t
ngx_http_siteflow_queue_breakers(ngx_pool_t *pool, ngx_array_t *out)
{
    u_char                             *name;
    ngx_uint_t                          i, n;
    ngx_http_siteflow_queue_sh_t       *sh;
    ngx_http_siteflow_queue_conf_t     *qc;
    ngx_http_siteflow_queue_breaker_t  *b;

    qc = ngx_http_siteflow_qc;

    if (qc == NULL) {
        return NGX_DECLINED;
    }

    sh = qc->sh;

    if (ngx_array_init(out, pool, NGX_HTTP_SITEFLOW_SH_BREAKERS,
                       sizeof(ngx_http_siteflow_queue_breaker_t))
        != NGX_OK)
    {
        return NGX_ERROR;
    }

    ngx_shmtx_lock(&qc->shpool->mutex);

    n = sh->nbreakers;

    for (i = 0; i < n; i++) {
        b = ngx_array_push(out);        /* room for all: no realloc */
        name = ngx_pnalloc(pool, sh->breakers[i].len + 1);

        if (b == NULL || name == NULL) {
            ngx_shmtx_unlock(&qc->shpool->mutex);
            return NGX_ERROR;
        }

        ngx_memcpy(name, sh->breakers[i].name, sh->breakers[i].len);
        name[sh->breakers[i].len] = '\0';

        b->storefront.data = name;
        b->storefront.len = sh->breakers[i].len;
        b->failures = sh->breakers[i].failures;
    }

    ngx_shmtx_unlock(&qc->shpool->mutex);

    return NGX_OK;
}


ngx_int_t
ngx_http_siteflow_queue_zone(size_t *size, size_t *free)
{
    ngx_http_siteflow_queue_conf_t  *qc;

    qc = ngx_http_siteflow_qc;

    if (qc == NULL) {
        return NGX_DECLINED;
    }

    *size = qc->size;

    ngx_shmtx_lock(&qc->shpool->mutex);
    *free = qc->shpool->pfree << ngx_pagesize_shift;
    ngx_shmtx_unlock(&qc->shpool->mutex);

    return NGX_OK;
}


ngx_str_t *
ngx_http_siteflow_queue_dir(ngx_http_siteflow_queue_conf_t *qc)
{
    return &qc->path->name;
}


void
ngx_http_siteflow_queue_damage(ngx_uint_t *places, uint64_t *bytes)
{
    *places = 0;
    *bytes = 0;

    if (ngx_http_siteflow_qc != NULL) {
        *places = ngx_http_siteflow_qc->sh->damaged;
        *bytes = ngx_http_siteflow_qc->sh->damaged_bytes;
    }
}


static ngx_int_t
ngx_http_siteflow_state_op(ngx_http_siteflow_job_t *job,
    ngx_http_siteflow_op_t *op)
{
    ngx_memzero(op, sizeof(ngx_http_siteflow_op_t));

    op->type = SF_QREC_STATE;
    op->id = job->id;
    op->version = job->version + 1;
    op->state = job->state;
    op->attempts = job->attempts;
    op->next_ms = job->next_ms;
    op->maybe_sent = job->maybe_sent;
    op->error = job->error;
    op->results = job->results;

    return NGX_OK;
}


typedef struct {
    ngx_http_request_t            *request;
    uint64_t                       id;
} ngx_http_siteflow_retry_ctx_t;


static void ngx_http_siteflow_admin_retried(void *data, ngx_int_t rc,
    uint64_t id);


ngx_int_t
ngx_http_siteflow_admin_retry(ngx_http_request_t *r, uint64_t id)
{
    ngx_int_t                        rc;
    ngx_http_siteflow_op_t           op;
    ngx_http_siteflow_job_t         *job;
    ngx_http_siteflow_retry_ctx_t   *ctx;
    ngx_http_siteflow_queue_conf_t  *qc;

    qc = ngx_http_siteflow_qc;

    if (qc == NULL) {
        return NGX_HTTP_SERVICE_UNAVAILABLE;
    }

    rc = ngx_http_discard_request_body(r);
    if (rc != NGX_OK) {
        return rc;
    }

    ngx_shmtx_lock(&qc->shpool->mutex);

    job = ngx_http_siteflow_job_find(qc->sh, id);

    if (job == NULL) {
        ngx_shmtx_unlock(&qc->shpool->mutex);
        return ngx_http_siteflow_send_json(r, NGX_HTTP_NOT_FOUND,
                                           "{\"error\":\"no such job\"}");
    }

    if (job->state != SF_QSTATE_FAILED) {
        ngx_shmtx_unlock(&qc->shpool->mutex);
        return ngx_http_siteflow_send_json(r, NGX_HTTP_CONFLICT,
                                           "{\"error\":\"only a failed job "
                                           "can be retried\"}");
    }

    (void) ngx_http_siteflow_state_op(job, &op);

    ngx_shmtx_unlock(&qc->shpool->mutex);

    op.state = SF_QSTATE_PENDING;
    op.next_ms = 0;

    ctx = ngx_palloc(r->pool, sizeof(ngx_http_siteflow_retry_ctx_t));
    if (ctx == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    ctx->request = r;
    ctx->id = id;

    op.handler = ngx_http_siteflow_admin_retried;
    op.data = ctx;

    if (ngx_http_siteflow_append(&op) != NGX_OK) {
        return ngx_http_siteflow_send_json(r, NGX_HTTP_SERVICE_UNAVAILABLE,
                                           "{\"error\":\"the spool cannot "
                                           "take the change now\"}");
    }

    r->main->count++;

    return NGX_DONE;
}


static void
ngx_http_siteflow_admin_retried(void *data, ngx_int_t rc, uint64_t id)
{
    ngx_http_siteflow_retry_ctx_t  *ctx = data;

    u_char  buf[64];

    if (rc != NGX_OK) {
        ngx_http_finalize_request(ctx->request,
            ngx_http_siteflow_send_json(ctx->request,
                                        NGX_HTTP_SERVICE_UNAVAILABLE,
                                        "{\"error\":\"the spool could not "
                                        "write the change\"}"));
        return;
    }

    ngx_sprintf(buf, "{\"job\":\"%uL\",\"state\":\"pending\"}%Z",
                ctx->id);

    ngx_http_finalize_request(ctx->request,
        ngx_http_siteflow_send_json(ctx->request, NGX_HTTP_ACCEPTED,
                                    (char *) buf));
}


ngx_int_t
ngx_http_siteflow_send_json(ngx_http_request_t *r, ngx_uint_t status,
    char *json)
{
    size_t        len;
    ngx_buf_t    *b;
    ngx_int_t     rc;
    ngx_chain_t   out;

    len = ngx_strlen(json);

    r->headers_out.status = status;
    r->headers_out.content_length_n = len + 1;

    if (status == 422) {
        ngx_str_set(&r->headers_out.status_line, "422 Unprocessable Entity");
    }
    ngx_str_set(&r->headers_out.content_type, "application/json");
    r->headers_out.content_type_len = r->headers_out.content_type.len;

    if (r->method == NGX_HTTP_HEAD) {
        r->header_only = 1;
    }

    b = ngx_create_temp_buf(r->pool, len + 1);
    if (b == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    b->last = ngx_cpymem(b->last, json, len);
    *b->last++ = '\n';
    b->last_buf = (r == r->main) ? 1 : 0;
    b->last_in_chain = 1;

    out.buf = b;
    out.next = NULL;

    rc = ngx_http_send_header(r);

    if (rc == NGX_ERROR || rc > NGX_OK || r->header_only) {
        return rc;
    }

    return ngx_http_output_filter(r, &out);
}


/* the consumer (worker 0) */

static void
ngx_http_siteflow_consumer_wake(void)
{
    if (!ngx_http_siteflow_consumer) {
        return;
    }

    if (ngx_http_siteflow_consumer_event.timer_set) {
        ngx_del_timer(&ngx_http_siteflow_consumer_event);
    }

    if (!ngx_http_siteflow_consumer_event.posted) {
        ngx_post_event(&ngx_http_siteflow_consumer_event, &ngx_posted_events);
    }
}


static void
ngx_http_siteflow_consumer_handler(ngx_event_t *ev)
{
    uint64_t                         now, next;
    ngx_uint_t                       n;
    ngx_msec_t                       wait;
    ngx_http_siteflow_run_t         *run;
    ngx_http_siteflow_main_conf_t   *smcf;

    if (ngx_exiting || ngx_quit || ngx_terminate) {
        return;     /* runs in flight finish; nothing new starts */
    }

    if (ngx_current_msec - ngx_http_siteflow_last_sweep
        >= NGX_HTTP_SITEFLOW_SWEEP
        || ngx_http_siteflow_last_sweep == 0)
    {
        ngx_http_siteflow_last_sweep = ngx_current_msec;
        ngx_http_siteflow_sweep();
        ngx_http_siteflow_index_prune();
        ngx_http_siteflow_compact();
    }

    smcf = ngx_http_cycle_get_module_main_conf(ngx_cycle,
                                               ngx_http_siteflow_module);

    ngx_http_siteflow_seen_generation = ngx_http_siteflow_qc->sh->generation;

    now = ngx_http_siteflow_now_ms();
    next = 0;

    for (n = 0; ngx_http_siteflow_runs < smcf->concurrency; n++) {

        if (n == NGX_HTTP_SITEFLOW_CLAIM_BATCH) {
            /* more after nginx has looked at its other connections */
            if (!ev->posted) {
                ngx_post_event(ev, &ngx_posted_next_events);
            }

            return;
        }

        run = ngx_http_siteflow_claim(now, &next);
        if (run == NULL) {
            break;
        }

        ngx_http_siteflow_runs++;

        ngx_log_debug2(NGX_LOG_DEBUG_HTTP, ngx_cycle->log, 0,
                       "siteflow: job %uL (%s) starts",
                       run->id, ngx_http_siteflow_kind_name(run->kind));

        ngx_http_siteflow_job_start(run);
    }

    wait = NGX_HTTP_SITEFLOW_POLL;

    if (next && next > now && next - now < wait) {
        wait = (ngx_msec_t) (next - now);
    }

    if (!ev->timer_set && !ev->posted) {
        ngx_add_timer(ev, wait);
    }
}


static ngx_http_siteflow_breaker_t *
ngx_http_siteflow_breaker(u_char *name, size_t len, ngx_uint_t create)
{
    ngx_uint_t                    i;
    ngx_http_siteflow_breaker_t  *b;

    if (len > SF_QJOB_STOREFRONT_LEN) {
        len = SF_QJOB_STOREFRONT_LEN;
    }

    for (i = 0; i < ngx_http_siteflow_nbreakers; i++) {
        b = &ngx_http_siteflow_breakers[i];

        if (b->len == len && ngx_memcmp(b->name, name, len) == 0) {
            return b;
        }
    }

    if (!create || ngx_http_siteflow_nbreakers == NGX_HTTP_SITEFLOW_BREAKERS)
    {
        return NULL;
    }

    b = &ngx_http_siteflow_breakers[ngx_http_siteflow_nbreakers++];
    ngx_memzero(b, sizeof(ngx_http_siteflow_breaker_t));
    ngx_memcpy(b->name, name, len);
    b->len = len;

    return b;
}


void
ngx_http_siteflow_breaker_report(ngx_http_siteflow_run_t *run,
    ngx_uint_t ok)
{
    ngx_uint_t                      probe;
    ngx_http_siteflow_breaker_t    *b;
    ngx_http_siteflow_main_conf_t  *smcf;

    b = ngx_http_siteflow_breaker(run->storefront.data, run->storefront.len,
                                  !ok);
    if (b == NULL) {
        return;
    }

    probe = run->probe;

    b->probing = 0;
    run->probe = 0;

    if (ok) {
        if (b->failures) {
            ngx_log_error(NGX_LOG_NOTICE, run->log, 0,
                          "siteflow: the upstreams of storefront \"%V\" "
                          "answer again; its queue resumes",
                          &run->storefront);
        }

        b->failures = 0;
        b->until = 0;
        ngx_http_siteflow_breaker_publish(b);
        return;
    }

    /*
     * The backoff grows with the failed probes, not with every run that
     * fails: the runs started together before the breaker opened (up to
     * siteflow_queue_concurrency of them, e.g. when a new worker 0 starts
     * after a crash or a reload) are one failure.  Counting each of them
     * took the breaker to siteflow_retry_backoff's maximum at once, and
     * the queue waited that long (150 to 300 s by default) after the
     * upstream was back.
     */

    if (b->failures != 0 && !probe) {
        return;
    }

    smcf = ngx_http_cycle_get_module_main_conf(ngx_cycle,
                                               ngx_http_siteflow_module);

    b->failures++;
    b->until = ngx_http_siteflow_now_ms()
               + sf_job_backoff_ms(b->failures, smcf->retry_base,
                                   smcf->retry_max, (uint32_t) ngx_random());

    ngx_http_siteflow_breaker_publish(b);
}


/* a copy in the zone for the metrics, which any worker may serve */

static void
ngx_http_siteflow_breaker_publish(ngx_http_siteflow_breaker_t *b)
{
    ngx_uint_t                     i;
    ngx_http_siteflow_queue_sh_t  *sh;

    sh = ngx_http_siteflow_qc->sh;

    ngx_shmtx_lock(&ngx_http_siteflow_qc->shpool->mutex);

    for (i = 0; i < sh->nbreakers; i++) {
        if (sh->breakers[i].len == b->len
            && ngx_memcmp(sh->breakers[i].name, b->name, b->len) == 0)
        {
            break;
        }
    }

    if (i == sh->nbreakers && i < NGX_HTTP_SITEFLOW_SH_BREAKERS) {
        ngx_memcpy(sh->breakers[i].name, b->name, b->len);
        sh->breakers[i].len = b->len;
        sh->nbreakers++;
    }

    if (i < sh->nbreakers) {
        sh->breakers[i].failures = b->failures;
    }

    ngx_shmtx_unlock(&ngx_http_siteflow_qc->shpool->mutex);
}


static ngx_int_t
ngx_http_siteflow_breaker_allows(ngx_http_siteflow_job_t *job, uint64_t now,
    ngx_uint_t *probe)
{
    ngx_http_siteflow_breaker_t  *b;

    *probe = 0;

    b = ngx_http_siteflow_breaker(job->storefront.data, job->storefront.len,
                                  0);

    if (b == NULL || b->failures == 0) {
        return 1;
    }

    if (b->probing || now < b->until) {
        return 0;
    }

    b->probing = 1;
    *probe = 1;

    return 1;
}


static ngx_http_siteflow_run_t *
ngx_http_siteflow_claim(uint64_t now, uint64_t *next)
{
    ngx_uint_t                       n, probe;
    json_error_t                     err;
    ngx_pool_t                      *pool;
    ngx_rbtree_node_t               *node;
    ngx_http_siteflow_job_t         *job;
    ngx_http_siteflow_run_t         *run;
    ngx_http_siteflow_queue_sh_t    *sh;
    ngx_http_siteflow_queue_conf_t  *qc;

    qc = ngx_http_siteflow_qc;
    sh = qc->sh;

    ngx_shmtx_lock(&qc->shpool->mutex);

    /* jobs whose backoff is over join the due jobs, which go oldest first */

    while (sh->waiting.root != sh->waiting.sentinel) {
        node = ngx_rbtree_min(sh->waiting.root, sh->waiting.sentinel);

        if ((uint64_t) node->key > now) {
            *next = (uint64_t) node->key;
            break;
        }

        job = ngx_rbtree_data(node, ngx_http_siteflow_job_t, due);

        ngx_rbtree_delete(&sh->waiting, node);
        job->in_waiting = 0;

        job->due.key = (ngx_rbtree_key_t) job->id;
        ngx_rbtree_insert(&sh->due, &job->due);
        job->in_due = 1;
    }

    if (sh->due.root == sh->due.sentinel) {
        ngx_shmtx_unlock(&qc->shpool->mutex);
        return NULL;
    }

    /* the oldest due job whose storefront's breaker lets it go */

    node = ngx_rbtree_min(sh->due.root, sh->due.sentinel);
    probe = 0;

    for (n = 0; node; n++) {
        job = ngx_rbtree_data(node, ngx_http_siteflow_job_t, due);

        if (ngx_http_siteflow_breaker_allows(job, now, &probe)) {
            break;
        }

        if (n == NGX_HTTP_SITEFLOW_SCAN_MAX) {
            node = NULL;
            break;
        }

        node = ngx_rbtree_next(&sh->due, node);
    }

    if (node == NULL) {
        ngx_shmtx_unlock(&qc->shpool->mutex);
        return NULL;
    }

    pool = ngx_create_pool(4096, ngx_cycle->log);
    if (pool == NULL) {
        ngx_shmtx_unlock(&qc->shpool->mutex);
        return NULL;
    }

    run = ngx_pcalloc(pool, sizeof(ngx_http_siteflow_run_t));
    if (run == NULL) {
        goto failed;
    }

    run->pool = pool;
    run->log = ngx_cycle->log;
    run->id = job->id;
    run->kind = job->kind;
    run->attempts = job->attempts;
    run->created_ms = job->created_ms;
    run->maybe_sent = job->maybe_sent;
    run->probe = probe;

    run->storefront.len = job->storefront.len;
    run->storefront.data = ngx_pstrdup(pool, &job->storefront);
    run->order_id.len = job->order_id.len;
    run->order_id.data = ngx_pstrdup(pool, &job->order_id);

    if (run->storefront.data == NULL || run->order_id.data == NULL) {
        goto failed;
    }

    run->job = json_loadb((const char *) job->payload.data, job->payload.len,
                          0, &err);

    if (job->results.len) {
        run->results = json_loadb((const char *) job->results.data,
                                  job->results.len, 0, &err);
    }

    if (run->results == NULL) {
        run->results = json_object();
    }

    if (run->job == NULL || run->results == NULL) {
        json_decref(run->job);
        json_decref(run->results);
        goto failed;
    }

    ngx_rbtree_delete(&sh->due, node);
    job->in_due = 0;
    job->running = 1;
    job->owner = ngx_pid;
    ngx_queue_insert_tail(&sh->running, &job->run_link);

    ngx_shmtx_unlock(&qc->shpool->mutex);

    return run;

failed:

    ngx_shmtx_unlock(&qc->shpool->mutex);
    ngx_destroy_pool(pool);

    return NULL;
}


/* jobs claimed by a process that is gone are released */

static void
ngx_http_siteflow_sweep(void)
{
    ngx_pid_t                        pid;
    ngx_queue_t                     *q, *next;
    ngx_http_siteflow_job_t         *job;
    ngx_http_siteflow_queue_sh_t    *sh;
    ngx_http_siteflow_queue_conf_t  *qc;

    qc = ngx_http_siteflow_qc;
    sh = qc->sh;

    /* a process killed in the middle of its write() leaves the lock */

    pid = (ngx_pid_t) sh->write_lock.lock;

    if (pid && pid != ngx_pid && kill(pid, 0) == -1 && ngx_errno == NGX_ESRCH)
    {
        if (ngx_shmtx_force_unlock(qc->write_lock, pid)) {
            ngx_log_error(NGX_LOG_ALERT, ngx_cycle->log, 0,
                          "siteflow: process %P died holding the spool "
                          "write lock; released", pid);
        }
    }

    ngx_shmtx_lock(&qc->shpool->mutex);

    for (q = ngx_queue_head(&sh->running);
         q != ngx_queue_sentinel(&sh->running);
         q = next)
    {
        next = ngx_queue_next(q);
        job = ngx_queue_data(q, ngx_http_siteflow_job_t, run_link);

        if (job->owner == ngx_pid
            || kill(job->owner, 0) == 0 || ngx_errno != NGX_ESRCH)
        {
            continue;
        }

        ngx_log_error(NGX_LOG_WARN, ngx_cycle->log, 0,
                      "siteflow: job %uL was being delivered by process "
                      "%P, which is gone; it is resumed", job->id,
                      job->owner);

        ngx_queue_remove(q);
        job->running = 0;
        job->owner = 0;

        if (job->kind == NGX_HTTP_SITEFLOW_JOB_ORDER) {
            job->maybe_sent = 1;
        }

        if (job->order) {
            ngx_http_siteflow_chain_sync(sh, job->order);

        } else {
            job->due.key = (ngx_rbtree_key_t) job->id;
            ngx_rbtree_insert(&sh->due, &job->due);
            job->in_due = 1;
        }
    }

    ngx_shmtx_unlock(&qc->shpool->mutex);
}


/*
 * The sent-orders index forgets an order index_retention after it was
 * last used (sent, or PrintNow updated): at most PRUNE_SCAN entries are
 * looked at per second.  What it forgot is remembered as a horizon (the
 * highest numeric PrintNow order id forgotten, or "some other id"), kept
 * in a special index entry (storefront and order id empty) so that it is
 * in the journal and in snapshots: an order job for an order that is not
 * in the index and is at or below the horizon looks the order up in
 * SiteFlow by its sourceOrderId before it creates it.
 */

static ngx_queue_t  *ngx_http_siteflow_prune_cur;


static void
ngx_http_siteflow_index_prune(void)
{
    u_char                          *p;
    uint64_t                         now, last, id, max;
    ngx_uint_t                       n, other, pruned;
    ngx_queue_t                     *q, *next;
    ngx_http_siteflow_op_t           op;
    ngx_http_siteflow_idx_t         *e;
    ngx_http_siteflow_queue_sh_t    *sh;
    ngx_http_siteflow_queue_conf_t  *qc;

    qc = ngx_http_siteflow_qc;
    sh = qc->sh;

    if (qc->retention == 0) {
        return;
    }

    if (sh->snapshot_pid) {
        if (sh->snapshot_pid == ngx_pid
            || kill(sh->snapshot_pid, 0) == 0 || ngx_errno != NGX_ESRCH)
        {
            return;
        }

        sh->snapshot_pid = 0;
    }

    now = ngx_http_siteflow_now_ms();

    if (now < qc->retention) {
        return;
    }

    max = sh->pruned_max;
    other = sh->pruned_other;
    pruned = 0;

    ngx_shmtx_lock(&qc->shpool->mutex);

    q = ngx_http_siteflow_prune_cur;

    if (q == NULL) {
        q = ngx_queue_head(&sh->index);
    }

    for (n = 0; n < NGX_HTTP_SITEFLOW_PRUNE_SCAN; n++, q = next) {

        if (q == ngx_queue_sentinel(&sh->index)) {
            q = NULL;
            break;
        }

        next = ngx_queue_next(q);
        e = ngx_queue_data(q, ngx_http_siteflow_idx_t, all);

        last = ngx_max(e->sent_ms, e->updated_ms);

        if (e->order_key.len <= 1                     /* the horizon */
            || e->state == NGX_HTTP_SITEFLOW_IDX_QUEUED
            || last == 0
            || last > now - qc->retention)
        {
            continue;
        }

        /* "storefront \0 order id" */

        p = ngx_strlchr(e->order_key.data,
                        e->order_key.data + e->order_key.len, '\0');

        id = 0;

        if (p && p + 1 < e->order_key.data + e->order_key.len) {
            for (p++; p < e->order_key.data + e->order_key.len; p++) {
                if (*p < '0' || *p > '9' || id > (uint64_t) -1 / 10 - 9) {
                    break;
                }

                id = id * 10 + (*p - '0');
            }
        }

        if (p == NULL || p != e->order_key.data + e->order_key.len) {
            other = 1;

        } else if (id > max) {
            max = id;
        }

        ngx_rbtree_delete(&sh->by_order, &e->by_order);

        if (e->has_source) {
            ngx_rbtree_delete(&sh->by_source, &e->by_source);

            if (e->source_key.data
                != e->order_key.data + e->order_key.len)
            {
                ngx_slab_free_locked(qc->shpool, e->source_key.data);
            }
        }

        if (e->siteflow_id.data && !e->sf_inline) {
            ngx_slab_free_locked(qc->shpool, e->siteflow_id.data);
        }

        ngx_queue_remove(q);
        ngx_slab_free_locked(qc->shpool, e);

        sh->nindex--;
        sh->npruned++;
        pruned++;
    }

    ngx_http_siteflow_prune_cur = q;

    ngx_shmtx_unlock(&qc->shpool->mutex);

    if (pruned == 0 || (max == sh->pruned_max && other == sh->pruned_other)) {
        return;
    }

    ngx_log_debug3(NGX_LOG_DEBUG_HTTP, ngx_cycle->log, 0,
                   "siteflow: the index forgot %ui orders, up to %uL (%ui)",
                   pruned, max, other);

    /* the horizon, in the journal (and so in the next snapshot) */

    ngx_memzero(&op, sizeof(ngx_http_siteflow_op_t));
    op.type = SF_QREC_INDEX;
    ngx_str_set(&op.idx.storefront, "");
    ngx_str_set(&op.idx.order_id, "");
    ngx_str_set(&op.idx.source_id, "");
    ngx_str_set(&op.idx.siteflow_id, "");
    op.idx.state = NGX_HTTP_SITEFLOW_IDX_SENT;
    op.idx.sent_ms = max;           /* "t" */
    op.idx.updated_ms = other;      /* "u" */
    op.version = ngx_http_siteflow_idx_version(&op.idx, 0);

    /*
     * in the table at once (so the next snapshot has it), and in the
     * journal; if that write fails, the forgotten orders' records are
     * still in the spool until a snapshot replaces them
     */

    ngx_shmtx_lock(&qc->shpool->mutex);
    ngx_http_siteflow_idx_apply(sh, qc->shpool, &op);
    ngx_shmtx_unlock(&qc->shpool->mutex);

    if (ngx_http_siteflow_append(&op) != NGX_OK) {
        ngx_log_error(NGX_LOG_ERR, ngx_cycle->log, 0,
                      "siteflow: cannot journal what the index forgot; "
                      "the next snapshot keeps it");
    }
}


/* not in the index: was it forgotten (look it up) or never sent? */

ngx_uint_t
ngx_http_siteflow_index_forgot(ngx_str_t *order_id)
{
    uint64_t                         id;
    ngx_uint_t                       i;
    ngx_http_siteflow_queue_sh_t    *sh;

    if (ngx_http_siteflow_qc == NULL) {
        return 0;
    }

    sh = ngx_http_siteflow_qc->sh;

    id = 0;

    for (i = 0; i < order_id->len; i++) {
        if (order_id->data[i] < '0' || order_id->data[i] > '9'
            || id > (uint64_t) -1 / 10 - 9)
        {
            return sh->pruned_other;
        }

        id = id * 10 + (order_id->data[i] - '0');
    }

    return order_id->len && sh->pruned_max && id <= sh->pruned_max;
}


/* the runner is done with a job: its outcome is written, then applied */

void
ngx_http_siteflow_queue_done(ngx_http_siteflow_run_t *run,
    ngx_http_siteflow_outcome_t *out)
{
    ngx_http_siteflow_finish_t  *f;

    f = ngx_pcalloc(run->pool, sizeof(ngx_http_siteflow_finish_t));
    if (f == NULL) {
        /* the job stays claimed by this process; a restart resumes it */
        ngx_log_error(NGX_LOG_ALERT, run->log, 0,
                      "siteflow: out of memory finishing job %uL", run->id);
        return;
    }

    f->run = run;
    f->out = *out;

    if (run->probe) {
        /* the probe ended without an answer either way */
        ngx_http_siteflow_breaker_t  *b;

        b = ngx_http_siteflow_breaker(run->storefront.data,
                                      run->storefront.len, 0);
        if (b) {
            b->probing = 0;
        }

        run->probe = 0;
    }

    if (out->error.len > NGX_HTTP_SITEFLOW_ERROR_MAX) {
        f->out.error.len = NGX_HTTP_SITEFLOW_ERROR_MAX;
    }

    /* the caller's buffers are gone when a write has to be tried again */

    if (f->out.error.len) {
        f->out.error.data = ngx_pstrdup(run->pool, &f->out.error);
        if (f->out.error.data == NULL) {
            f->out.error.len = 0;
        }
    }

    if (out->index) {
        f->idx = *out->index;
        f->out.index = &f->idx;

        /* strings of the index entry live in the run's pool or longer */
    }

    f->retry.handler = ngx_http_siteflow_finish_retry;
    f->retry.data = f;
    f->retry.log = run->log;

    if (run->xfer) {
        ngx_http_siteflow_xfer_destroy(run->xfer);
        run->xfer = NULL;
    }

    ngx_http_siteflow_finish_write(f);
}


static void
ngx_http_siteflow_finish_write(ngx_http_siteflow_finish_t *f)
{
    char                            *results;
    uint64_t                         now;
    ngx_http_siteflow_op_t           op;
    ngx_http_siteflow_run_t         *run;
    ngx_http_siteflow_job_t         *job;
    ngx_http_siteflow_main_conf_t   *smcf;
    ngx_http_siteflow_queue_conf_t  *qc;

    qc = ngx_http_siteflow_qc;
    run = f->run;

    smcf = ngx_http_cycle_get_module_main_conf(ngx_cycle,
                                               ngx_http_siteflow_module);

    ngx_shmtx_lock(&qc->shpool->mutex);

    job = ngx_http_siteflow_job_find(qc->sh, run->id);

    if (job == NULL) {
        ngx_shmtx_unlock(&qc->shpool->mutex);
        ngx_http_siteflow_runs--;
        ngx_http_siteflow_run_free(run);
        return;
    }

    (void) ngx_http_siteflow_state_op(job, &op);

    ngx_shmtx_unlock(&qc->shpool->mutex);

    now = ngx_http_siteflow_now_ms();

    op.state = f->out.state;
    op.attempts = run->attempts + 1;
    op.error = f->out.error;
    op.maybe_sent = f->out.maybe_sent;
    op.release = 1;
    op.next_ms = 0;

    if (op.state == SF_QSTATE_RETRYING) {
        if (smcf->give_up
            && sf_job_give_up(run->created_ms, now, smcf->give_up))
        {
            op.state = SF_QSTATE_FAILED;

        } else {
            op.next_ms = now + sf_job_backoff_ms(op.attempts,
                                                 smcf->retry_base,
                                                 smcf->retry_max,
                                                 (uint32_t) ngx_random());
        }
    }

    results = json_dumps(run->results, JSON_COMPACT);

    if (results) {
        op.results.data = (u_char *) results;
        op.results.len = ngx_strlen(results);
    }

    if (f->out.index) {
        ngx_http_siteflow_op_t  iop;

        ngx_memzero(&iop, sizeof(ngx_http_siteflow_op_t));
        iop.type = SF_QREC_INDEX;
        iop.postback = 0;
        iop.idx = *f->out.index;
        iop.version = ngx_http_siteflow_idx_version(f->out.index, 0);

        if (ngx_http_siteflow_append(&iop) != NGX_OK) {
            free(results);
            ngx_add_timer(&f->retry, 1000);
            return;
        }
    }

    op.handler = ngx_http_siteflow_finished;
    op.data = f;

    if (ngx_http_siteflow_append(&op) != NGX_OK) {
        free(results);
        ngx_add_timer(&f->retry, 1000);
        return;
    }

    free(results);
}


static void
ngx_http_siteflow_finished(void *data, ngx_int_t rc, uint64_t id)
{
    ngx_http_siteflow_finish_t  *f = data;

    if (rc != NGX_OK) {
        /* the outcome is kept here until the spool takes it */
        ngx_add_timer(&f->retry, 1000);
        return;
    }

    ngx_http_siteflow_runs--;
    ngx_http_siteflow_run_free(f->run);

    ngx_http_siteflow_consumer_wake();
}


static void
ngx_http_siteflow_finish_retry(ngx_event_t *ev)
{
    ngx_http_siteflow_finish_write(ev->data);
}


static void
ngx_http_siteflow_run_free(ngx_http_siteflow_run_t *run)
{
    if (run->xfer) {
        ngx_http_siteflow_xfer_destroy(run->xfer);
    }

    json_decref(run->job);
    json_decref(run->results);

    ngx_destroy_pool(run->pool);
}


/* compaction: a new segment, then a snapshot of what is live */

typedef struct {
    ngx_http_siteflow_batch_t     *batch;
    uint64_t                       seq;
    ngx_fd_t                       fd;            /* the .tmp file */
    ngx_str_t                      dir;
    ngx_err_t                      err;
    const char                    *failed;
} ngx_http_siteflow_snap_t;


static void
ngx_http_siteflow_compact(void)
{
    off_t                            size;
    ngx_file_info_t                  fi;
    ngx_http_siteflow_batch_t       *b;
    ngx_http_siteflow_queue_sh_t    *sh;
    ngx_http_siteflow_queue_conf_t  *qc;
    u_char                           file[NGX_MAX_PATH];

    qc = ngx_http_siteflow_qc;
    sh = qc->sh;

    if (ngx_http_siteflow_compacting >= 2) {
        return;     /* a snapshot is being built or written */
    }

    if (ngx_http_siteflow_compacting == 0) {

        ngx_snprintf(file, NGX_MAX_PATH, "%V/journal-%016uxL.sfq%Z",
                     &qc->path->name, sh->segment);

        if (ngx_file_info(file, &fi) == NGX_FILE_ERROR) {
            return;
        }

        size = ngx_file_size(&fi);

        if (size < (off_t) qc->segment) {
            return;
        }

        /* from now on, batches go to a new segment */

        ngx_shmtx_lock(qc->write_lock);
        ngx_http_siteflow_compact_seq = sh->segment;
        sh->segment++;
        ngx_shmtx_unlock(qc->write_lock);

        ngx_http_siteflow_compacting = 1;
        ngx_http_siteflow_compact_start = ngx_current_msec;
    }

    /* batches written to the old segment must be applied first */

    if (sh->inflight[ngx_http_siteflow_compact_seq & 1] != 0
        && ngx_current_msec - ngx_http_siteflow_compact_start < 30000)
    {
        return;
    }

    /*
     * the snapshot is built a chunk at a time (compact_handler()), each
     * chunk written at once to the .tmp file: small writes, and no copy
     * of the whole table in the worker's memory
     */

    ngx_snprintf(file, NGX_MAX_PATH, "%V/snapshot-%016uxL.tmp%Z",
                 &qc->path->name, ngx_http_siteflow_compact_seq);

    ngx_http_siteflow_snap_fd = open((char *) file,
                                     O_WRONLY|O_CREAT|O_TRUNC|O_CLOEXEC,
                                     0600);

    if (ngx_http_siteflow_snap_fd == NGX_INVALID_FILE) {
        ngx_log_error(NGX_LOG_ERR, ngx_cycle->log, ngx_errno,
                      "siteflow: open() \"%s\" failed; compaction is "
                      "tried again later", file);
        return;
    }

    b = ngx_http_siteflow_batch_alloc();
    if (b == NULL) {
        (void) close(ngx_http_siteflow_snap_fd);
        (void) unlink((char *) file);
        return;
    }

    ngx_http_siteflow_snap_batch = b;
    ngx_http_siteflow_snap_bytes = 0;
    ngx_http_siteflow_snap_idx = NULL;
    ngx_http_siteflow_snap_job = 0;
    ngx_http_siteflow_compacting = 2;

    /* the index is not pruned while the snapshot walks it */
    sh->snapshot_pid = ngx_pid;

    ngx_http_siteflow_compact_event.handler =
                                       ngx_http_siteflow_compact_handler;
    ngx_http_siteflow_compact_event.data = &ngx_http_siteflow_dummy;
    ngx_http_siteflow_compact_event.log = ngx_cycle->log;

    ngx_post_event(&ngx_http_siteflow_compact_event, &ngx_posted_next_events);
}


static void
ngx_http_siteflow_compact_handler(ngx_event_t *ev)
{
    ngx_int_t                        rc;
    ngx_http_siteflow_snap_t        *snap;
    ngx_http_siteflow_batch_t       *b;
    ngx_http_siteflow_queue_conf_t  *qc;
#if (NGX_THREADS)
    ngx_thread_task_t               *task;
#endif

    qc = ngx_http_siteflow_qc;
    b = ngx_http_siteflow_snap_batch;

    if (qc == NULL || b == NULL || ngx_http_siteflow_compacting != 2) {
        return;
    }

    rc = ngx_http_siteflow_snapshot_build(b);

    if (rc == NGX_AGAIN && b->len) {
        if (write(ngx_http_siteflow_snap_fd, b->buf, b->len)
            != (ssize_t) b->len)
        {
            ngx_log_error(NGX_LOG_ERR, ngx_cycle->log, ngx_errno,
                          "siteflow: write() of a spool snapshot failed; "
                          "compaction is tried again later");
            rc = NGX_ERROR;

        } else {
            ngx_http_siteflow_snap_bytes += b->len;
            b->len = 0;
        }
    }

    if (rc == NGX_AGAIN) {
        /* the next chunk after nginx has served its connections */
        ngx_post_event(ev, &ngx_posted_next_events);
        return;
    }

    qc->sh->snapshot_pid = 0;

    ngx_http_siteflow_snap_batch = NULL;

    if (rc != NGX_OK) {
        u_char  file[NGX_MAX_PATH];

        ngx_snprintf(file, NGX_MAX_PATH, "%V/snapshot-%016uxL.tmp%Z",
                     &qc->path->name, ngx_http_siteflow_compact_seq);

        (void) close(ngx_http_siteflow_snap_fd);
        (void) unlink((char *) file);
        ngx_http_siteflow_snap_fd = NGX_INVALID_FILE;

        ngx_http_siteflow_compacting = 0;
        ngx_destroy_pool(b->pool);
        return;
    }

    snap = ngx_pcalloc(b->pool, sizeof(ngx_http_siteflow_snap_t));
    if (snap == NULL) {
        ngx_http_siteflow_compacting = 0;
        ngx_destroy_pool(b->pool);
        return;
    }

    snap->batch = b;
    snap->seq = ngx_http_siteflow_compact_seq;
    snap->dir = qc->path->name;
    snap->fd = ngx_http_siteflow_snap_fd;

    ngx_http_siteflow_snap_fd = NGX_INVALID_FILE;
    ngx_http_siteflow_compacting = 3;

#if (NGX_THREADS)

    task = ngx_thread_task_alloc(b->pool, sizeof(void *));

    if (task) {
        *(ngx_http_siteflow_snap_t **) task->ctx = snap;
        task->handler = ngx_http_siteflow_snapshot_task;
        task->event.handler = ngx_http_siteflow_snapshot_done;
        task->event.data = snap;

        if (ngx_thread_task_post(qc->thread_pool, task) == NGX_OK) {
            return;
        }
    }

#endif

    ngx_http_siteflow_snapshot_task(&snap, ngx_cycle->log);

    {
        ngx_event_t  done;

        ngx_memzero(&done, sizeof(ngx_event_t));
        done.data = snap;
        ngx_http_siteflow_snapshot_done(&done);
    }
}


/*
 * What is live, as records (the index, jobs not finished, failed jobs), a
 * chunk per call with the zone locked only for that chunk: NGX_AGAIN
 * while there is more.  Between chunks jobs may finish or change: every
 * change after the segment switch is in a segment the snapshot does not
 * replace, and records carry versions, so the snapshot need not be one
 * instant.  Index entries are never removed, so the cursor stays valid.
 */

static ngx_int_t
ngx_http_siteflow_snapshot_build(ngx_http_siteflow_batch_t *b)
{
    ngx_int_t                        rc;
    ngx_uint_t                       n;
    ngx_queue_t                     *q;
    ngx_http_siteflow_op_t           op;
    ngx_http_siteflow_idx_t         *e;
    ngx_http_siteflow_job_t         *job;
    ngx_http_siteflow_queue_sh_t    *sh;
    ngx_http_siteflow_queue_conf_t  *qc;

    qc = ngx_http_siteflow_qc;
    sh = qc->sh;
    rc = NGX_OK;
    n = 0;

    ngx_shmtx_lock(&qc->shpool->mutex);

    q = ngx_http_siteflow_snap_idx ? ngx_http_siteflow_snap_idx
                                   : ngx_queue_head(&sh->index);

    for ( /* void */ ;
         q != ngx_queue_sentinel(&sh->index) && rc == NGX_OK
         && n < NGX_HTTP_SITEFLOW_SNAP_CHUNK;
         q = ngx_queue_next(q), n++)
    {
        e = ngx_queue_data(q, ngx_http_siteflow_idx_t, all);

        ngx_memzero(&op, sizeof(ngx_http_siteflow_op_t));
        op.type = SF_QREC_INDEX;

        /* "storefront \0 order" */
        op.idx.storefront.data = e->order_key.data;
        op.idx.storefront.len = ngx_strlen(e->order_key.data);

        if (op.idx.storefront.len >= e->order_key.len) {
            op.idx.storefront.len = 0;
        }

        op.idx.order_id.data = e->order_key.data + op.idx.storefront.len + 1;
        op.idx.order_id.len = e->order_key.len - op.idx.storefront.len - 1;

        if (e->has_source) {
            op.idx.source_id.data = e->source_key.data
                                    + op.idx.storefront.len + 1;
            op.idx.source_id.len = e->source_key.len
                                   - op.idx.storefront.len - 1;
        }

        op.idx.siteflow_id = e->siteflow_id;
        op.idx.state = e->state;
        op.idx.updated_ms = e->updated_ms;
        op.idx.sent_ms = e->sent_ms;
        op.idx.rank = e->rank;
        op.idx.fingerprint = e->fingerprint;

        op.version = e->version_order;
        rc = ngx_http_siteflow_encode(&op, b);

        if (rc == NGX_OK) {
            op.postback = 1;
            op.version = e->version_postback;
            rc = ngx_http_siteflow_encode(&op, b);
        }
    }

    ngx_http_siteflow_snap_idx = q;

    if (rc != NGX_OK || n == NGX_HTTP_SITEFLOW_SNAP_CHUNK) {
        ngx_shmtx_unlock(&qc->shpool->mutex);
        return (rc == NGX_OK) ? NGX_AGAIN : rc;
    }

    for (n = 0; rc == NGX_OK && n < NGX_HTTP_SITEFLOW_SNAP_CHUNK; n++) {

        job = ngx_http_siteflow_job_after(sh, ngx_http_siteflow_snap_job);

        if (job == NULL) {
            ngx_shmtx_unlock(&qc->shpool->mutex);
            return NGX_OK;
        }

        ngx_http_siteflow_snap_job = job->id;

        if (job->state == SF_QSTATE_DONE || job->state == SF_QSTATE_SKIPPED) {
            continue;
        }

        ngx_memzero(&op, sizeof(ngx_http_siteflow_op_t));
        op.type = SF_QREC_JOB;
        op.id = job->id;
        op.kind = job->kind;
        op.storefront = job->storefront;
        op.order_id = job->order_id;
        op.payload = job->payload;
        op.created_ms = job->created_ms;

        rc = ngx_http_siteflow_encode(&op, b);

        if (rc == NGX_OK) {
            (void) ngx_http_siteflow_state_op(job, &op);
            op.version = job->version;
            rc = ngx_http_siteflow_encode(&op, b);
        }
    }

    ngx_shmtx_unlock(&qc->shpool->mutex);

    return (rc == NGX_OK) ? NGX_AGAIN : rc;
}


/* the job with the smallest id above "id", or NULL */

static ngx_http_siteflow_job_t *
ngx_http_siteflow_job_after(ngx_http_siteflow_queue_sh_t *sh, uint64_t id)
{
    ngx_rbtree_node_t  *node, *sentinel, *best;

    node = sh->jobs.root;
    sentinel = sh->jobs.sentinel;
    best = NULL;

    while (node != sentinel) {
        if ((uint64_t) node->key > id) {
            best = node;
            node = node->left;

        } else {
            node = node->right;
        }
    }

    return (ngx_http_siteflow_job_t *) best;
}


static void
ngx_http_siteflow_snapshot_task(void *data, ngx_log_t *log)
{
    ngx_http_siteflow_snap_t  *snap = *(ngx_http_siteflow_snap_t **) data;

    uint64_t                    seq;
    ngx_fd_t                    fd, dir;
    ngx_dir_t                   d;
    size_t                      len;
    u_char                     *name;
    ngx_http_siteflow_batch_t  *b;
    u_char                      tmp[NGX_MAX_PATH], file[NGX_MAX_PATH];

    b = snap->batch;

    ngx_snprintf(tmp, NGX_MAX_PATH, "%V/snapshot-%016uxL.tmp%Z",
                 &snap->dir, snap->seq);
    ngx_snprintf(file, NGX_MAX_PATH, "%V/snapshot-%016uxL.sfq%Z",
                 &snap->dir, snap->seq);

    /* written chunk by chunk by compact_handler(); what is left */

    fd = snap->fd;
    snap->fd = NGX_INVALID_FILE;

    if (b->len && write(fd, b->buf, b->len) != (ssize_t) b->len) {
        snap->err = ngx_errno ? ngx_errno : NGX_ENOSPC;
        snap->failed = "write()";
        (void) close(fd);
        (void) unlink((char *) tmp);
        return;
    }

    if (fdatasync(fd) == -1) {
        snap->err = ngx_errno;
        snap->failed = "fdatasync()";
        (void) close(fd);
        (void) unlink((char *) tmp);
        return;
    }

    (void) close(fd);

    if (rename((char *) tmp, (char *) file) == -1) {
        snap->err = ngx_errno;
        snap->failed = "rename()";
        (void) unlink((char *) tmp);
        return;
    }

    dir = open((char *) snap->dir.data, O_RDONLY|O_CLOEXEC);

    if (dir == -1 || fsync(dir) == -1) {
        snap->err = ngx_errno;
        snap->failed = "fsync() of the spool directory";

        if (dir != -1) {
            (void) close(dir);
        }

        return;
    }

    (void) close(dir);

    /* the snapshot covers every segment up to seq and older snapshots */

    if (ngx_open_dir(&snap->dir, &d) == NGX_ERROR) {
        return;
    }

    for ( ;; ) {
        if (ngx_read_dir(&d) == NGX_ERROR) {
            break;
        }

        name = ngx_de_name(&d);
        len = ngx_de_namelen(&d);

        if (len == 28 && ngx_strncmp(name, "journal-", 8) == 0
            && ngx_strncmp(name + 24, ".sfq", 4) == 0)
        {
            seq = (uint64_t) ngx_hextoi(name + 8, 16);

        } else if (len == 29 && ngx_strncmp(name, "snapshot-", 9) == 0
                   && ngx_strncmp(name + 25, ".sfq", 4) == 0)
        {
            seq = (uint64_t) ngx_hextoi(name + 9, 16);

            if (seq == snap->seq) {
                continue;
            }

        } else {
            continue;
        }

        if (seq == (uint64_t) NGX_ERROR || seq > snap->seq) {
            continue;
        }

        ngx_snprintf(tmp, NGX_MAX_PATH, "%V/%*s%Z", &snap->dir, len, name);
        (void) unlink((char *) tmp);
    }

    (void) ngx_close_dir(&d);
}


static void
ngx_http_siteflow_snapshot_done(ngx_event_t *ev)
{
    ngx_http_siteflow_snap_t  *snap = ev->data;

    if (snap->err) {
        ngx_log_error(NGX_LOG_ERR, ngx_cycle->log, snap->err,
                      "siteflow: %s failed writing a spool snapshot; "
                      "compaction is tried again later", snap->failed);

    } else {
        ngx_http_siteflow_qc->sh->snapshot = snap->seq;

        ngx_log_error(NGX_LOG_INFO, ngx_cycle->log, 0,
                      "siteflow: spool compacted up to segment %016uxL, "
                      "%O bytes live", snap->seq,
                      ngx_http_siteflow_snap_bytes
                      + (off_t) snap->batch->len);
    }

    ngx_http_siteflow_compacting = 0;

    ngx_destroy_pool(snap->batch->pool);
}
