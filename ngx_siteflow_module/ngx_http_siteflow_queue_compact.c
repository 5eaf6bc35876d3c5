
/*
 * Copyright (C) ngx_siteflow_module authors
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include <jansson.h>

#include "ngx_http_siteflow.h"
#include "ngx_http_siteflow_queue.h"
#include "ngx_http_siteflow_queue_spool.h"


/*
 * Compaction: when the active segment grows past siteflow_spool
 * segment=, batches go to a new segment and a snapshot of everything
 * live replaces the older files.  Run by the consumer.
 */


typedef enum {
    NGX_HTTP_SITEFLOW_COMPACT_IDLE = 0,
    NGX_HTTP_SITEFLOW_COMPACT_WAIT,       /* for the batches of the old
                                             segment to be applied */
    NGX_HTTP_SITEFLOW_COMPACT_BUILD,      /* the snapshot, a chunk per
                                             event loop turn */
    NGX_HTTP_SITEFLOW_COMPACT_WRITE       /* its sync in a thread */
} ngx_http_siteflow_compact_e;


/* the consumer's compaction in progress */

typedef struct {
    ngx_http_siteflow_compact_e    state;
    uint64_t                       seq;          /* segments <= seq */
    ngx_msec_t                     start;
    ngx_http_siteflow_batch_t     *batch;        /* the snapshot's chunk */
    ngx_queue_t                   *idx;          /* index cursor */
    uint64_t                       job;          /* job cursor */
    ngx_event_t                    event;
    ngx_fd_t                       fd;           /* the .tmp file */
    off_t                          bytes;        /* written so far */
} ngx_http_siteflow_compaction_t;


#define NGX_HTTP_SITEFLOW_SNAP_CHUNK  256


static void ngx_http_siteflow_compact_handler(ngx_event_t *ev);
static void ngx_http_siteflow_snapshot_task(void *data, ngx_log_t *log);
static void ngx_http_siteflow_snapshot_done(ngx_event_t *ev);
static ngx_int_t ngx_http_siteflow_snapshot_build(
    ngx_http_siteflow_batch_t *b);


static ngx_http_siteflow_compaction_t  ngx_http_siteflow_compaction;


/* compaction: a new segment, then a snapshot of what is live */

typedef struct {
    ngx_http_siteflow_batch_t     *batch;
    uint64_t                       seq;
    ngx_fd_t                       fd;            /* the .tmp file */
    ngx_str_t                      dir;
    ngx_err_t                      err;
    const char                    *failed;
} ngx_http_siteflow_snap_t;


