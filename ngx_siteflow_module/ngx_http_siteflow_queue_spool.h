
/*
 * Copyright (C) ngx_siteflow_module authors
 */


#ifndef _NGX_HTTP_SITEFLOW_QUEUE_SPOOL_H_INCLUDED_
#define _NGX_HTTP_SITEFLOW_QUEUE_SPOOL_H_INCLUDED_


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include <jansson.h>

#include "ngx_http_siteflow.h"
#include "ngx_http_siteflow_queue.h"
#include "sf_qrec.h"
#include "sf_breaker.h"


/*
 * The spool backend of the queue, between its own files only; nothing
 * outside ngx_http_siteflow_queue*.c includes this.  Layers, each calling
 * only the ones below it (docs/internals/delivery.md, "Layout"):
 *
 *   ngx_http_siteflow_queue.c           the interface (queue.h)
 *   ngx_http_siteflow_queue_consumer.c  claim, breaker, sweep, finish
 *   ngx_http_siteflow_queue_compact.c   compaction, snapshots
 *   ngx_http_siteflow_queue_journal.c   siteflow_spool, batches, fdatasync
 *   ngx_http_siteflow_queue_recover.c   the start-up scan of the spool
 *   ngx_http_siteflow_queue_table.c     the job table in shared memory
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
#define NGX_HTTP_SITEFLOW_QUEUE_LAYOUT    6

/* how long a postback's reservation of the index holds at most */
#define NGX_HTTP_SITEFLOW_PB_HOLD_MS      10000
#define NGX_HTTP_SITEFLOW_SH_BREAKERS     64        /* published */
#define NGX_HTTP_SITEFLOW_NAME_LEN        128       /* of a breaker */

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


/*
 * A hash table of strings in the shared memory (layout 6): a fixed number
 * of buckets, chosen from the zone's size, each a list of nodes with the
 * crc32 of their string (ngx_http_siteflow_queue_table.c).
 */

typedef struct ngx_http_siteflow_hnode_s  ngx_http_siteflow_hnode_t;

struct ngx_http_siteflow_hnode_s {
    ngx_http_siteflow_hnode_t     *next;
    uint32_t                       hash;         /* crc32 of the string */
};


#define ngx_http_siteflow_hnode_data(node, type, link)                        \
    (type *) ((u_char *) (node) - offsetof(type, link))


typedef struct {
    ngx_http_siteflow_hnode_t    **buckets;
    ngx_uint_t                     mask;         /* buckets - 1 */
} ngx_http_siteflow_htab_t;


struct ngx_http_siteflow_order_s {
    ngx_http_siteflow_hnode_t      node;         /* in sh->orders */
    ngx_queue_t                    jobs;         /* unfinished, by id */
    ngx_str_t                      key;          /* storefront \0 order */
};


