
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
#include "ngx_http_siteflow_queue_spool.h"


/*
 * The journal: the "siteflow_spool" directive and its zone, and the
 * writing of records in batches (one write() and one fdatasync() on the
 * thread pool each), applied to the job table once durable.
 */


static ngx_int_t ngx_http_siteflow_queue_init_zone(ngx_shm_zone_t *shm_zone,
    void *data);
static ngx_uint_t ngx_http_siteflow_queue_old_zone(ngx_shm_zone_t *zone);
static ngx_http_siteflow_batch_t *ngx_http_siteflow_batch(void);
static ngx_int_t ngx_http_siteflow_keep(ngx_http_siteflow_op_t *op,
    ngx_http_siteflow_batch_t *b);
static void ngx_http_siteflow_flush(void);
#if (NGX_THREADS)
static void ngx_http_siteflow_sync_task(void *data, ngx_log_t *log);
#endif
static void ngx_http_siteflow_synced(ngx_event_t *ev);
static void ngx_http_siteflow_batch_end(ngx_http_siteflow_batch_t *b);
static void ngx_http_siteflow_payload(ngx_http_siteflow_op_t *op,
    sf_qpay_t *p);
static void ngx_http_siteflow_flush_handler(ngx_event_t *ev);
static ngx_int_t ngx_http_siteflow_write(ngx_http_siteflow_batch_t *b);
static void ngx_http_siteflow_sync(void *data, ngx_log_t *log);


/* the journal's state in this process */

typedef struct {
    ngx_uint_t                     started;      /* the queue runs here */
    ngx_pid_t                      master;       /* our master process */
    ngx_http_siteflow_batch_t     *collecting;   /* records of this turn */
    ngx_http_siteflow_batch_t     *flying;       /* being made durable */
    ngx_event_t                    flush_event;
    ngx_event_t                    hold_event;
    ngx_connection_t               dummy;        /* for the queue's events */

    ngx_fd_t                       seg_fd;       /* the active segment */
    uint64_t                       seg_seq;
    ngx_uint_t                     seg_synced;   /* its directory entry */

    time_t                         refused_time; /* full disk messages */
    ngx_uint_t                     refused;
    ngx_uint_t                     refusing;

    void                         (*applied)(void);
    ngx_uint_t                     exiting;      /* exit_process ran */
} ngx_http_siteflow_journal_t;


static ngx_http_siteflow_journal_t  ngx_http_siteflow_journal;


/* the queue configuration of the current cycle: without a master process
   a reload replaces the cycle (and frees the old one later) without
   starting the process again */

ngx_http_siteflow_queue_conf_t *
ngx_http_siteflow_queue_conf(void)
{
    ngx_http_siteflow_main_conf_t  *smcf;

    if (!ngx_http_siteflow_journal.started) {
        return NULL;
    }

    smcf = ngx_http_cycle_get_module_main_conf(ngx_cycle,
                                               ngx_http_siteflow_module);

    return smcf ? smcf->queue : NULL;
}


/*
 * nginx -t, start and reload: the worker processes' user must be able to
 * reach and write the spool (nginx creates the directory and gives it to
 * that user, but a parent directory it cannot enter, a read-only mount or
 * a spool left by root make every hook 503 at run time).  A master run
 * by root asks a child that takes the workers' user and groups, as a
 * worker does; any other master, or nginx without a master process, has
 * the workers' user itself.
 */

