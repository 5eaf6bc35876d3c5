
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
 * The job table in shared memory: jobs by id, the per-order chains,
 * the due and waiting trees, and the sent-orders index with its
 * retention.  Records are applied here once durable (the shpool mutex
 * is held).
 */


typedef ngx_int_t (*ngx_http_siteflow_tie_pt)(ngx_rbtree_node_t *a,
    ngx_rbtree_node_t *b);

static void ngx_http_siteflow_job_state(ngx_http_siteflow_queue_sh_t *sh,
    ngx_slab_pool_t *shpool, ngx_http_siteflow_job_t *job,
    ngx_http_siteflow_op_t *op);
static void ngx_http_siteflow_job_free(ngx_http_siteflow_queue_sh_t *sh,
    ngx_slab_pool_t *shpool, ngx_http_siteflow_job_t *job);
static void ngx_http_siteflow_chain_add(ngx_http_siteflow_queue_sh_t *sh,
    ngx_slab_pool_t *shpool, ngx_http_siteflow_job_t *job);
static void ngx_http_siteflow_chain_remove(ngx_http_siteflow_queue_sh_t *sh,
    ngx_slab_pool_t *shpool, ngx_http_siteflow_job_t *job);
static void ngx_http_siteflow_due_remove(ngx_http_siteflow_queue_sh_t *sh,
    ngx_http_siteflow_job_t *job);
static ngx_int_t ngx_http_siteflow_shm_str(ngx_slab_pool_t *shpool,
    ngx_str_t *dst, ngx_str_t *src);
static void ngx_http_siteflow_rbtree_insert(ngx_rbtree_node_t *temp,
    ngx_rbtree_node_t *node, ngx_rbtree_node_t *sentinel,
    ngx_http_siteflow_tie_pt tie);
static ngx_int_t ngx_http_siteflow_htab_init(ngx_slab_pool_t *shpool,
    ngx_http_siteflow_htab_t *tab, ngx_uint_t n);
static ngx_http_siteflow_hnode_t *ngx_http_siteflow_htab_find(
    ngx_http_siteflow_htab_t *tab, ngx_str_t *key, uint32_t hash,
    size_t delta);
static void ngx_http_siteflow_htab_insert(ngx_http_siteflow_htab_t *tab,
    ngx_http_siteflow_hnode_t *node);
static void ngx_http_siteflow_htab_delete(ngx_http_siteflow_htab_t *tab,
    ngx_http_siteflow_hnode_t *node);
static ngx_int_t ngx_http_siteflow_tie_id(ngx_rbtree_node_t *a,
    ngx_rbtree_node_t *b);
static void ngx_http_siteflow_rbtree_insert_id(ngx_rbtree_node_t *temp,
    ngx_rbtree_node_t *node, ngx_rbtree_node_t *sentinel);


static const char  *ngx_http_siteflow_kinds[] = {
    "", "order", "cancel", "update"
};


ngx_int_t
ngx_http_siteflow_table_init(ngx_http_siteflow_queue_sh_t *sh,
    ngx_slab_pool_t *shpool)
{
    size_t      size;
    ngx_uint_t  n;

    ngx_rbtree_init(&sh->jobs, &sh->jobs_sentinel,
                    ngx_rbtree_insert_value);
    ngx_rbtree_init(&sh->due, &sh->due_sentinel,
                    ngx_rbtree_insert_value);
    ngx_rbtree_init(&sh->waiting, &sh->waiting_sentinel,
                    ngx_http_siteflow_rbtree_insert_id);

    ngx_queue_init(&sh->all);
    ngx_queue_init(&sh->finished);
    ngx_queue_init(&sh->running);
    ngx_queue_init(&sh->index);

    /*
     * the index: a bucket per kilobyte of the zone, a power of two (an
     * entry with its strings takes about 250 bytes: lists of 4 or less
     * when full); the chains and the sources half as many; 1.6% of the
     * zone in all, 1024 index buckets at the 1m minimum
     */

    size = (size_t) (shpool->end - (u_char *) shpool);

    for (n = 512; n < (1u << 22) && n * 1024 < size; n <<= 1) {
        /* void */
    }

    if (ngx_http_siteflow_htab_init(shpool, &sh->orders, n / 2) != NGX_OK
        || ngx_http_siteflow_htab_init(shpool, &sh->by_order, n) != NGX_OK
        || ngx_http_siteflow_htab_init(shpool, &sh->by_source, n / 2)
           != NGX_OK)
    {
        return NGX_ERROR;
    }

    return NGX_OK;
}


/* records applied (the shpool mutex is held) */

void
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


ngx_http_siteflow_job_t *
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


ngx_http_siteflow_job_t *
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


void
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

        order->node.hash = hash;
        order->key.len = key.len;
        order->key.data = (u_char *) order + sizeof(ngx_http_siteflow_order_t);
        ngx_memcpy(order->key.data, key.data, key.len);
        ngx_queue_init(&order->jobs);

        ngx_http_siteflow_htab_insert(&sh->orders, &order->node);
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
        ngx_http_siteflow_htab_delete(&sh->orders, &order->node);
        ngx_slab_free_locked(shpool, order);
        return;
    }

    ngx_http_siteflow_chain_sync(sh, order);
}


