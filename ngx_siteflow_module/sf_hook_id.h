
/*
 * Copyright (C) ngx_siteflow_module authors
 */


#ifndef _SF_HOOK_ID_H_INCLUDED_
#define _SF_HOOK_ID_H_INCLUDED_


#include <jansson.h>

#include "sf_json.h"


/*
 * Where a PrintNow hook's body holds the order id (docs/printnow.md): the
 * first of order.id, order.order_id, data.id, data.order_id, id and
 * order_id that is there and not null, "order" and "data" counting only
 * when they are objects.  *prefix ("order.", "data." or "") and *field
 * ("id" or "order_id") name it for a refusal; with none, NULL, "" and
 * "id".  Pure C.
 *
 * sf_hook_id(): on jansson's tree of the body; the value is borrowed.
 *
 * sf_hook_id_text(): on the members of the body's text (sf_json_members()),
 * rm those of the body and om those of the order object the caller chose,
 * *prefix saying which on input ("order.", "data.", or "" when om are the
 * body's).  The value is read by jansson and is the caller's to decref.
 * When the answer needs more members than max, *field is NULL and so is
 * the result: the caller asks sf_hook_id() on jansson's tree instead.
 *
 * sf_hook_member(): the value of the member name, read by jansson, or
 * NULL if there is none.
 */

json_t *sf_hook_id(json_t *root, const char **prefix, const char **field);
json_t *sf_hook_id_text(const sf_json_member_t *rm, int nr,
    const sf_json_member_t *om, int no, size_t max, const char **prefix,
    const char **field);
json_t *sf_hook_member(const sf_json_member_t *m, int n, const char *name);


#endif /* _SF_HOOK_ID_H_INCLUDED_ */
