
/*
 * Copyright (C) ngx_siteflow_module authors
 */


#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "sf_hook_id.h"


static const char  *sf_hook_id_fields[] = { "id", "order_id" };


json_t *
sf_hook_id(json_t *root, const char **prefix, const char **field)
{
    json_t    *o, *v;
    unsigned   i, k;

    static const char  *objects[] = { "order", "data" };
    static const char  *prefixes[] = { "order.", "data." };

    for (k = 0; k < 2; k++) {
        o = json_object_get(root, objects[k]);

        if (!json_is_object(o)) {
            continue;
        }

        for (i = 0; i < 2; i++) {
            v = json_object_get(o, sf_hook_id_fields[i]);

            if (v != NULL && !json_is_null(v)) {
                *prefix = prefixes[k];
                *field = sf_hook_id_fields[i];
                return v;
            }
        }
    }

    *prefix = "";

    for (i = 0; i < 2; i++) {
        v = json_object_get(root, sf_hook_id_fields[i]);

        if (v != NULL && !json_is_null(v)) {
            *field = sf_hook_id_fields[i];
            return v;
        }
    }

    *field = "id";

    return NULL;
}


json_t *
sf_hook_id_text(const sf_json_member_t *rm, int nr,
    const sf_json_member_t *om, int no, size_t max, const char **prefix,
    const char **field)
{
    int                      i, n, nd;
    json_t                  *v;
    unsigned                 f;
    const char              *found;
    sf_json_member_t        *dm;
    const sf_json_member_t  *m, *members;

    dm = NULL;
    v = NULL;

    for (i = 0; i < 3; i++) {

        if (i == 0) {
            /* the chosen order object, unless it is the body itself */
            if ((*prefix)[0] == '\0') {
                continue;
            }

            members = om;
            n = no;
            found = *prefix;

        } else if (i == 1) {
            /* a "data" object beside an "order" object */
            if (strcmp(*prefix, "order.") != 0) {
                continue;
            }

            for (m = rm; m < rm + nr; m++) {
                if (m->key_len == 4 && memcmp(m->key, "data", 4) == 0
                    && m->value[0] == '{')
                {
                    break;
                }
            }

            if (m == rm + nr) {
                continue;
            }

            dm = malloc(max * sizeof(sf_json_member_t));
            if (dm == NULL) {
                *field = NULL;
                return NULL;
            }

            nd = sf_json_members(m->value, m->value_len, dm, max);

            if (nd < 0 || (size_t) nd > max) {
                /* more than is read here: jansson's tree decides */
                free(dm);
                *field = NULL;
                return NULL;
            }

            members = dm;
            n = nd;
            found = "data.";

        } else {
            members = rm;
            n = nr;
            found = "";
        }

        for (f = 0; f < 2; f++) {
            v = sf_hook_member(members, n, sf_hook_id_fields[f]);

            if (v != NULL && !json_is_null(v)) {
                *prefix = found;
                *field = sf_hook_id_fields[f];
                free(dm);
                return v;
            }

            json_decref(v);
            v = NULL;
        }
    }

    free(dm);

    *prefix = "";
    *field = "id";

    return NULL;
}


json_t *
sf_hook_member(const sf_json_member_t *m, int n, const char *name)
{
    size_t  len;

    len = strlen(name);

    for ( /* void */ ; n > 0; m++, n--) {
        if (m->key_len == len && memcmp(m->key, name, len) == 0) {
            return json_loadb((const char *) m->value, m->value_len,
                              JSON_DECODE_ANY, NULL);
        }
    }

    return NULL;
}