ngx_int_t
ngx_http_siteflow_journal_check(ngx_cycle_t *cycle,
    ngx_http_siteflow_queue_conf_t *qc)
{
    int               status;
    ngx_err_t         err;
    ngx_pid_t         pid;
    ngx_core_conf_t  *ccf;

    ccf = (ngx_core_conf_t *) ngx_get_conf(cycle->conf_ctx, ngx_core_module);

    /* "master_process off": the one process keeps the master's user */

    if (geteuid() != 0 || !ccf->master
        || ccf->user == (ngx_uid_t) NGX_CONF_UNSET_UINT || ccf->user == 0)
    {
        if (access((char *) qc->path->name.data, W_OK|X_OK) == 0) {
            return NGX_OK;
        }

        err = ngx_errno;
        goto failed;
    }

    pid = fork();

    if (pid == -1) {
        ngx_log_error(NGX_LOG_WARN, cycle->log, ngx_errno,
                      "siteflow: fork() to check the spool failed");
        return NGX_OK;
    }

    if (pid == 0) {
        if (setgid(ccf->group) == -1
            || initgroups(ccf->username, ccf->group) == -1
            || setuid(ccf->user) == -1)
        {
            _exit(255);
        }

        _exit(access((char *) qc->path->name.data, W_OK|X_OK) == 0
              ? 0 : errno & 0x7f);
    }

    while (waitpid(pid, &status, 0) == -1) {
        if (ngx_errno != NGX_EINTR) {
            return NGX_OK;
        }
    }

    if (!WIFEXITED(status) || WEXITSTATUS(status) == 0
        || WEXITSTATUS(status) == 255)
    {
        return NGX_OK;
    }

    err = WEXITSTATUS(status);

failed:

    ngx_log_error(NGX_LOG_EMERG, cycle->log, err,
                  "\"siteflow_spool\" \"%V\" in %s:%ui cannot be written "
                  "by the worker processes' user%s%s%s: give the "
                  "directory and its parents to that user, or change "
                  "\"user\"", &qc->path->name, qc->path->conf_file,
                  qc->path->line, ccf->username ? " \"" : "",
                  ccf->username ? ccf->username : "",
                  ccf->username ? "\"" : "");

    return NGX_ERROR;
}


void
ngx_http_siteflow_journal_init_process(ngx_cycle_t *cycle,
    ngx_http_siteflow_queue_conf_t *qc)
{
    ngx_http_siteflow_journal.started = 1;
    ngx_http_siteflow_journal.seg_fd = NGX_INVALID_FILE;

    if (ngx_process == NGX_PROCESS_WORKER) {
        /*
         * a worker whose master is killed must not live on beside the
         * nginx started next on the same spool: it is sent SIGTERM and
         * writes nothing more (ngx_http_siteflow_write())
         */

        ngx_http_siteflow_journal.master = getppid();

#if (NGX_LINUX)
        if (prctl(PR_SET_PDEATHSIG, SIGTERM, 0, 0, 0) == -1) {
            ngx_log_error(NGX_LOG_ALERT, cycle->log, ngx_errno,
                          "siteflow: prctl(PR_SET_PDEATHSIG) failed");
        }
#endif
    }

    if (access((char *) qc->path->name.data, W_OK|X_OK) != 0) {
        ngx_log_error(NGX_LOG_ALERT, cycle->log, ngx_errno,
                      "siteflow: the spool \"%V\" is not writable by the "
                      "worker processes; every hook and postback will be "
                      "refused with 503 until it is",
                      &qc->path->name);
    }

    ngx_http_siteflow_queue_event(&ngx_http_siteflow_journal.flush_event,
                                  ngx_http_siteflow_flush_handler,
                                  cycle->log);

    /* keeps an exiting worker alive while a batch is being made durable */
    ngx_http_siteflow_queue_event(&ngx_http_siteflow_journal.hold_event,
                                  ngx_http_siteflow_flush_handler,
                                  cycle->log);
}


/* the queue's own events (timers and posted) */

void
ngx_http_siteflow_queue_event(ngx_event_t *ev, ngx_event_handler_pt handler,
    ngx_log_t *log)
{
    ngx_http_siteflow_journal.dummy.fd = (ngx_socket_t) -1;

    ev->handler = handler;
    ev->data = &ngx_http_siteflow_journal.dummy;
    ev->log = log;
}


void
ngx_http_siteflow_journal_on_applied(void (*handler)(void))
{
    ngx_http_siteflow_journal.applied = handler;
}