void
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

    if (ngx_http_siteflow_compaction.state >= NGX_HTTP_SITEFLOW_COMPACT_BUILD) {
        return;     /* a snapshot is being built or written */
    }

    if (ngx_http_siteflow_compaction.state == NGX_HTTP_SITEFLOW_COMPACT_IDLE) {

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
        ngx_http_siteflow_compaction.seq = sh->segment;
        sh->segment++;
        ngx_shmtx_unlock(qc->write_lock);

        ngx_http_siteflow_compaction.state = NGX_HTTP_SITEFLOW_COMPACT_WAIT;
        ngx_http_siteflow_compaction.start = ngx_current_msec;
    }

    /* batches written to the old segment must be applied first */

    if (sh->inflight[ngx_http_siteflow_compaction.seq & 1] != 0
        && ngx_current_msec - ngx_http_siteflow_compaction.start < 30000)
    {
        return;
    }

    /*
     * the snapshot is built a chunk at a time (compact_handler()), each
     * chunk written at once to the .tmp file: small writes, and no copy
     * of the whole table in the worker's memory
     */

    ngx_snprintf(file, NGX_MAX_PATH, "%V/snapshot-%016uxL.tmp%Z",
                 &qc->path->name, ngx_http_siteflow_compaction.seq);

    ngx_http_siteflow_compaction.fd = open((char *) file,
                                     O_WRONLY|O_CREAT|O_TRUNC|O_CLOEXEC,
                                     0600);

    if (ngx_http_siteflow_compaction.fd == NGX_INVALID_FILE) {
        ngx_log_error(NGX_LOG_ERR, ngx_cycle->log, ngx_errno,
                      "siteflow: open() \"%s\" failed; compaction is "
                      "tried again later", file);
        return;
    }

    b = ngx_http_siteflow_batch_alloc();
    if (b == NULL) {
        (void) close(ngx_http_siteflow_compaction.fd);
        (void) unlink((char *) file);
        return;
    }

    ngx_http_siteflow_compaction.batch = b;
    ngx_http_siteflow_compaction.bytes = 0;
    ngx_http_siteflow_compaction.idx = NULL;
    ngx_http_siteflow_compaction.job = 0;
    ngx_http_siteflow_compaction.state = NGX_HTTP_SITEFLOW_COMPACT_BUILD;

    /* the index is not pruned while the snapshot walks it */
    sh->snapshot_pid = ngx_pid;

    ngx_http_siteflow_queue_event(&ngx_http_siteflow_compaction.event,
                                  ngx_http_siteflow_compact_handler,
                                  ngx_cycle->log);

    ngx_post_event(&ngx_http_siteflow_compaction.event,
                   &ngx_posted_next_events);
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
    b = ngx_http_siteflow_compaction.batch;

    if (qc == NULL || b == NULL
        || ngx_http_siteflow_compaction.state
           != NGX_HTTP_SITEFLOW_COMPACT_BUILD)
    {
        return;
    }

    rc = ngx_http_siteflow_snapshot_build(b);

    if (rc == NGX_AGAIN && b->len) {
        if (write(ngx_http_siteflow_compaction.fd, b->buf, b->len)
            != (ssize_t) b->len)
        {
            ngx_log_error(NGX_LOG_ERR, ngx_cycle->log, ngx_errno,
                          "siteflow: write() of a spool snapshot failed; "
                          "compaction is tried again later");
            rc = NGX_ERROR;

        } else {
            ngx_http_siteflow_compaction.bytes += b->len;
            b->len = 0;
        }
    }

    if (rc == NGX_AGAIN) {
        /* the next chunk after nginx has served its connections */
        ngx_post_event(ev, &ngx_posted_next_events);
        return;
    }

    qc->sh->snapshot_pid = 0;

    ngx_http_siteflow_compaction.batch = NULL;

    if (rc != NGX_OK) {
        u_char  file[NGX_MAX_PATH];

        ngx_snprintf(file, NGX_MAX_PATH, "%V/snapshot-%016uxL.tmp%Z",
                     &qc->path->name, ngx_http_siteflow_compaction.seq);

        (void) close(ngx_http_siteflow_compaction.fd);
        (void) unlink((char *) file);
        ngx_http_siteflow_compaction.fd = NGX_INVALID_FILE;

        ngx_http_siteflow_compaction.state = NGX_HTTP_SITEFLOW_COMPACT_IDLE;
        ngx_destroy_pool(b->pool);
        return;
    }

    snap = ngx_pcalloc(b->pool, sizeof(ngx_http_siteflow_snap_t));
    if (snap == NULL) {
        ngx_http_siteflow_compaction.state = NGX_HTTP_SITEFLOW_COMPACT_IDLE;
        ngx_destroy_pool(b->pool);
        return;
    }

    snap->batch = b;
    snap->seq = ngx_http_siteflow_compaction.seq;
    snap->dir = qc->path->name;
    snap->fd = ngx_http_siteflow_compaction.fd;

    ngx_http_siteflow_compaction.fd = NGX_INVALID_FILE;
    ngx_http_siteflow_compaction.state = NGX_HTTP_SITEFLOW_COMPACT_WRITE;

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

    q = ngx_http_siteflow_compaction.idx ? ngx_http_siteflow_compaction.idx
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

    ngx_http_siteflow_compaction.idx = q;

    if (rc != NGX_OK || n == NGX_HTTP_SITEFLOW_SNAP_CHUNK) {
        ngx_shmtx_unlock(&qc->shpool->mutex);
        return (rc == NGX_OK) ? NGX_AGAIN : rc;
    }

    for (n = 0; rc == NGX_OK && n < NGX_HTTP_SITEFLOW_SNAP_CHUNK; n++) {

        job = ngx_http_siteflow_job_after(sh, ngx_http_siteflow_compaction.job);

        if (job == NULL) {
            ngx_shmtx_unlock(&qc->shpool->mutex);
            return NGX_OK;
        }

        ngx_http_siteflow_compaction.job = job->id;

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
                      ngx_http_siteflow_compaction.bytes
                      + (off_t) snap->batch->len);
    }

    ngx_http_siteflow_compaction.state = NGX_HTTP_SITEFLOW_COMPACT_IDLE;

    ngx_destroy_pool(snap->batch->pool);
}
