
/*
 * Copyright (C) ngx_siteflow_module authors
 */


#ifndef _SF_JSON_TREE_H_INCLUDED_
#define _SF_JSON_TREE_H_INCLUDED_


#include <stddef.h>

#include <jansson.h>


/*
 * A faster way between JSON text and jansson trees for the delivery path
 * (a job's text read at every claim, the SiteFlow order written at every
 * delivery).  jansson reads a byte at a time through its stream layer and
 * writes a token at a time through a callback; these do the same work in
 * one pass over the bytes, building and reading the same jansson values.
 *
 * sf_json_tree_load(): the tree json_loadb(p, len, 0, ...) would return
 * (same values, same key order, the last of duplicate keys), or NULL when
 * the text is not valid JSON or when unsure (deeper than 64 levels, an
 * integer of more than 18 digits, a real strtod() cannot hold, \u0000,
 * out of memory): the caller then asks jansson, which gives the tree or
 * the error.  The values are jansson's own (jansson's allocator).
 *
 * sf_json_tree_dump(): the bytes json_dumps(v, JSON_COMPACT) would return,
 * malloc()ed and NUL-terminated (free() them), *len without the NUL; NULL
 * when unsure (deeper than 64 levels, a string or key that is not UTF-8,
 * out of memory): the caller then asks jansson.  Reals are printed by
 * jansson itself, one by one.
 *
 * sf_json_load() and sf_json_dump() are these with jansson behind them.
 */

#define SF_JSON_TREE_DEPTH  64

json_t *sf_json_tree_load(const char *p, size_t len);
char *sf_json_tree_dump(const json_t *v, size_t *len);

json_t *sf_json_load(const char *p, size_t len, json_error_t *err);
char *sf_json_dump(const json_t *v);


#endif /* _SF_JSON_TREE_H_INCLUDED_ */