void
ngx_http_siteflow_journal_exit_process(ngx_cycle_t *cycle)
{
    ngx_http_siteflow_batch_t  *b;

    ngx_http_siteflow_journal.exiting = 1;

    /*
     * A batch handed to the thread pool is complete on disk by now: the
     * thread pool module's exit (before this module's) waits for its
     * threads.  Its completion event will not run: it is ended here.
     */

    if (ngx_http_siteflow_journal.flying != NULL) {
        ngx_http_siteflow_batch_end(ngx_http_siteflow_journal.flying);
    }

    /*
     * what is waiting for a write is written now, blocking: the process
     * is going away, and answers already sent must stay true
     */

    b = ngx_http_siteflow_journal.collecting;

    if (b != NULL) {
        ngx_http_siteflow_journal.collecting = NULL;

        if (b->ops.nelts && ngx_http_siteflow_write(b) == NGX_OK) {
            ngx_http_siteflow_sync(b, cycle->log);
        }

        ngx_http_siteflow_batch_end(b);
    }
}


void
ngx_http_siteflow_journal_close(void)
{
    if (ngx_http_siteflow_journal.seg_fd != NGX_INVALID_FILE) {
        (void) ngx_close_file(ngx_http_siteflow_journal.seg_fd);
        ngx_http_siteflow_journal.seg_fd = NGX_INVALID_FILE;
    }
}


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

    if (smcf->pg_queue != NULL) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"siteflow_spool\" and \"siteflow_queue\" "
                           "cannot both be set: the jobs are kept in one "
                           "of them (docs/fleet.md)");
        return NGX_CONF_ERROR;
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

    if (ngx_http_siteflow_table_init(sh, shpool) != NGX_OK) {
        return NGX_ERROR;
    }

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


/* writing: batches of records, one write() and one fdatasync() each */

static ngx_http_siteflow_batch_t *
ngx_http_siteflow_batch(void)
{
    if (ngx_http_siteflow_journal.collecting == NULL) {
        ngx_http_siteflow_journal.collecting = ngx_http_siteflow_batch_alloc();
    }

    return ngx_http_siteflow_journal.collecting;
}


ngx_http_siteflow_batch_t *
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


ngx_int_t
ngx_http_siteflow_append(ngx_http_siteflow_op_t *op)
{
    size_t                      len;
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
    len = b->len;

    if (ngx_http_siteflow_encode(o, b) != NGX_OK
        || ngx_http_siteflow_keep(o, b) != NGX_OK)
    {
        /* neither the op nor its record: the caller answers the error */
        b->ops.nelts--;
        b->len = len;
        return NGX_ERROR;
    }

    if (!ngx_http_siteflow_journal.flush_event.posted) {
        ngx_post_event(&ngx_http_siteflow_journal.flush_event,
                       &ngx_posted_events);
    }

    return NGX_OK;
}


/*
 * The op's record into the batch buffer.  The op's strings are not kept:
 * compaction writes a snapshot's records chunk by chunk with one batch,
 * and what it needs is the bytes only (keeping them made a snapshot's
 * memory grow with the whole index).
 */

