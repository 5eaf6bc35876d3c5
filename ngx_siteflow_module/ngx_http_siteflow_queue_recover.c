
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
 * Start-up: the job table is rebuilt from the newest snapshot and the
 * journal segments after it; damaged stretches are skipped, kept aside
 * and counted.
 */


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


/* start-up: rebuild the table from the newest snapshot and the segments */

ngx_int_t
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

    sf_qpay_t                 pay;
    ngx_http_siteflow_op_t    op;

    if (sf_qpay_decode(r->type, r->payload, r->len, &pay) != 0) {
        ngx_log_error(NGX_LOG_WARN, ld->log, 0,
                      "siteflow: a spool record of job %uL is not valid "
                      "JSON, ignored", r->job_id);
        return 0;
    }

    ngx_memzero(&op, sizeof(ngx_http_siteflow_op_t));

    op.type = r->type;
    op.id = r->job_id;

    switch (r->type) {

    case SF_QREC_JOB:
        op.kind = pay.kind;
        ngx_http_siteflow_nstr(&op.storefront, &pay.storefront);
        ngx_http_siteflow_nstr(&op.order_id, &pay.order_id);
        op.created_ms = pay.created_ms;

        if (pay.job.data == NULL) {
            break;
        }

        ngx_http_siteflow_nstr(&op.payload, &pay.job);

        if (op.id >= ld->qc->sh->next_id) {
            ld->qc->sh->next_id = op.id + 1;
        }

        ngx_shmtx_lock(&ld->qc->shpool->mutex);
        ngx_http_siteflow_apply(ld->qc->sh, ld->qc->shpool, &op);
        ngx_shmtx_unlock(&ld->qc->shpool->mutex);
        break;

    case SF_QREC_STATE:
        op.version = (uint32_t) pay.version;
        op.state = pay.state;
        op.attempts = pay.attempts;
        op.next_ms = pay.next_ms;
        op.maybe_sent = pay.maybe_sent;
        ngx_http_siteflow_nstr(&op.error, &pay.error);
        ngx_http_siteflow_nstr(&op.results, &pay.results);

        op.release = 1;

        ngx_shmtx_lock(&ld->qc->shpool->mutex);
        ngx_http_siteflow_apply(ld->qc->sh, ld->qc->shpool, &op);
        ngx_shmtx_unlock(&ld->qc->shpool->mutex);
        break;

    case SF_QREC_INDEX:
        op.postback = pay.postback;
        op.version = (uint32_t) pay.version;
        ngx_http_siteflow_nstr(&op.idx.storefront, &pay.storefront);
        ngx_http_siteflow_nstr(&op.idx.order_id, &pay.order_id);
        ngx_http_siteflow_nstr(&op.idx.source_id, &pay.source_id);
        ngx_http_siteflow_nstr(&op.idx.siteflow_id, &pay.siteflow_id);
        op.idx.state = pay.state;
        op.idx.rank = (ngx_int_t) pay.rank;
        op.idx.fingerprint = pay.fingerprint;
        op.idx.updated_ms = pay.updated_ms;
        op.idx.sent_ms = pay.sent_ms;

        ngx_shmtx_lock(&ld->qc->shpool->mutex);
        ngx_http_siteflow_idx_apply(ld->qc->sh, ld->qc->shpool, &op);
        ngx_shmtx_unlock(&ld->qc->shpool->mutex);
        break;

    default:
        break;
    }

    sf_qpay_free(&pay);

    return 0;
}