/* the head of the chain, and only it, waits in the due or waiting tree */

void
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
 * The string-keyed tables (order chains, the two index tables): a node
 * holds the crc32 of its string, which is an ngx_str_t at "delta" bytes
 * from the node.
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


static ngx_int_t
ngx_http_siteflow_htab_init(ngx_slab_pool_t *shpool,
    ngx_http_siteflow_htab_t *tab, ngx_uint_t n)
{
    tab->buckets = ngx_slab_calloc(shpool,
                                   n * sizeof(ngx_http_siteflow_hnode_t *));
    if (tab->buckets == NULL) {
        return NGX_ERROR;
    }

    tab->mask = n - 1;

    return NGX_OK;
}


static ngx_http_siteflow_hnode_t *
ngx_http_siteflow_htab_find(ngx_http_siteflow_htab_t *tab, ngx_str_t *key,
    uint32_t hash, size_t delta)
{
    ngx_str_t                  *k;
    ngx_http_siteflow_hnode_t  *node;

    for (node = tab->buckets[hash & tab->mask]; node; node = node->next) {

        if (node->hash != hash) {
            continue;
        }

        k = ngx_http_siteflow_node_key(node, delta);

        if (k->len == key->len
            && ngx_memcmp(k->data, key->data, key->len) == 0)
        {
            return node;
        }
    }

    return NULL;
}


static void
ngx_http_siteflow_htab_insert(ngx_http_siteflow_htab_t *tab,
    ngx_http_siteflow_hnode_t *node)
{
    ngx_http_siteflow_hnode_t  **b;

    b = &tab->buckets[node->hash & tab->mask];

    node->next = *b;
    *b = node;
}


static void
ngx_http_siteflow_htab_delete(ngx_http_siteflow_htab_t *tab,
    ngx_http_siteflow_hnode_t *node)
{
    ngx_http_siteflow_hnode_t  **p;

    for (p = &tab->buckets[node->hash & tab->mask]; *p; p = &(*p)->next) {

        if (*p == node) {
            *p = node->next;
            node->next = NULL;
            return;
        }
    }
}