typedef struct {
    ngx_http_siteflow_hnode_t      by_order;
    ngx_http_siteflow_hnode_t      by_source;    /* if has_source */
    ngx_queue_t                    all;

    uint32_t                       version_order;
    uint32_t                       version_postback;
    uint64_t                       fingerprint;  /* as in index_t */
    int32_t                        rank;

    /*
     * the postback half as a postback accepted but not yet durable left
     * it (ngx_http_siteflow_queue_reserve(), layout 5): what the next
     * postback of the order is judged by while that one's record is on
     * its way to the disk
     */
    uint32_t                       pb_version;
    uint64_t                       pb_fingerprint;
    int32_t                        pb_rank;
    ngx_pid_t                      pb_pid;
    uint64_t                       pb_ms;

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
    ngx_http_siteflow_htab_t       orders;       /* chains, by key */
    ngx_http_siteflow_htab_t       by_order;     /* the index, by order */
    ngx_http_siteflow_htab_t       by_source;    /* the index, by source */

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

    /*
     * the storefronts' breakers, shared by the delivering workers (layout
     * 4), under the zone's mutex; a probe's owner is its worker's pid
     */
    sf_breakers_t                  brk;

    /* the breakers' gauges by storefront, for the metrics (layout 2) */
    ngx_uint_t                     nbreakers;
    struct {
        u_char                     name[NGX_HTTP_SITEFLOW_NAME_LEN];
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


/* an nginx string as a payload string and back */
#define ngx_http_siteflow_qstr(dst, src)                                      \
    (dst)->data = (const char *) (src)->data; (dst)->len = (src)->len
#define ngx_http_siteflow_nstr(dst, src)                                      \
    (dst)->data = (u_char *) (src)->data; (dst)->len = (src)->len


/* the job table (ngx_http_siteflow_queue_table.c); the shpool mutex is
   held around every call but table_init() */

ngx_int_t ngx_http_siteflow_table_init(ngx_http_siteflow_queue_sh_t *sh,
    ngx_slab_pool_t *shpool);
void ngx_http_siteflow_apply(ngx_http_siteflow_queue_sh_t *sh,
    ngx_slab_pool_t *shpool, ngx_http_siteflow_op_t *op);
void ngx_http_siteflow_idx_apply(ngx_http_siteflow_queue_sh_t *sh,
    ngx_slab_pool_t *shpool, ngx_http_siteflow_op_t *op);
ngx_http_siteflow_job_t *ngx_http_siteflow_job_new(ngx_slab_pool_t *shpool,
    ngx_http_siteflow_op_t *op);
ngx_http_siteflow_job_t *ngx_http_siteflow_job_find(
    ngx_http_siteflow_queue_sh_t *sh, uint64_t id);
ngx_http_siteflow_job_t *ngx_http_siteflow_job_after(
    ngx_http_siteflow_queue_sh_t *sh, uint64_t id);
void ngx_http_siteflow_chain_sync(ngx_http_siteflow_queue_sh_t *sh,
    ngx_http_siteflow_order_t *order);
void ngx_http_siteflow_finished_trim(ngx_http_siteflow_queue_sh_t *sh,
    ngx_slab_pool_t *shpool);
ngx_http_siteflow_order_t *ngx_http_siteflow_order_find(
    ngx_http_siteflow_queue_sh_t *sh, ngx_str_t *key, uint32_t hash);
ngx_http_siteflow_idx_t *ngx_http_siteflow_idx_find(
    ngx_http_siteflow_htab_t *tab, ngx_str_t *key, ngx_uint_t by_source);
ngx_int_t ngx_http_siteflow_key(ngx_pool_t *pool, ngx_str_t *a,
    ngx_str_t *b, ngx_str_t *key);
/* the next version of the order's part of its index entry */
uint32_t ngx_http_siteflow_idx_version(ngx_http_siteflow_index_t *idx);
/* a postback's reservation of entry e is in force (see table.c) */
ngx_uint_t ngx_http_siteflow_idx_reserved(ngx_http_siteflow_idx_t *e,
    uint64_t now);
/* the batch of op (a postback's index op) failed: its reservation ends */
void ngx_http_siteflow_idx_release(ngx_http_siteflow_queue_sh_t *sh,
    ngx_http_siteflow_op_t *op);
ngx_int_t ngx_http_siteflow_state_op(ngx_http_siteflow_job_t *job,
    ngx_http_siteflow_op_t *op);
/* takes the shpool mutex itself; NGX_OK: op is the new horizon to journal */
ngx_int_t ngx_http_siteflow_index_prune(ngx_http_siteflow_queue_conf_t *qc,
    ngx_queue_t **cursor, ngx_http_siteflow_op_t *op);


/* the journal (ngx_http_siteflow_queue_journal.c) */

/* the queue configuration of the current cycle, NULL before the process
   started the queue */
ngx_http_siteflow_queue_conf_t *ngx_http_siteflow_queue_conf(void);
#define ngx_http_siteflow_qc  ngx_http_siteflow_queue_conf()

/* the workers' user may write the spool (nginx -t, start, reload) */
ngx_int_t ngx_http_siteflow_journal_check(ngx_cycle_t *cycle,
    ngx_http_siteflow_queue_conf_t *qc);
void ngx_http_siteflow_journal_init_process(ngx_cycle_t *cycle,
    ngx_http_siteflow_queue_conf_t *qc);
void ngx_http_siteflow_journal_exit_process(ngx_cycle_t *cycle);
void ngx_http_siteflow_journal_close(void);
/* sets up an event of the queue's (no connection of its own) */
void ngx_http_siteflow_queue_event(ngx_event_t *ev,
    ngx_event_handler_pt handler, ngx_log_t *log);
/* called after each batch was applied (or refused) */
void ngx_http_siteflow_journal_on_applied(void (*handler)(void));
ngx_int_t ngx_http_siteflow_append(ngx_http_siteflow_op_t *op);
ngx_http_siteflow_batch_t *ngx_http_siteflow_batch_alloc(void);
ngx_int_t ngx_http_siteflow_encode(ngx_http_siteflow_op_t *op,
    ngx_http_siteflow_batch_t *b);


/* the start-up scan (ngx_http_siteflow_queue_recover.c) */

ngx_int_t ngx_http_siteflow_queue_recover(ngx_http_siteflow_queue_conf_t *qc,
    ngx_log_t *log);


/* compaction (ngx_http_siteflow_queue_compact.c), consumer only */

void ngx_http_siteflow_compact(void);


/* the consumer (ngx_http_siteflow_queue_consumer.c), in each delivering
   worker (siteflow_queue_workers) */

ngx_int_t ngx_http_siteflow_consumer_init_process(ngx_cycle_t *cycle,
    ngx_uint_t concurrency, ngx_uint_t lead);
void ngx_http_siteflow_consumer_exit_process(ngx_cycle_t *cycle);
/* queue.h's runner(), done() and breaker_report() of the spool */
void ngx_http_siteflow_consumer_runner(ngx_http_siteflow_runner_pt runner);
void ngx_http_siteflow_consumer_done(ngx_http_siteflow_run_t *run,
    ngx_http_siteflow_outcome_t *out);
void ngx_http_siteflow_consumer_breaker(ngx_http_siteflow_run_t *run,
    ngx_uint_t siteflow, ngx_uint_t ok);


#endif /* _NGX_HTTP_SITEFLOW_QUEUE_SPOOL_H_INCLUDED_ */
