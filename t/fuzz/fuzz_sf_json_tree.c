
/*
 * Copyright (C) ngx_siteflow_module authors
 */


/*
 * libFuzzer harness for sf_json_tree.c, the delivery path's way between
 * JSON text and jansson trees.
 *
 * Checks: sf_json_tree_load() never gives a tree jansson would not give:
 * when it gives one, json_loadb(input, 0) gives an equal one, and both
 * dump to the same bytes; sf_json_tree_dump() of jansson's tree of the
 * input is byte for byte json_dumps(tree, JSON_COMPACT) whenever it says
 * yes; and it says yes for every tree jansson reads from text of at most
 * SF_JSON_TREE_DEPTH levels (jansson only reads valid UTF-8), so the fast
 * path is the path taken.  The same for the tree with its reals.
 */


#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "sf_json.h"
#include "sf_json_tree.h"


int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);


int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char    *a_text, *b_text;
    size_t   len;
    json_t  *a, *b;

    a = sf_json_tree_load((const char *) data, size);
    b = json_loadb((const char *) data, size, 0, NULL);

    if (a != NULL) {
        if (b == NULL || !json_equal(a, b)) {
            abort();
        }

        a_text = json_dumps(a, JSON_COMPACT);
        b_text = json_dumps(b, JSON_COMPACT);

        if (a_text == NULL || b_text == NULL || strcmp(a_text, b_text) != 0) {
            abort();
        }

        free(a_text);
        free(b_text);
        json_decref(a);
    }

    if (b != NULL) {
        a_text = sf_json_tree_dump(b, &len);
        b_text = json_dumps(b, JSON_COMPACT);

        if (b_text == NULL) {
            abort();
        }

        if (a_text == NULL) {
            /* unsure only when deeper than it goes */
            if (!sf_json_too_deep(data, size, SF_JSON_TREE_DEPTH, NULL,
                                  NULL))
            {
                abort();
            }

        } else if (len != strlen(b_text) || strcmp(a_text, b_text) != 0) {
            abort();
        }

        free(a_text);
        free(b_text);

        /* and the loader reads what jansson wrote, unless too deep */

        if (!sf_json_too_deep(data, size, SF_JSON_TREE_DEPTH, NULL, NULL)) {
            b_text = json_dumps(b, JSON_COMPACT);
            a = sf_json_tree_load(b_text, strlen(b_text));

            if (a == NULL && strstr(b_text, "\\u0000") == NULL) {
                /* long integers and reals that strtod() cannot hold */
                json_t  *c = json_loadb(b_text, strlen(b_text), 0, NULL);

                if (c == NULL) {
                    abort();
                }

                json_decref(c);
            }

            if (a != NULL && !json_equal(a, b)) {
                abort();
            }

            json_decref(a);
            free(b_text);
        }

        json_decref(b);
    }

    return 0;
}