ngx_http_siteflow_order_t *
ngx_http_siteflow_order_find(ngx_http_siteflow_queue_sh_t *sh, ngx_str_t *key,
    uint32_t hash)
{
    ngx_http_siteflow_hnode_t  *node;

    node = ngx_http_siteflow_htab_find(&sh->orders, key, hash,
                                       NGX_HTTP_SITEFLOW_ORDER_KEY);

    return node ? ngx_http_siteflow_hnode_data(node,
                                               ngx_http_siteflow_order_t,
                                               node)
                : NULL;
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
ngx_http_siteflow_tie_id(ngx_rbtree_node_t *a, ngx_rbtree_node_t *b)
{
    ngx_http_siteflow_job_t  *n, *t;

    n = ngx_rbtree_data(a, ngx_http_siteflow_job_t, due);
    t = ngx_rbtree_data(b, ngx_http_siteflow_job_t, due);

    return (n->id < t->id) ? -1 : 1;
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

ngx_int_t
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


ngx_http_siteflow_idx_t *
ngx_http_siteflow_idx_find(ngx_http_siteflow_htab_t *tab, ngx_str_t *key,
    ngx_uint_t by_source)
{
    uint32_t                    hash;
    ngx_http_siteflow_hnode_t  *node;

    hash = ngx_crc32_short(key->data, key->len);

    if (by_source) {
        node = ngx_http_siteflow_htab_find(tab, key, hash,
                                           NGX_HTTP_SITEFLOW_IDX_SOURCE_KEY);
        return node ? ngx_http_siteflow_hnode_data(node,
                                                   ngx_http_siteflow_idx_t,
                                                   by_source)
                    : NULL;
    }

    node = ngx_http_siteflow_htab_find(tab, key, hash,
                                       NGX_HTTP_SITEFLOW_IDX_ORDER_KEY);

    return node ? ngx_http_siteflow_hnode_data(node, ngx_http_siteflow_idx_t,
                                               by_order)
                : NULL;
}


void
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

        e->by_order.hash = ngx_crc32_short(key.data, key.len);
        ngx_http_siteflow_htab_insert(&sh->by_order, &e->by_order);
        ngx_queue_insert_tail(&sh->index, &e->all);
        sh->nindex++;

        if (skey.len) {
            e->source_key.data = p;
            e->source_key.len = skey.len;
            p = ngx_cpymem(p, skey.data, skey.len);

            e->by_source.hash = ngx_crc32_short(skey.data, skey.len);
            ngx_http_siteflow_htab_insert(&sh->by_source, &e->by_source);
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

        e->by_source.hash = ngx_crc32_short(skey.data, skey.len);
        ngx_http_siteflow_htab_insert(&sh->by_source, &e->by_source);
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


/*
 * A postback's part of the index is judged and taken at once, before its
 * record is durable (ngx_http_siteflow_queue_reserve()): the next
 * postback of the order, even one that comes while the first is being
 * written, is judged by it.  The reservation ends when the record is
 * applied (its version is then the entry's own), when the batch fails
 * (ngx_http_siteflow_idx_release()), or when the process that took it
 * died or took longer than NGX_HTTP_SITEFLOW_PB_HOLD_MS: then the entry
 * is what the disk says again.
 */

ngx_uint_t
ngx_http_siteflow_idx_reserved(ngx_http_siteflow_idx_t *e, uint64_t now)
{
    if (e->pb_version <= e->version_postback
        || now - e->pb_ms >= NGX_HTTP_SITEFLOW_PB_HOLD_MS)
    {
        return 0;
    }

    if (e->pb_pid != ngx_pid && kill(e->pb_pid, 0) == -1
        && ngx_errno == NGX_ESRCH)
    {
        return 0;
    }

    return 1;
}


void
ngx_http_siteflow_idx_release(ngx_http_siteflow_queue_sh_t *sh,
    ngx_http_siteflow_op_t *op)
{
    ngx_str_t                 key;
    ngx_pool_t               *pool;
    ngx_http_siteflow_idx_t  *e;

    pool = ngx_create_pool(512, ngx_cycle->log);
    if (pool == NULL) {
        return;
    }

    if (ngx_http_siteflow_key(pool, &op->idx.storefront, &op->idx.order_id,
                              &key)
        == NGX_OK)
    {
        e = ngx_http_siteflow_idx_find(&sh->by_order, &key, 0);

        /* ended, its number kept (queue_reserve() never reuses it) */

        if (e && e->pb_version == op->version) {
            e->pb_ms = 0;
        }
    }

    ngx_destroy_pool(pool);
}


uint32_t
ngx_http_siteflow_idx_version(ngx_http_siteflow_index_t *idx)
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
            v = e->version_order + 1;
        }

        ngx_shmtx_unlock(&qc->shpool->mutex);
    }

    ngx_destroy_pool(pool);

    return v;
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


ngx_int_t
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


ngx_int_t
ngx_http_siteflow_index_prune(ngx_http_siteflow_queue_conf_t *qc,
    ngx_queue_t **cursor, ngx_http_siteflow_op_t *op)
{
    u_char                          *p;
    uint64_t                         now, last, id, max;
    ngx_uint_t                       n, other, pruned;
    ngx_queue_t                     *q, *next;
    ngx_http_siteflow_idx_t         *e;
    ngx_http_siteflow_queue_sh_t    *sh;

    sh = qc->sh;

    if (qc->retention == 0) {
        return NGX_DECLINED;
    }

    if (sh->snapshot_pid) {
        if (sh->snapshot_pid == ngx_pid
            || kill(sh->snapshot_pid, 0) == 0 || ngx_errno != NGX_ESRCH)
        {
            return NGX_DECLINED;
        }

        sh->snapshot_pid = 0;
    }

    now = ngx_http_siteflow_now_ms();

    if (now < qc->retention) {
        return NGX_DECLINED;
    }

    max = sh->pruned_max;
    other = sh->pruned_other;
    pruned = 0;

    ngx_shmtx_lock(&qc->shpool->mutex);

    q = *cursor;

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

        ngx_http_siteflow_htab_delete(&sh->by_order, &e->by_order);

        if (e->has_source) {
            ngx_http_siteflow_htab_delete(&sh->by_source, &e->by_source);

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

    *cursor = q;

    ngx_shmtx_unlock(&qc->shpool->mutex);

    if (pruned == 0 || (max == sh->pruned_max && other == sh->pruned_other)) {
        return NGX_DECLINED;
    }

    ngx_log_debug3(NGX_LOG_DEBUG_HTTP, ngx_cycle->log, 0,
                   "siteflow: the index forgot %ui orders, up to %uL (%ui)",
                   pruned, max, other);

    /* the horizon, in the journal (and so in the next snapshot) */

    ngx_memzero(op, sizeof(ngx_http_siteflow_op_t));
    op->type = SF_QREC_INDEX;
    ngx_str_set(&op->idx.storefront, "");
    ngx_str_set(&op->idx.order_id, "");
    ngx_str_set(&op->idx.source_id, "");
    ngx_str_set(&op->idx.siteflow_id, "");
    op->idx.state = NGX_HTTP_SITEFLOW_IDX_SENT;
    op->idx.sent_ms = max;          /* "t" */
    op->idx.updated_ms = other;     /* "u" */
    op->version = ngx_http_siteflow_idx_version(&op->idx);

    /* in the table at once (so the next snapshot has it) */

    ngx_shmtx_lock(&qc->shpool->mutex);
    ngx_http_siteflow_idx_apply(sh, qc->shpool, op);
    ngx_shmtx_unlock(&qc->shpool->mutex);

    return NGX_OK;
}


/* the job with the smallest id above "id", or NULL */

ngx_http_siteflow_job_t *
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