ngx_int_t
ngx_http_siteflow_encode(ngx_http_siteflow_op_t *op,
    ngx_http_siteflow_batch_t *b)
{
    char       *text;
    size_t      len, size, cap;
    u_char     *p;
    sf_qpay_t   pay;
    sf_qrec_t   r;

    ngx_http_siteflow_payload(op, &pay);

    text = sf_qpay_encode(&pay, &len);

    if (text == NULL) {
        return NGX_ERROR;
    }

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

        if (b->buf) {
            /* a large allocation of the pool's: given back at once */
            (void) ngx_pfree(b->pool, b->buf);
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

    return NGX_OK;
}


/* an appended op is applied after its batch is durable: its own strings */

static ngx_int_t
ngx_http_siteflow_keep(ngx_http_siteflow_op_t *op,
    ngx_http_siteflow_batch_t *b)
{
    u_char     *p;
    ngx_str_t  *s[8];
    ngx_uint_t  i, n;

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
}

/* the record payload of an op (sf_qpay_encode()) */

static void
ngx_http_siteflow_payload(ngx_http_siteflow_op_t *op, sf_qpay_t *p)
{
    ngx_memzero(p, sizeof(sf_qpay_t));

    p->type = (int) op->type;

    if (op->type == SF_QREC_INDEX) {
        ngx_http_siteflow_qstr(&p->storefront, &op->idx.storefront);
        ngx_http_siteflow_qstr(&p->order_id, &op->idx.order_id);
        p->state = op->idx.state;

    } else {
        ngx_http_siteflow_qstr(&p->storefront, &op->storefront);
        ngx_http_siteflow_qstr(&p->order_id, &op->order_id);
        p->state = op->state;
    }

    p->kind = op->kind;
    p->created_ms = op->created_ms;
    ngx_http_siteflow_qstr(&p->job, &op->payload);

    p->version = op->version;
    p->attempts = op->attempts;
    p->next_ms = op->next_ms;
    p->maybe_sent = op->maybe_sent;
    ngx_http_siteflow_qstr(&p->error, &op->error);
    ngx_http_siteflow_qstr(&p->results, &op->results);

    p->postback = op->postback;
    p->rank = op->idx.rank;
    p->fingerprint = op->idx.fingerprint;
    ngx_http_siteflow_qstr(&p->source_id, &op->idx.source_id);
    ngx_http_siteflow_qstr(&p->siteflow_id, &op->idx.siteflow_id);
    p->updated_ms = op->idx.updated_ms;
    p->sent_ms = op->idx.sent_ms;
}


static void
ngx_http_siteflow_flush_handler(ngx_event_t *ev)
{
    if (ev == &ngx_http_siteflow_journal.hold_event) {
        /* re-armed until the batch in flight is done */
        if (ngx_http_siteflow_journal.flying) {
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

    if (ngx_http_siteflow_journal.flying != NULL) {
        return;     /* the next batch goes when this one is durable */
    }

    b = ngx_http_siteflow_journal.collecting;

    if (b == NULL || b->ops.nelts == 0) {
        return;
    }

    ngx_http_siteflow_journal.collecting = NULL;
    ngx_http_siteflow_journal.flying = b;

    if (ngx_http_siteflow_write(b) != NGX_OK) {
        ngx_http_siteflow_batch_end(b);
        return;
    }

    if (!ngx_http_siteflow_journal.hold_event.timer_set) {
        ngx_add_timer(&ngx_http_siteflow_journal.hold_event, 1000);
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

    if (ngx_http_siteflow_journal.master
        && getppid() != ngx_http_siteflow_journal.master)
    {
        /* killed with its master, as far as the spool is concerned */
        b->err = NGX_ESRCH;
        b->failed = "write() by a worker whose master process is gone";
        return NGX_ERROR;
    }

    ngx_shmtx_lock(qc->write_lock);

    if (ngx_http_siteflow_journal.seg_fd == NGX_INVALID_FILE
        || ngx_http_siteflow_journal.seg_seq != sh->segment)
    {
        if (ngx_http_siteflow_journal.seg_fd != NGX_INVALID_FILE) {
            (void) ngx_close_file(ngx_http_siteflow_journal.seg_fd);
            ngx_http_siteflow_journal.seg_fd = NGX_INVALID_FILE;
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

        ngx_http_siteflow_journal.seg_fd = fd;
        ngx_http_siteflow_journal.seg_seq = sh->segment;
        ngx_http_siteflow_journal.seg_synced = 0;
    }

    n = write(ngx_http_siteflow_journal.seg_fd, b->buf, b->len);

    if (n != (ssize_t) b->len) {
        b->err = (n == -1) ? ngx_errno : NGX_ENOSPC;
        b->failed = "write()";

        /*
         * half a batch is never left behind for others to append to: under
         * the write lock nobody else appends, so it starts n bytes before
         * the end
         */

        if (n > 0) {
            off = lseek(ngx_http_siteflow_journal.seg_fd, 0, SEEK_END);

            if (off < n
                || ftruncate(ngx_http_siteflow_journal.seg_fd, off - n) == -1)
            {
                ngx_log_error(NGX_LOG_ALERT, ngx_cycle->log, ngx_errno,
                              "siteflow: ftruncate() of the spool segment "
                              "failed; the torn record is skipped on start");
                b->torn = 1;
            }
        }

        ngx_shmtx_unlock(qc->write_lock);
        return NGX_ERROR;
    }

    b->seq = ngx_http_siteflow_journal.seg_seq;
    (void) ngx_atomic_fetch_add(&sh->inflight[b->seq & 1], 1);

    ngx_shmtx_unlock(qc->write_lock);

    /* the thread uses its own descriptors: rotation may close ours */

    b->fd = dup(ngx_http_siteflow_journal.seg_fd);

    if (b->fd == NGX_INVALID_FILE) {
        b->err = ngx_errno;
        b->failed = "dup()";
        (void) ngx_atomic_fetch_add(&sh->inflight[b->seq & 1], -1);
        return NGX_ERROR;
    }

    if (!ngx_http_siteflow_journal.seg_synced) {
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

        if (b->err == 0 && b->seq == ngx_http_siteflow_journal.seg_seq) {
            ngx_http_siteflow_journal.seg_synced = 1;
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

            /* a postback refused: the index forgets it was taken */

            if (op[i].type == SF_QREC_INDEX && op[i].postback) {
                ngx_http_siteflow_idx_release(sh, &op[i]);
            }
        }

        ngx_shmtx_unlock(&qc->shpool->mutex);

        /*
         * a full disk refuses every batch: one line per 10 seconds, with
         * how many were refused in between
         */

        if (ngx_time() - ngx_http_siteflow_journal.refused_time >= 10) {
            ngx_log_error(NGX_LOG_CRIT, ngx_cycle->log, b->err,
                          "siteflow: %s failed in the spool \"%V\": %ui "
                          "records were not made durable and are refused "
                          "(and %ui earlier batches since the last such "
                          "message)",
                          b->failed, &qc->path->name, b->ops.nelts,
                          ngx_http_siteflow_journal.refused);

            ngx_http_siteflow_journal.refused_time = ngx_time();
            ngx_http_siteflow_journal.refused = 0;

        } else {
            ngx_http_siteflow_journal.refused++;
        }

        ngx_http_siteflow_journal.refusing = 1;

        /*
         * the next batch starts a new segment only if this one may have
         * left part of itself in the segment (a cut write that could not
         * be truncated, a failed sync); a write that wrote nothing, or
         * was cut back, leaves the segment as it was: a full disk does
         * not get a new empty segment per refused batch
         */

        if ((b->torn || b->fd != NGX_INVALID_FILE)
            && (b->seq == 0 || b->seq == ngx_http_siteflow_journal.seg_seq))
        {
            ngx_shmtx_lock(qc->write_lock);

            if (sh->segment == ngx_http_siteflow_journal.seg_seq
                && ngx_http_siteflow_journal.seg_fd != NGX_INVALID_FILE)
            {
                sh->segment++;
            }

            ngx_shmtx_unlock(qc->write_lock);
        }

    } else {
        rc = NGX_OK;

        if (ngx_http_siteflow_journal.refusing) {
            ngx_log_error(NGX_LOG_NOTICE, ngx_cycle->log, 0,
                          "siteflow: the spool \"%V\" takes records again "
                          "(%ui batches refused since the last message)",
                          &qc->path->name, ngx_http_siteflow_journal.refused);
            ngx_http_siteflow_journal.refusing = 0;
            ngx_http_siteflow_journal.refused = 0;
            ngx_http_siteflow_journal.refused_time = 0;
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

    if (ngx_http_siteflow_journal.flying == b) {
        ngx_http_siteflow_journal.flying = NULL;
    }

    if (ngx_http_siteflow_journal.exiting) {
        /*
         * applied to the zone (a reload keeps it), but nobody waiting is
         * called: the consumer drops its runs, and a hook or a postback
         * not yet answered is not answered (its sender sends it again,
         * and it is found already queued)
         */
        ngx_destroy_pool(b->pool);
        return;
    }

    for (i = 0; i < b->ops.nelts; i++) {
        if (op[i].handler) {
            op[i].handler(op[i].data, rc, op[i].id);
        }
    }

    ngx_destroy_pool(b->pool);

    if (ngx_http_siteflow_journal.applied) {
        ngx_http_siteflow_journal.applied();
    }

    ngx_http_siteflow_flush();
}
