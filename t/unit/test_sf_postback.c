
/*
 * Copyright (C) ngx_siteflow_module authors
 */


/*
 * Unit tests for sf_postback.c: SiteFlow trigger postbacks.
 *
 * Fixtures in t/unit/postback/ (run from t/unit, or set SF_PB_FIXTURES):
 *
 *   template-<event>.json   what conf-examples/siteflow-postback-templates/
 *                           <event>.hbs renders for sample data (rendered
 *                           with Handlebars 4.7; every template must have
 *                           one, which test_fixture_coverage checks)
 *   official-printready.json        SiteFlow's own printready example
 *   documented-submission-error*    SiteFlow's documented submission-error
 *                                   template rendered: one error; two
 *                                   errors (no comma: invalid JSON); a
 *                                   JSON-text data.body; an object
 *                                   data.body ("[object Object]")
 *   shipments-dump.json             a template that passes shipments[]
 */


#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <dirent.h>
#include <cmocka.h>

#include <jansson.h>

#include "sf_postback.h"


#define ERR_SIZE        1024
#define MAX_ITEMS       8
#define FIXTURES        "postback"
#define TEMPLATES       "../../conf-examples/siteflow-postback-templates"


typedef struct {
    const char      *file;
    sf_pb_rc_t       rc;
    sf_event_t       event;
    const char      *order;
    const char      *timestamp;
    int              index;
    const char      *tracking;
    const char      *url;
    const char      *carrier;
    const char      *ship_date;
    unsigned         nitems;
    const char      *items[4];
    const char      *message;      /* for errors: err */
} fixture_t;


static const char *fixture_dir(void);
static char *load(const char *name, size_t *len);
static sf_pb_rc_t parse(const char *body, sf_postback_t *pb, char *err);
static sf_pb_rc_t parse_items(const char *body, sf_postback_t *pb,
    char (*items)[SF_PB_ITEM_ID_LEN], unsigned max, char *err);
static void expect_error(const char *body, sf_pb_rc_t rc, const char *err);
static void expect_event(const char *label, sf_event_t ev);
static int clean_text(const char *s);
static char *with_message(const char *message);


#define TS   "2024-05-01T12:00:00.000Z"

static const fixture_t  fixtures[] = {

    { "template-received.json", SF_PB_OK, SF_EV_RECEIVED, "PN-5001", TS,
      -1, "", "", "", "2024-05-01", 0, { NULL }, "" },

    { "template-printready.json", SF_PB_OK, SF_EV_PRINTREADY, "PN-5001", TS,
      -1, "", "", "", "2024-05-01", 0, { NULL }, "" },

    { "template-subbatch_scanned.json", SF_PB_OK, SF_EV_SUBBATCH_SCANNED,
      "PN-5001", TS, -1, "", "", "", "2024-05-01", 0, { NULL }, "" },

    { "template-batch_complete.json", SF_PB_OK, SF_EV_BATCH_COMPLETE,
      "PN-5001", TS, -1, "", "", "", "2024-05-01", 0, { NULL }, "" },

    { "template-complete.json", SF_PB_OK, SF_EV_COMPLETE, "PN-5001", TS,
      -1, "", "", "", "2024-05-01", 0, { NULL }, "" },

    { "template-cancelled.json", SF_PB_OK, SF_EV_CANCELLED, "PN-5001", TS,
      -1, "", "", "", "2024-05-01", 0, { NULL }, "" },

    /* &amp; and &#x3D; undone; item PN-5001-78 is shipment 1's */

    { "template-shipment_shipped.json", SF_PB_OK, SF_EV_SHIPPED, "PN-5001",
      "2024-05-02T09:30:15.123Z", 0, "1Z999AA10123456784",
      "https://www.ups.com/track?loc=en_US&tracknum=1Z999AA10123456784",
      "ups ground", "2024-05-02", 2, { "PN-5001-77", "PN-5001-79" }, "" },

    { "template-error.json", SF_PB_OK, SF_EV_ERROR, "PN-5001", TS,
      -1, "", "", "", "2024-05-01", 0, { NULL },
      "fetch: Impossible de r\xc3\xa9" "cup\xc3\xa9rer \xc2\xab carte.pdf "
      "\xc2\xbb (HTTP 404) - At path orderData.items[0].components[0].path"
      "; Preflight failed: <TrimBox> missing & bleed < 3mm, \"strict\" "
      "mode" },

    { "template-submission_error.json", SF_PB_OK, SF_EV_SUBMISSION_ERROR,
      "PN-5002", TS, -1, "", "", "", "2024-05-01", 0, { NULL },
      "sku: SKU not found - At path orderData.items[0].sku; "
      "destination: Destination 'acme' unknown; Unknown error" },

    { "official-printready.json", SF_PB_OK, SF_EV_PRINTREADY, "PN-5001",
      "2016-03-28T17:55:47.191Z", -1, "", "", "", "2016-03-28", 0,
      { NULL }, "" },

    { "documented-submission-error.json", SF_PB_OK, SF_EV_SUBMISSION_ERROR,
      "PN-5001", TS, -1, "", "", "", "2024-05-01", 0, { NULL },
      "sku: SKU not found - At path orderData.items[0].sku" },

    { "documented-submission-error-json-body.json", SF_PB_OK,
      SF_EV_SUBMISSION_ERROR, "PN-5003", TS, -1, "", "", "", "2024-05-01",
      0, { NULL }, "destination: Destination not found" },

    { "documented-submission-error-2-errors.json", SF_PB_BAD_JSON, 0,
      "", "", -1, "", "", "", "", 0, { NULL },
      "invalid JSON at line 1, column 176: ']' expected near '\"x\"'" },

    { "documented-submission-error-object-body.json", SF_PB_INVALID, 0,
      "", "", -1, "", "", "", "", 0, { NULL },
      "\"OrderId\" is \"[object Object]\": the template renders an object, "
      "not an order id" },

    /* the entry of shipments[] with shipmentIndex 1; integer ids */

    { "shipments-dump.json", SF_PB_OK, SF_EV_SHIPPED, "5001",
      "2024-05-03T18:00:00+02:00", 1, "940011189922339", "", "express",
      "2024-05-04", 2, { "78", "PN-5001-80" }, "" },

    { NULL, 0, 0, NULL, NULL, 0, NULL, NULL, NULL, NULL, 0, { NULL }, NULL }
};


static const char *
fixture_dir(void)
{
    const char  *dir;

    dir = getenv("SF_PB_FIXTURES");

    return (dir != NULL) ? dir : FIXTURES;
}


static char *
load(const char *name, size_t *len)
{
    char   path[512], *buf;
    long   size;
    FILE  *f;

    (void) snprintf(path, sizeof(path), "%s/%s", fixture_dir(), name);

    *len = 0;

    f = fopen(path, "rb");
    if (f == NULL) {
        fail_msg("cannot open fixture %s", path);
        return NULL;
    }

    assert_int_equal(fseek(f, 0, SEEK_END), 0);
    size = ftell(f);
    assert_true(size >= 0);
    assert_int_equal(fseek(f, 0, SEEK_SET), 0);

    /* an exact-size block without a NUL, as nginx hands a body over */

    buf = malloc(size > 0 ? (size_t) size : 1);
    assert_non_null(buf);
    assert_int_equal(fread(buf, 1, (size_t) size, f), (size_t) size);
    fclose(f);

    *len = (size_t) size;

    return buf;
}


static sf_pb_rc_t
parse(const char *body, sf_postback_t *pb, char *err)
{
    return sf_postback_parse(body, strlen(body), pb, NULL, 0, err,
                             ERR_SIZE);
}


static sf_pb_rc_t
parse_items(const char *body, sf_postback_t *pb,
    char (*items)[SF_PB_ITEM_ID_LEN], unsigned max, char *err)
{
    return sf_postback_parse(body, strlen(body), pb, items, max, err,
                             ERR_SIZE);
}


static void
expect_error(const char *body, sf_pb_rc_t rc, const char *err)
{
    char           msg[ERR_SIZE];
    sf_postback_t  pb;

    if (parse(body, &pb, msg) != rc) {
        fail_msg("%s: rc %d, expected %d (%s)", body,
                 (int) parse(body, &pb, msg), (int) rc, msg);
    }

    if (strcmp(msg, err) != 0) {
        fail_msg("%s:\n  got      %s\n  expected %s", body, msg, err);
    }
}


static void
expect_event(const char *label, sf_event_t ev)
{
    char           body[256], msg[ERR_SIZE];
    sf_postback_t  pb;

    (void) snprintf(body, sizeof(body),
                    "{\"sourceOrderId\":\"1\",\"event\":\"%s\"}", label);

    if (parse(body, &pb, msg) != SF_PB_OK || pb.event != ev) {
        fail_msg("event \"%s\": %d, expected %d (%s)", label, pb.event, ev,
                 msg);
    }

    assert_string_equal(pb.event_name, sf_postback_event_name(ev));

    /* the same in "status" */

    (void) snprintf(body, sizeof(body),
                    "{\"sourceOrderId\":\"1\",\"status\":\"%s\"}", label);

    assert_int_equal(parse(body, &pb, msg), SF_PB_OK);
    assert_int_equal(pb.event, ev);
}


/* valid UTF-8 without control characters */

static int
clean_text(const char *s)
{
    json_t  *j;
    size_t   i;

    for (i = 0; s[i] != '\0'; i++) {
        if ((unsigned char) s[i] < 0x20 || s[i] == 0x7f) {
            return 0;
        }
    }

    j = json_string(s);
    if (j == NULL) {
        return 0;
    }

    json_decref(j);

    return 1;
}


/* an error postback whose "message" is the given (JSON-escaped) text */

static char *
with_message(const char *message)
{
    char    *body;
    size_t   n;

    n = strlen(message) + 128;
    body = malloc(n);
    assert_non_null(body);

    (void) snprintf(body, n, "{\"sourceOrderId\":\"1\",\"event\":\"error\","
                    "\"message\":\"%s\"}", message);

    return body;
}


static void
test_fixtures(void **state)
{
    char              *body, msg[ERR_SIZE];
    size_t             len;
    unsigned           i;
    sf_pb_rc_t         rc;
    sf_postback_t      pb;
    const fixture_t   *f;
    char               items[MAX_ITEMS][SF_PB_ITEM_ID_LEN];

    (void) state;

    for (f = fixtures; f->file != NULL; f++) {
        body = load(f->file, &len);

        rc = sf_postback_parse(body, len, &pb, items, MAX_ITEMS, msg,
                               sizeof(msg));

        if (rc != f->rc) {
            fail_msg("%s: rc %d, expected %d: %s", f->file, (int) rc,
                     (int) f->rc, msg);
        }

        if (rc != SF_PB_OK) {
            assert_string_equal(msg, f->message);
            free(body);
            continue;
        }

        assert_string_equal(msg, "");
        assert_int_equal(pb.event, f->event);
        assert_string_equal(pb.event_name, sf_postback_event_name(f->event));
        assert_string_equal(pb.source_order_id, f->order);
        assert_string_equal(pb.timestamp, f->timestamp);
        assert_int_equal(pb.shipment_index, f->index);
        assert_string_equal(pb.tracking_number, f->tracking);
        assert_string_equal(pb.tracking_url, f->url);
        assert_string_equal(pb.carrier, f->carrier);
        assert_string_equal(pb.ship_date, f->ship_date);
        assert_int_equal(pb.nitems, f->nitems);
        assert_ptr_equal(pb.items, items);

        for (i = 0; i < f->nitems; i++) {
            assert_string_equal(pb.items[i], f->items[i]);
        }

        assert_string_equal(pb.message, f->message);

        /* the same without an items array: counted, not stored */

        rc = sf_postback_parse(body, len, &pb, NULL, 0, msg, sizeof(msg));
        assert_int_equal(rc, SF_PB_OK);
        assert_int_equal(pb.nitems, f->nitems);
        assert_null(pb.items);

        free(body);
    }
}


/* every template has its rendering, every fixture an expectation */

static void
test_fixture_coverage(void **state)
{
    int               found;
    char              name[300];
    DIR              *d;
    size_t            n;
    struct dirent    *de;
    const fixture_t  *f;

    (void) state;

    d = opendir(TEMPLATES);
    if (d == NULL) {
        skip();
        return;
    }

    while ((de = readdir(d)) != NULL) {
        n = strlen(de->d_name);

        if (n < 5 || strcmp(de->d_name + n - 4, ".hbs") != 0) {
            continue;
        }

        (void) snprintf(name, sizeof(name), "template-%.*s.json",
                        (int) (n - 4), de->d_name);

        found = 0;

        for (f = fixtures; f->file != NULL; f++) {
            found |= (strcmp(f->file, name) == 0);
        }

        if (!found) {
            fail_msg("template %s has no fixture %s", de->d_name, name);
        }
    }

    closedir(d);

    d = opendir(fixture_dir());
    assert_non_null(d);

    while ((de = readdir(d)) != NULL) {
        if (de->d_name[0] == '.') {
            continue;
        }

        found = 0;

        for (f = fixtures; f->file != NULL; f++) {
            found |= (strcmp(f->file, de->d_name) == 0);
        }

        if (!found) {
            fail_msg("fixture %s is not tested", de->d_name);
        }
    }

    closedir(d);
}


static void
test_event_names(void **state)
{
    (void) state;

    expect_event("received", SF_EV_RECEIVED);
    expect_event("Order Received", SF_EV_RECEIVED);
    expect_event("ORDER_RECEIVED", SF_EV_RECEIVED);
    expect_event("dataready", SF_EV_RECEIVED);

    expect_event("printready", SF_EV_PRINTREADY);
    expect_event("Print Ready", SF_EV_PRINTREADY);
    expect_event("Order Print Ready", SF_EV_PRINTREADY);
    expect_event("PrintReady", SF_EV_PRINTREADY);
    expect_event("print_ready", SF_EV_PRINTREADY);

    expect_event("subbatch_scanned", SF_EV_SUBBATCH_SCANNED);
    expect_event("Sub-Batch Scanned", SF_EV_SUBBATCH_SCANNED);
    expect_event("sub_batch_scanned", SF_EV_SUBBATCH_SCANNED);

    expect_event("batch_complete", SF_EV_BATCH_COMPLETE);
    expect_event("Batch Complete", SF_EV_BATCH_COMPLETE);
    expect_event("Sub-Batch Completed", SF_EV_BATCH_COMPLETE);

    expect_event("complete", SF_EV_COMPLETE);
    expect_event("Completed", SF_EV_COMPLETE);
    expect_event("Order Complete", SF_EV_COMPLETE);

    expect_event("shipped", SF_EV_SHIPPED);
    expect_event("shipment_shipped", SF_EV_SHIPPED);
    expect_event("shipment_dispatched", SF_EV_SHIPPED);
    expect_event("Shipment Shipped", SF_EV_SHIPPED);
    expect_event("Shipment Dispatched", SF_EV_SHIPPED);
    expect_event("  SHIPMENT.SHIPPED \\n", SF_EV_SHIPPED);

    expect_event("cancelled", SF_EV_CANCELLED);
    expect_event("canceled", SF_EV_CANCELLED);
    expect_event("Order Cancelled", SF_EV_CANCELLED);

    expect_event("error", SF_EV_ERROR);
    expect_event("Errored", SF_EV_ERROR);
    expect_event("Order Errored", SF_EV_ERROR);
    expect_event("order error", SF_EV_ERROR);

    expect_event("submission_error", SF_EV_SUBMISSION_ERROR);
    expect_event("Order submission error", SF_EV_SUBMISSION_ERROR);
    expect_event("Submission Error", SF_EV_SUBMISSION_ERROR);

    /* SiteFlow events we do not handle, and near misses */

    expect_error("{\"sourceOrderId\":\"1\",\"event\":\"Order Reprinted\"}",
                 SF_PB_UNKNOWN_EVENT, "unknown event \"Order Reprinted\"");
    expect_error("{\"sourceOrderId\":\"1\",\"event\":\"Shipment Updated\"}",
                 SF_PB_UNKNOWN_EVENT, "unknown event \"Shipment Updated\"");
    expect_error("{\"sourceOrderId\":\"1\",\"status\":\"pending\"}",
                 SF_PB_UNKNOWN_EVENT, "unknown event \"pending\"");
    expect_error("{\"sourceOrderId\":\"1\",\"status\":\"shipped!\"}",
                 SF_PB_UNKNOWN_EVENT, "unknown event \"shipped!\"");
    expect_error("{\"sourceOrderId\":\"1\",\"event\":\"xyz\"}",
                 SF_PB_UNKNOWN_EVENT, "unknown event \"xyz\"");
    expect_error("{\"sourceOrderId\":\"1\",\"event\":\"r\\u00e9ceived\"}",
                 SF_PB_UNKNOWN_EVENT,
                 "unknown event \"r\xc3\xa9" "ceived\"");

    assert_string_equal(sf_postback_event_name(SF_EV_RECEIVED), "received");
    assert_string_equal(sf_postback_event_name(SF_EV_PRINTREADY),
                        "printready");
    assert_string_equal(sf_postback_event_name(SF_EV_SUBBATCH_SCANNED),
                        "subbatch_scanned");
    assert_string_equal(sf_postback_event_name(SF_EV_BATCH_COMPLETE),
                        "batch_complete");
    assert_string_equal(sf_postback_event_name(SF_EV_COMPLETE), "complete");
    assert_string_equal(sf_postback_event_name(SF_EV_SHIPPED), "shipped");
    assert_string_equal(sf_postback_event_name(SF_EV_CANCELLED),
                        "cancelled");
    assert_string_equal(sf_postback_event_name(SF_EV_ERROR), "error");
    assert_string_equal(sf_postback_event_name(SF_EV_SUBMISSION_ERROR),
                        "submission_error");
    assert_null(sf_postback_event_name((sf_event_t) 0));
    assert_null(sf_postback_event_name((sf_event_t) 10));
}


static void
test_event_precedence(void **state)
{
    char           msg[ERR_SIZE];
    sf_postback_t  pb;

    (void) state;

    /* "event" wins over "status", even when "event" is unknown */

    assert_int_equal(parse("{\"sourceOrderId\":\"1\",\"event\":\"received\","
                           "\"status\":\"bogus\"}", &pb, msg), SF_PB_OK);
    assert_int_equal(pb.event, SF_EV_RECEIVED);

    expect_error("{\"sourceOrderId\":\"1\",\"event\":\"bogus\","
                 "\"status\":\"received\"}",
                 SF_PB_UNKNOWN_EVENT, "unknown event \"bogus\"");

    /* a blank or null "event" falls back to "status" */

    assert_int_equal(parse("{\"sourceOrderId\":\"1\",\"event\":\" \","
                           "\"status\":\"shipped\"}", &pb, msg), SF_PB_OK);
    assert_int_equal(pb.event, SF_EV_SHIPPED);

    assert_int_equal(parse("{\"sourceOrderId\":\"1\",\"event\":null,"
                           "\"status\":\"error\"}", &pb, msg), SF_PB_OK);
    assert_int_equal(pb.event, SF_EV_ERROR);

    /* unknown event: the order id and timestamp are there for the log */

    assert_int_equal(parse("{\"sourceOrderId\":\"PN-9\",\"event\":\"x\","
                           "\"timestamp\":\"t\"}", &pb, msg),
                     SF_PB_UNKNOWN_EVENT);
    assert_string_equal(pb.source_order_id, "PN-9");
    assert_string_equal(pb.timestamp, "t");
    assert_int_equal(pb.event, 0);
    assert_string_equal(pb.event_name, "");
}


static void
test_errors(void **state)
{
    char           body[600], id[300];
    sf_postback_t  pb;
    char           msg[ERR_SIZE];

    (void) state;

    expect_error("", SF_PB_BAD_JSON, "empty request body");
    expect_error(" \r\n\t ", SF_PB_BAD_JSON, "empty request body");
    expect_error("{\n  \"event\": x\n}", SF_PB_BAD_JSON,
                 "invalid JSON at line 2, column 12: invalid token near 'x'");
    expect_error("[1]", SF_PB_BAD_JSON, "request body must be a JSON object");
    expect_error("null", SF_PB_BAD_JSON,
                 "request body must be a JSON object");
    expect_error("\"received\"", SF_PB_BAD_JSON,
                 "request body must be a JSON object");
    expect_error("{\"event\":\"a\",\"event\":\"b\"}", SF_PB_BAD_JSON,
                 "invalid JSON at line 1, column 20: "
                 "duplicate object key near '\"event\"'");
    expect_error("{\"sourceOrderId\":\"a\\u0000b\"}", SF_PB_BAD_JSON,
                 "invalid JSON at line 1, column 27: "
                 "NUL character (\\u0000) in a string");

    assert_int_equal(sf_postback_parse(NULL, 0, &pb, NULL, 0, msg,
                                       sizeof(msg)),
                     SF_PB_BAD_JSON);
    assert_string_equal(msg, "empty request body");

    /* raw control bytes and invalid UTF-8: the message stays clean */

    assert_int_equal(sf_postback_parse("{\"a\":\0}", 7, &pb, NULL, 0, msg,
                                       sizeof(msg)),
                     SF_PB_BAD_JSON);
    assert_true(clean_text(msg));

    assert_int_equal(parse("{\"a\":\"\xff\xfe\"}", &pb, msg),
                     SF_PB_BAD_JSON);
    assert_true(clean_text(msg));

    assert_int_equal(parse("{\"\xc3\xa9\": \x1b[31m}", &pb, msg),
                     SF_PB_BAD_JSON);
    assert_true(clean_text(msg));

    /* required fields */

    expect_error("{}", SF_PB_INVALID, "\"sourceOrderId\" is required");
    expect_error("{\"event\":\"received\"}", SF_PB_INVALID,
                 "\"sourceOrderId\" is required");
    expect_error("{\"event\":\"received\",\"sourceOrderId\":\" \"}",
                 SF_PB_INVALID, "\"sourceOrderId\" is required");
    expect_error("{\"event\":\"received\",\"sourceOrderId\":null,"
                 "\"OrderId\":\"\"}",
                 SF_PB_INVALID, "\"sourceOrderId\" is required");
    expect_error("{\"sourceOrderId\":\"1\"}", SF_PB_INVALID,
                 "\"event\" or \"status\" is required");
    expect_error("{\"sourceOrderId\":\"1\",\"event\":\"\",\"status\":\"\"}",
                 SF_PB_INVALID, "\"event\" or \"status\" is required");

    /* types */

    expect_error("{\"sourceOrderId\":1.5,\"event\":\"received\"}",
                 SF_PB_INVALID,
                 "\"sourceOrderId\" must be a string or an integer");
    expect_error("{\"sourceOrderId\":[],\"event\":\"received\"}",
                 SF_PB_INVALID,
                 "\"sourceOrderId\" must be a string or an integer");
    expect_error("{\"OrderId\":{},\"event\":\"received\"}", SF_PB_INVALID,
                 "\"OrderId\" must be a string or an integer");
    expect_error("{\"sourceOrderId\":\"1\",\"event\":3}", SF_PB_INVALID,
                 "\"event\" must be a string");
    expect_error("{\"sourceOrderId\":\"1\",\"status\":true}", SF_PB_INVALID,
                 "\"status\" must be a string");
    expect_error("{\"sourceOrderId\":\"1\",\"event\":\"received\","
                 "\"timestamp\":5}",
                 SF_PB_INVALID, "\"timestamp\" must be a string");
    expect_error("{\"sourceOrderId\":\"1\",\"event\":\"received\","
                 "\"TimeStamp\":{}}",
                 SF_PB_INVALID, "\"TimeStamp\" must be a string");
    expect_error("{\"sourceOrderId\":\"a\\nb\",\"event\":\"received\"}",
                 SF_PB_INVALID,
                 "\"sourceOrderId\" must not contain control characters");

    /* lengths: 255 bytes fit, 256 do not */

    memset(id, 'a', 255);
    id[255] = '\0';
    (void) snprintf(body, sizeof(body),
                    "{\"sourceOrderId\":\"%s\",\"event\":\"received\"}", id);
    assert_int_equal(parse(body, &pb, msg), SF_PB_OK);
    assert_string_equal(pb.source_order_id, id);

    id[255] = 'a';
    id[256] = '\0';
    (void) snprintf(body, sizeof(body),
                    "{\"sourceOrderId\":\"%s\",\"event\":\"received\"}", id);
    expect_error(body, SF_PB_INVALID,
                 "\"sourceOrderId\" is too long (at most 255 bytes)");

    /* HTML entities count once decoded: 255 '&' from 255 "&amp;" fit */

    {
        char    *big;
        size_t   i;

        big = malloc(2000);
        assert_non_null(big);
        strcpy(big, "{\"event\":\"received\",\"sourceOrderId\":\"");

        for (i = 0; i < 255; i++) {
            strcat(big, "&amp;");
        }

        strcat(big, "\"}");
        assert_int_equal(parse(big, &pb, msg), SF_PB_OK);
        assert_int_equal(strlen(pb.source_order_id), 255);
        assert_int_equal(pb.source_order_id[254], '&');
        free(big);
    }

    memset(id, 't', 64);
    id[64] = '\0';
    (void) snprintf(body, sizeof(body), "{\"sourceOrderId\":\"1\","
                    "\"event\":\"received\",\"timestamp\":\"%s\"}", id);
    assert_int_equal(parse(body, &pb, msg), SF_PB_OK);
    assert_int_equal(strlen(pb.timestamp), 63);

    /* a long timestamp is only cut, at a character: "é" is 2 bytes */

    {
        char    ts[200], *p;
        size_t  n;

        p = ts;
        memcpy(p, "2026-01-05T10:00:00Z: ", 22);
        p += 22;

        for (n = 0; n < 30; n++) {
            memcpy(p, "\xc3\xa9", 2);
            p += 2;
        }

        *p = '\0';

        (void) snprintf(body, sizeof(body), "{\"sourceOrderId\":\"1\","
                        "\"event\":\"shipped\",\"timestamp\":\"%s\"}", ts);
        assert_int_equal(parse(body, &pb, msg), SF_PB_OK);
        assert_int_equal(strlen(pb.timestamp), 62);
        assert_memory_equal(pb.timestamp, ts, 62);
        assert_string_equal(pb.ship_date, "2026-01-05");
    }

    /* the OrderId of the documented template */

    assert_int_equal(parse("{\"OrderId\":\" PN-1 \",\"status\":"
                           "\"Order submission error\"}", &pb, msg),
                     SF_PB_OK);
    assert_string_equal(pb.source_order_id, "PN-1");
    assert_int_equal(pb.event, SF_EV_SUBMISSION_ERROR);

    assert_int_equal(parse("{\"sourceOrderId\":\"A\",\"OrderId\":\"B\","
                           "\"event\":\"error\"}", &pb, msg),
                     SF_PB_OK);
    assert_string_equal(pb.source_order_id, "A");

    assert_int_equal(parse("{\"OrderId\":\"{&quot;sourceOrderId&quot;:7}\","
                           "\"event\":\"error\"}", &pb, msg),
                     SF_PB_OK);
    assert_string_equal(pb.source_order_id, "7");

    expect_error("{\"OrderId\":\"{&quot;orderData&quot;:{}}\","
                 "\"event\":\"error\"}", SF_PB_INVALID,
                 "\"OrderId\" holds no orderData.sourceOrderId and is not "
                 "an order id");
    expect_error("{\"OrderId\":\"{not json\",\"event\":\"error\"}",
                 SF_PB_INVALID,
                 "\"OrderId\" holds no orderData.sourceOrderId and is not "
                 "an order id");
    expect_error("{\"OrderId\":\"{&quot;orderData&quot;:{&quot;"
                 "sourceOrderId&quot;:[]}}\",\"event\":\"error\"}",
                 SF_PB_INVALID,
                 "\"OrderId.orderData.sourceOrderId\" must be a string or "
                 "an integer");
    expect_error("{\"OrderId\":\"{&quot;orderData&quot;:{&quot;"
                 "sourceOrderId&quot;:&quot; &quot;}}\","
                 "\"event\":\"error\"}",
                 SF_PB_INVALID, "\"sourceOrderId\" is required");
}


static void
test_shipment_fields(void **state)
{
    char           msg[ERR_SIZE];
    sf_postback_t  pb;

#define SHIP(fields)                                                         \
    "{\"sourceOrderId\":\"1\",\"event\":\"shipped\"," fields "}"

    (void) state;

    /* tracking is optional */

    assert_int_equal(parse(SHIP("\"timestamp\":\"x\""), &pb, msg),
                     SF_PB_OK);
    assert_int_equal(pb.event, SF_EV_SHIPPED);
    assert_string_equal(pb.tracking_number, "");
    assert_int_equal(pb.shipment_index, -1);
    assert_string_equal(pb.ship_date, "");

    /* shipmentIndex */

    assert_int_equal(parse(SHIP("\"shipmentIndex\":\" 0012 \""), &pb, msg),
                     SF_PB_OK);
    assert_int_equal(pb.shipment_index, 12);

    assert_int_equal(parse(SHIP("\"shipmentIndex\":3"), &pb, msg),
                     SF_PB_OK);
    assert_int_equal(pb.shipment_index, 3);

    assert_int_equal(parse(SHIP("\"shipmentIndex\":\"\""), &pb, msg),
                     SF_PB_OK);
    assert_int_equal(pb.shipment_index, -1);

    expect_error(SHIP("\"shipmentIndex\":-1"), SF_PB_INVALID,
                 "\"shipmentIndex\" must be a non-negative integer");
    expect_error(SHIP("\"shipmentIndex\":1.0"), SF_PB_INVALID,
                 "\"shipmentIndex\" must be a non-negative integer");
    expect_error(SHIP("\"shipmentIndex\":\"1a\""), SF_PB_INVALID,
                 "\"shipmentIndex\" must be a non-negative integer");
    expect_error(SHIP("\"shipmentIndex\":\"1234567890\""), SF_PB_INVALID,
                 "\"shipmentIndex\" must be a non-negative integer");
    expect_error(SHIP("\"shipmentIndex\":4294967296"), SF_PB_INVALID,
                 "\"shipmentIndex\" must be a non-negative integer");
    expect_error(SHIP("\"shipment\":{\"shipmentIndex\":[]}"), SF_PB_INVALID,
                 "\"shipment.shipmentIndex\" must be a non-negative "
                 "integer");
    expect_error(SHIP("\"shipments\":[{\"shipmentIndex\":\"z\"}]"),
                 SF_PB_INVALID,
                 "\"shipments[0].shipmentIndex\" must be a non-negative "
                 "integer");

    /* containers */

    expect_error(SHIP("\"shipment\":\"[object Object]\""), SF_PB_INVALID,
                 "\"shipment\" must be an object");
    expect_error(SHIP("\"shipments\":{}"), SF_PB_INVALID,
                 "\"shipments\" must be an array");
    expect_error(SHIP("\"shipments\":[5]"), SF_PB_INVALID,
                 "\"shipments[0]\" must be an object");

    /* tracking number */

    assert_int_equal(parse(SHIP("\"trackingNumber\":123456789012"), &pb,
                           msg),
                     SF_PB_OK);
    assert_string_equal(pb.tracking_number, "123456789012");

    expect_error(SHIP("\"trackingNumber\":true"), SF_PB_INVALID,
                 "\"trackingNumber\" must be a string or an integer");
    /* 22 digits unquoted: more than jansson's integers hold */
    expect_error(SHIP("\"trackingNumber\":9400111899223397012345"),
                 SF_PB_BAD_JSON,
                 "invalid JSON at line 1, column 78: too big integer");
    expect_error(SHIP("\"trackingNumber\":9.4e21"), SF_PB_INVALID,
                 "\"trackingNumber\" must be a string or an integer");
    expect_error(SHIP("\"shipment\":{\"trackingNumber\":[]}"), SF_PB_INVALID,
                 "\"shipment.trackingNumber\" must be a string or an "
                 "integer");

    /* tracking URL */

    assert_int_equal(parse(SHIP("\"trackingUrl\":\"HTTPS://x.test/a?b&#x3D;"
                                "1&amp;c&#X3d;2\""), &pb, msg),
                     SF_PB_OK);
    assert_string_equal(pb.tracking_url, "HTTPS://x.test/a?b=1&c=2");

    expect_error(SHIP("\"trackingUrl\":\"ftp://x.test/\""), SF_PB_INVALID,
                 "\"trackingUrl\" must be an http:// or https:// URL");
    expect_error(SHIP("\"trackingUrl\":\"javascript:alert(1)\""),
                 SF_PB_INVALID,
                 "\"trackingUrl\" must be an http:// or https:// URL");
    expect_error(SHIP("\"trackingUrl\":\"https://\""), SF_PB_INVALID,
                 "\"trackingUrl\" must be an http:// or https:// URL");
    expect_error(SHIP("\"shipment\":{\"trackingUrl\":\"http://a b\"}"),
                 SF_PB_INVALID,
                 "\"shipment.trackingUrl\" must not contain spaces");
    expect_error(SHIP("\"trackingUrl\":7"), SF_PB_INVALID,
                 "\"trackingUrl\" must be a string");

    /* carrier */

    assert_int_equal(parse(SHIP("\"carrier\":\" FedEx 2Day \""), &pb, msg),
                     SF_PB_OK);
    assert_string_equal(pb.carrier, "FedEx 2Day");

    assert_int_equal(parse(SHIP("\"carrier\":{\"code\":\"ups\"}"), &pb, msg),
                     SF_PB_OK);
    assert_string_equal(pb.carrier, "ups");

    assert_int_equal(parse(SHIP("\"carrier\":{\"alias\":\"std\","
                                "\"service\":\"ground\"}"), &pb, msg),
                     SF_PB_OK);
    assert_string_equal(pb.carrier, "std");

    assert_int_equal(parse(SHIP("\"carrier\":{\"service\":\"ground\","
                                "\"alias\":\"\"}"), &pb, msg),
                     SF_PB_OK);
    assert_string_equal(pb.carrier, "ground");

    /* an empty carrier object falls through to the next source */

    assert_int_equal(parse(SHIP("\"carrier\":{\"code\":\"\"},"
                                "\"shipment\":{\"carrier\":\"dhl\"}"),
                           &pb, msg),
                     SF_PB_OK);
    assert_string_equal(pb.carrier, "dhl");

    /* the characters that may reach the customer's e-mail */

    assert_int_equal(parse(SHIP("\"carrier\":\"Royal Mail (Tracked 24)\","
                                "\"trackingNumber\":\"AB 1234-5678/9_GB.\""),
                           &pb, msg),
                     SF_PB_OK);
    assert_string_equal(pb.carrier, "Royal Mail (Tracked 24)");
    assert_string_equal(pb.tracking_number, "AB 1234-5678/9_GB.");

    assert_int_equal(parse(SHIP("\"carrier\":{\"code\":\"ups\","
                                "\"service\":\"2nd-day air\"}"), &pb, msg),
                     SF_PB_OK);
    assert_string_equal(pb.carrier, "ups 2nd-day air");

    expect_error(SHIP("\"trackingNumber\":\"1Z<a href=x>\""),
                 SF_PB_INVALID,
                 "\"trackingNumber\" may contain only ASCII letters, "
                 "digits, spaces and -./_");
    expect_error(SHIP("\"shipment\":{\"trackingNumber\":\"1Z&amp;x\"}"),
                 SF_PB_INVALID,
                 "\"shipment.trackingNumber\" may contain only ASCII "
                 "letters, digits, spaces and -./_");
    expect_error(SHIP("\"trackingNumber\":\"a\\\"b\""), SF_PB_INVALID,
                 "\"trackingNumber\" may contain only ASCII letters, "
                 "digits, spaces and -./_");
    expect_error(SHIP("\"trackingNumber\":\"12345678901234567890123456789"
                      "0123456789012345678901234567890123456\""),
                 SF_PB_INVALID,
                 "\"trackingNumber\" is too long (at most 64 characters)");
    assert_int_equal(parse(SHIP("\"trackingNumber\":\"1234567890123456789"
                                "01234567890123456789012345678901234567890"
                                "1234\""), &pb, msg),
                     SF_PB_OK);
    assert_int_equal(strlen(pb.tracking_number), 64);

    expect_error(SHIP("\"carrier\":\"UPS; see http://evil.test\""),
                 SF_PB_INVALID,
                 "\"carrier\" may contain only ASCII letters, digits, "
                 "spaces and -./_()");
    expect_error(SHIP("\"shipments\":[{\"carrier\":{\"alias\":"
                      "\"&lt;b&gt;\"}}]"),
                 SF_PB_INVALID,
                 "\"shipments[0].carrier\" may contain only ASCII letters, "
                 "digits, spaces and -./_()");
    expect_error(SHIP("\"carrier\":\"abcdefghijabcdefghijabcdefghij"
                      "abcdefghijabcdefghijabcdefghijabcde\""),
                 SF_PB_INVALID,
                 "\"carrier\" is too long (at most 64 characters)");

    expect_error(SHIP("\"trackingUrl\":\"https://x.test/\\\"><script>\""),
                 SF_PB_INVALID,
                 "\"trackingUrl\" must contain only URL characters "
                 "(RFC 3986, ASCII)");
    expect_error(SHIP("\"trackingUrl\":\"https://x.test/\xc3\xa9\""),
                 SF_PB_INVALID,
                 "\"trackingUrl\" must contain only URL characters "
                 "(RFC 3986, ASCII)");

    expect_error(SHIP("\"carrier\":5"), SF_PB_INVALID,
                 "\"carrier\" must be a string or an object");
    expect_error(SHIP("\"carrier\":{\"code\":1}"), SF_PB_INVALID,
                 "\"carrier.code\" must be a string");
    expect_error(SHIP("\"shipments\":[{\"carrier\":{\"service\":{}}}]"),
                 SF_PB_INVALID,
                 "\"shipments[0].carrier.service\" must be a string");

    /* ship date */

    assert_int_equal(parse(SHIP("\"shipDate\":\"2024-02-29\""), &pb, msg),
                     SF_PB_OK);
    assert_string_equal(pb.ship_date, "2024-02-29");

    assert_int_equal(parse(SHIP("\"shipDate\":\"2000-02-29T23:59:59-05:00\","
                                "\"timestamp\":\"2001-01-01\""), &pb, msg),
                     SF_PB_OK);
    assert_string_equal(pb.ship_date, "2000-02-29");

    assert_int_equal(parse(SHIP("\"timestamp\":\"2024-12-31 23:00\""), &pb,
                           msg),
                     SF_PB_OK);
    assert_string_equal(pb.ship_date, "2024-12-31");

    assert_int_equal(parse(SHIP("\"timestamp\":\"2024-12-32\""), &pb, msg),
                     SF_PB_OK);
    assert_string_equal(pb.ship_date, "");

    expect_error(SHIP("\"shipDate\":\"2023-02-29\""), SF_PB_INVALID,
                 "\"shipDate\" must be a date (YYYY-MM-DD)");
    expect_error(SHIP("\"shipDate\":\"1900-02-29\""), SF_PB_INVALID,
                 "\"shipDate\" must be a date (YYYY-MM-DD)");
    expect_error(SHIP("\"shipDate\":\"2024-04-31\""), SF_PB_INVALID,
                 "\"shipDate\" must be a date (YYYY-MM-DD)");
    expect_error(SHIP("\"shipDate\":\"2024-13-01\""), SF_PB_INVALID,
                 "\"shipDate\" must be a date (YYYY-MM-DD)");
    expect_error(SHIP("\"shipDate\":\"0000-01-01\""), SF_PB_INVALID,
                 "\"shipDate\" must be a date (YYYY-MM-DD)");
    expect_error(SHIP("\"shipment\":{\"shipDate\":\"05/01/2024\"}"),
                 SF_PB_INVALID,
                 "\"shipment.shipDate\" must be a date (YYYY-MM-DD)");
    expect_error(SHIP("\"shipDate\":\"2024-05-01x\""), SF_PB_INVALID,
                 "\"shipDate\" must be a date (YYYY-MM-DD)");
    expect_error(SHIP("\"shipDate\":20240501"), SF_PB_INVALID,
                 "\"shipDate\" must be a string");

#undef SHIP
}


static void
test_precedence(void **state)
{
    char           msg[ERR_SIZE];
    sf_postback_t  pb;

    (void) state;

    /* key by key: body, then shipment, then shipments[] */

    assert_int_equal(parse("{\"sourceOrderId\":\"1\",\"event\":\"shipped\","
                           "\"trackingNumber\":\"\","
                           "\"carrier\":\"top\","
                           "\"shipment\":{\"trackingNumber\":\"S\","
                           "\"carrier\":\"mid\",\"trackingUrl\":null},"
                           "\"shipments\":[{\"trackingNumber\":\"A\","
                           "\"trackingUrl\":\"https://a.test/\","
                           "\"shipmentIndex\":4}]}", &pb, msg),
                     SF_PB_OK);
    assert_string_equal(pb.tracking_number, "S");
    assert_string_equal(pb.carrier, "top");
    assert_string_equal(pb.tracking_url, "https://a.test/");
    assert_int_equal(pb.shipment_index, 4);

    /* the shipments[] entry with the index given in "shipment" */

    assert_int_equal(parse("{\"sourceOrderId\":\"1\",\"event\":\"shipped\","
                           "\"shipment\":{\"shipmentIndex\":\"2\"},"
                           "\"shipments\":[{\"shipmentIndex\":0,"
                           "\"trackingNumber\":\"A\"},7,"
                           "{\"shipmentIndex\":\"2\",\"trackingNumber\":"
                           "\"C\"}]}", &pb, msg),
                     SF_PB_OK);
    assert_string_equal(pb.tracking_number, "C");
    assert_int_equal(pb.shipment_index, 2);

    /* an index that no entry has: shipments[] is not used */

    assert_int_equal(parse("{\"sourceOrderId\":\"1\",\"event\":\"shipped\","
                           "\"shipmentIndex\":9,"
                           "\"shipments\":[{\"shipmentIndex\":0,"
                           "\"trackingNumber\":\"A\"}]}", &pb, msg),
                     SF_PB_OK);
    assert_string_equal(pb.tracking_number, "");
    assert_int_equal(pb.shipment_index, 9);

    /* an empty shipments[]; the wrong type of an unused entry is fine */

    assert_int_equal(parse("{\"sourceOrderId\":\"1\",\"event\":\"shipped\","
                           "\"shipments\":[]}", &pb, msg),
                     SF_PB_OK);
    assert_int_equal(parse("{\"sourceOrderId\":\"1\",\"event\":\"shipped\","
                           "\"shipments\":[{\"trackingNumber\":\"A\"},"
                           "{\"trackingNumber\":[]}]}", &pb, msg),
                     SF_PB_OK);
    assert_string_equal(pb.tracking_number, "A");
    assert_int_equal(pb.shipment_index, -1);

    /* the first value found is the one checked */

    expect_error("{\"sourceOrderId\":\"1\",\"event\":\"shipped\","
                 "\"shipment\":{\"trackingNumber\":1.5},"
                 "\"shipments\":[{\"trackingNumber\":\"A\"}]}",
                 SF_PB_INVALID,
                 "\"shipment.trackingNumber\" must be a string or an "
                 "integer");
}


static void
test_items(void **state)
{
    int            i;
    char           msg[ERR_SIZE], *big, *p;
    sf_postback_t  pb;
    char           items[MAX_ITEMS][SF_PB_ITEM_ID_LEN];
    char         (*many)[SF_PB_ITEM_ID_LEN];

    (void) state;

    assert_int_equal(parse_items("{\"sourceOrderId\":\"1\",\"event\":"
                                 "\"shipped\",\"items\":[\"a\",7,null,"
                                 "{\"sourceItemId\":\" b \"},{},"
                                 "{\"sourceItemId\":null},"
                                 "{\"sourceItemId\":\"\"},\"\"]}",
                                 &pb, items, MAX_ITEMS, msg),
                     SF_PB_OK);
    assert_int_equal(pb.nitems, 3);
    assert_string_equal(items[0], "a");
    assert_string_equal(items[1], "7");
    assert_string_equal(items[2], "b");

    /* items of other shipments are left out */

    assert_int_equal(parse_items("{\"sourceOrderId\":\"1\",\"event\":"
                                 "\"shipped\",\"shipmentIndex\":1,"
                                 "\"items\":[{\"sourceItemId\":\"a\","
                                 "\"shipmentIndex\":0},{\"sourceItemId\":"
                                 "\"b\",\"shipmentIndex\":\"1\"},"
                                 "{\"sourceItemId\":\"c\","
                                 "\"shipmentIndex\":\"\"}]}",
                                 &pb, items, MAX_ITEMS, msg),
                     SF_PB_OK);
    assert_int_equal(pb.nitems, 2);
    assert_string_equal(items[0], "b");
    assert_string_equal(items[1], "c");

    /* no shipment index known: every item counts */

    assert_int_equal(parse_items("{\"sourceOrderId\":\"1\",\"event\":"
                                 "\"shipped\",\"items\":[{\"sourceItemId\":"
                                 "\"a\",\"shipmentIndex\":0},"
                                 "{\"sourceItemId\":\"b\","
                                 "\"shipmentIndex\":1}]}",
                                 &pb, items, MAX_ITEMS, msg),
                     SF_PB_OK);
    assert_int_equal(pb.nitems, 2);

    /* precedence: the first non-empty items[] */

    assert_int_equal(parse_items("{\"sourceOrderId\":\"1\",\"event\":"
                                 "\"shipped\",\"items\":[],\"shipment\":"
                                 "{\"items\":[\"s\"]},\"shipments\":"
                                 "[{\"items\":[\"x\"]}]}",
                                 &pb, items, MAX_ITEMS, msg),
                     SF_PB_OK);
    assert_int_equal(pb.nitems, 1);
    assert_string_equal(items[0], "s");

    expect_error("{\"sourceOrderId\":\"1\",\"event\":\"shipped\","
                 "\"items\":\"a\"}",
                 SF_PB_INVALID, "\"items\" must be an array");
    expect_error("{\"sourceOrderId\":\"1\",\"event\":\"shipped\","
                 "\"shipment\":{\"items\":{}}}",
                 SF_PB_INVALID, "\"shipment.items\" must be an array");
    expect_error("{\"sourceOrderId\":\"1\",\"event\":\"shipped\","
                 "\"items\":[\"a\",true]}",
                 SF_PB_INVALID,
                 "\"items[1]\" must be an object, a string or an integer");
    expect_error("{\"sourceOrderId\":\"1\",\"event\":\"shipped\","
                 "\"items\":[{\"sourceItemId\":1.5}]}",
                 SF_PB_INVALID,
                 "\"items[0].sourceItemId\" must be a string or an integer");
    expect_error("{\"sourceOrderId\":\"1\",\"event\":\"shipped\","
                 "\"shipments\":[{\"items\":[{\"sourceItemId\":\"a\","
                 "\"shipmentIndex\":-2}]}]}",
                 SF_PB_INVALID,
                 "\"shipments[0].items[0].shipmentIndex\" must be a "
                 "non-negative integer");

    /* an id of 127 bytes fits, 128 does not */

    big = malloc(400);
    assert_non_null(big);

    p = big + sprintf(big, "{\"sourceOrderId\":\"1\",\"event\":\"shipped\","
                      "\"items\":[\"");
    memset(p, 'i', 127);
    strcpy(p + 127, "\"]}");
    assert_int_equal(parse_items(big, &pb, items, MAX_ITEMS, msg), SF_PB_OK);
    assert_int_equal(strlen(items[0]), 127);

    memset(p, 'i', 128);
    strcpy(p + 128, "\"]}");
    expect_error(big, SF_PB_INVALID,
                 "\"items[0]\" is too long (at most 127 bytes)");
    free(big);

    /*
     * the caller's limit, then SF_PB_MAX_ITEMS: the 64 item ids that
     * docs/postbacks.md and siteflow_ship_per_item promise, and not one
     * more (each is a PATCH to PrintNow with siteflow_ship_per_item on)
     */

    assert_int_equal(SF_PB_MAX_ITEMS, 64);

    assert_int_equal(parse_items("{\"sourceOrderId\":\"1\",\"event\":"
                                 "\"shipped\",\"items\":[\"a\",\"\","
                                 "\"b\",\"c\"]}",
                                 &pb, items, 2, msg),
                     SF_PB_INVALID);
    assert_string_equal(msg, "\"items\": too many items (more than 2)");

    assert_int_equal(parse_items("{\"sourceOrderId\":\"1\",\"event\":"
                                 "\"shipped\",\"items\":[\"a\"]}",
                                 &pb, items, 0, msg),
                     SF_PB_INVALID);
    assert_string_equal(msg, "\"items\": too many items (more than 0)");

    big = malloc(32 * (SF_PB_MAX_ITEMS + 10));
    many = malloc(sizeof(*many) * (SF_PB_MAX_ITEMS + 10));
    assert_non_null(big);
    assert_non_null(many);

    for (i = 0; i < 2; i++) {
        unsigned  n, k;

        n = SF_PB_MAX_ITEMS + (unsigned) i;
        p = big + sprintf(big, "{\"sourceOrderId\":\"1\",\"event\":"
                          "\"shipped\",\"items\":[");

        for (k = 0; k < n; k++) {
            p += sprintf(p, "%s{\"sourceItemId\":%u}", k ? "," : "", k);
        }

        strcpy(p, "]}");

        if (i == 0) {
            assert_int_equal(parse_items(big, &pb, many,
                                         SF_PB_MAX_ITEMS + 10, msg),
                             SF_PB_OK);
            assert_int_equal(pb.nitems, SF_PB_MAX_ITEMS);
            assert_string_equal(many[63], "63");

            assert_int_equal(parse_items(big, &pb, NULL, 0, msg), SF_PB_OK);
            assert_int_equal(pb.nitems, SF_PB_MAX_ITEMS);

        } else {
            assert_int_equal(parse_items(big, &pb, many,
                                         SF_PB_MAX_ITEMS + 10, msg),
                             SF_PB_INVALID);
            assert_string_equal(msg,
                                "\"items\": too many items (more than 64)");

            assert_int_equal(parse_items(big, &pb, NULL, 0, msg),
                             SF_PB_INVALID);
            assert_string_equal(msg,
                                "\"items\": too many items (more than 64)");
        }
    }

    free(big);
    free(many);
}


static void
test_messages(void **state)
{
    char           msg[ERR_SIZE];
    sf_postback_t  pb;

    (void) state;

    assert_int_equal(parse("{\"sourceOrderId\":\"1\",\"event\":\"error\","
                           "\"message\":\" A \","
                           "\"error\":{\"code\":4,\"message\":\"B\"},"
                           "\"errors\":[\"C\",null,\"  \","
                           "{\"name\":\"n\",\"path\":\"p\"},"
                           "{\"message\":\"m\",\"name\":5}],"
                           "\"errorsClean\":[\"D\\nE\\tF\"]}", &pb, msg),
                     SF_PB_OK);
    assert_string_equal(pb.message,
                        "A; B; C; n: Unknown error - At path p; m; D E F");

    assert_int_equal(parse("{\"sourceOrderId\":\"1\",\"event\":\"error\","
                           "\"error\":\"only\",\"errorsClean\":\"lone\"}",
                           &pb, msg),
                     SF_PB_OK);
    assert_string_equal(pb.message, "only; lone");

    assert_int_equal(parse("{\"sourceOrderId\":\"1\",\"event\":\"error\","
                           "\"errors\":[{}]}", &pb, msg),
                     SF_PB_OK);
    assert_string_equal(pb.message, "Unknown error");

    /* entities, once: "&amp;amp;" was "&amp;" before the template */

    assert_int_equal(parse("{\"sourceOrderId\":\"1\",\"event\":\"error\","
                           "\"message\":\"&amp;amp; &AMP; &#X3d; &#39; "
                           "&#x60; &foo; & &#x27\"}", &pb, msg),
                     SF_PB_OK);
    assert_string_equal(pb.message, "&amp; & = ' ` &foo; & &#x27");

    expect_error("{\"sourceOrderId\":\"1\",\"event\":\"error\","
                 "\"message\":5}",
                 SF_PB_INVALID, "\"message\" must be a string");
    expect_error("{\"sourceOrderId\":\"1\",\"event\":\"error\","
                 "\"error\":[]}",
                 SF_PB_INVALID, "\"error\" must be a string or an object");
    expect_error("{\"sourceOrderId\":\"1\",\"event\":\"error\","
                 "\"errors\":5}",
                 SF_PB_INVALID, "\"errors\" must be an array");
    expect_error("{\"sourceOrderId\":\"1\",\"event\":\"error\","
                 "\"errorsClean\":[\"a\",5]}",
                 SF_PB_INVALID,
                 "\"errorsClean[1]\" must be a string or an object");
}


static void
test_truncation(void **state)
{
    char          *body, *text, *p, msg[ERR_SIZE], small[12];
    size_t         i, len;
    sf_postback_t  pb;

    (void) state;

    text = malloc(4000);
    assert_non_null(text);

    /* 1023 bytes fit exactly */

    memset(text, 'x', 1023);
    text[1023] = '\0';
    body = with_message(text);
    assert_int_equal(parse(body, &pb, msg), SF_PB_OK);
    assert_string_equal(pb.message, text);
    free(body);

    /* 1024 do not: 1020 then "..." */

    memset(text, 'x', 1024);
    text[1024] = '\0';
    body = with_message(text);
    assert_int_equal(parse(body, &pb, msg), SF_PB_OK);
    assert_int_equal(strlen(pb.message), 1023);
    assert_memory_equal(pb.message, text, 1020);
    assert_string_equal(pb.message + 1020, "...");
    free(body);

    /* multi-byte characters are never split: "x" then 400 euro signs */

    p = text;
    *p++ = 'x';

    for (i = 0; i < 400; i++) {
        memcpy(p, "\xe2\x82\xac", 3);
        p += 3;
    }

    *p = '\0';

    body = with_message(text);
    assert_int_equal(parse(body, &pb, msg), SF_PB_OK);
    len = strlen(pb.message);
    assert_int_equal(len, 1 + 339 * 3 + 3);
    assert_memory_equal(pb.message, text, 1 + 339 * 3);
    assert_string_equal(pb.message + len - 3, "...");
    assert_true(clean_text(pb.message));
    free(body);

    /* 4-byte characters, written as surrogate pairs in the JSON */

    p = text;

    for (i = 0; i < 300; i++) {
        memcpy(p, "\\ud83d\\ude00", 12);
        p += 12;
    }

    *p = '\0';

    body = with_message(text);
    assert_int_equal(parse(body, &pb, msg), SF_PB_OK);
    assert_int_equal(strlen(pb.message), 255 * 4 + 3);
    assert_memory_equal(pb.message, "\xf0\x9f\x98\x80", 4);
    assert_true(clean_text(pb.message));
    free(body);

    /* many errors, joined and cut */

    body = malloc(20000);
    assert_non_null(body);
    p = body + sprintf(body, "{\"sourceOrderId\":\"1\",\"event\":\"error\","
                       "\"errors\":[");

    for (i = 0; i < 1500; i++) {
        p += sprintf(p, "%s\"e%zu\"", i ? "," : "", i);
    }

    strcpy(p, "]}");
    assert_int_equal(parse(body, &pb, msg), SF_PB_OK);
    assert_true(strncmp(pb.message, "e0; e1; e2; ", 12) == 0);
    assert_int_equal(strlen(pb.message), 1023);
    assert_string_equal(pb.message + 1020, "...");

    /* err buffers: cut with "...", 1 byte is "", 0 bytes untouched */

    assert_int_equal(sf_postback_parse("{}", 2, &pb, NULL, 0, small,
                                       sizeof(small)),
                     SF_PB_INVALID);
    assert_string_equal(small, "\"sourceO...");

    assert_int_equal(sf_postback_parse("{}", 2, &pb, NULL, 0, small, 1),
                     SF_PB_INVALID);
    assert_string_equal(small, "");

    assert_int_equal(sf_postback_parse("{}", 2, &pb, NULL, 0, NULL, 0),
                     SF_PB_INVALID);

    /* a long unknown event is shown cut, quotes and controls escaped */

    expect_error("{\"sourceOrderId\":\"1\",\"event\":\"a\\\"b\\\\c\\u0001\"}",
                 SF_PB_UNKNOWN_EVENT, "unknown event \"a\\\"b\\\\c?\"");

    p = text;

    for (i = 0; i < 100; i++) {
        memcpy(p, "\xc3\xa9", 2);
        p += 2;
    }

    *p = '\0';

    sprintf(body, "{\"sourceOrderId\":\"1\",\"event\":\"%s\"}", text);
    assert_int_equal(parse(body, &pb, msg), SF_PB_UNKNOWN_EVENT);
    assert_int_equal(strlen(msg), strlen("unknown event \"\"") + 64 + 3);
    assert_true(clean_text(msg));
    assert_string_equal(msg + strlen(msg) - 4, "...\"");

    free(body);
    free(text);
}


static void
test_unicode(void **state)
{
    char           msg[ERR_SIZE];
    sf_postback_t  pb;

    (void) state;

    assert_int_equal(parse("{\"sourceOrderId\":\"\\u03a9-42\","
                           "\"event\":\"shipped\","
                           "\"items\":[\"\xc3\xa9l\xc3\xa9ment\"]}",
                           &pb, msg),
                     SF_PB_OK);
    assert_string_equal(pb.source_order_id, "\xce\xa9-42");
    assert_int_equal(pb.nitems, 1);

    /* tracking number and carrier are ASCII only (customer e-mail) */

    expect_error("{\"sourceOrderId\":\"1\",\"event\":\"shipped\","
                 "\"trackingNumber\":\"\xe6\x97\xa5\xe6\x9c\xac\"}",
                 SF_PB_INVALID,
                 "\"trackingNumber\" may contain only ASCII letters, digits, "
                 "spaces and -./_");
    expect_error("{\"sourceOrderId\":\"1\",\"event\":\"shipped\","
                 "\"carrier\":{\"code\":\"\xc3\xa9\","
                 "\"service\":\"\\ud83d\\ude9a\"}}",
                 SF_PB_INVALID,
                 "\"carrier\" may contain only ASCII letters, digits, "
                 "spaces and -./_()");

    /* a lone surrogate is not JSON jansson accepts */

    assert_int_equal(parse("{\"sourceOrderId\":\"\\ud83d\","
                           "\"event\":\"received\"}", &pb, msg),
                     SF_PB_BAD_JSON);
    assert_true(clean_text(msg));

    /* a 255-byte limit counts bytes: 127 two-byte characters fit */

    {
        char    body[512], *p;
        size_t  i;

        p = body + sprintf(body, "{\"event\":\"received\","
                           "\"sourceOrderId\":\"");

        for (i = 0; i < 128; i++) {
            p += sprintf(p, "\xc3\xa9");
        }

        strcpy(p, "\"}");
        expect_error(body, SF_PB_INVALID,
                     "\"sourceOrderId\" is too long (at most 255 bytes)");

        strcpy(p - 2, "\"}");
        assert_int_equal(parse(body, &pb, msg), SF_PB_OK);
        assert_int_equal(strlen(pb.source_order_id), 254);
    }
}


static void
test_depth(void **state)
{
    int            i;
    char           body[128], *p;
    sf_postback_t  pb;
    char           msg[ERR_SIZE];

    (void) state;

    /* the body object plus 15 arrays: 16 levels */

    p = body + sprintf(body, "{\"x\":");

    for (i = 0; i < 15; i++) {
        *p++ = '[';
    }

    for (i = 0; i < 15; i++) {
        *p++ = ']';
    }

    strcpy(p, ",\"sourceOrderId\":\"1\",\"event\":\"received\"}");
    assert_int_equal(parse(body, &pb, msg), SF_PB_OK);

    p = body + sprintf(body, "{\"x\":");

    for (i = 0; i < 16; i++) {
        *p++ = '[';
    }

    for (i = 0; i < 16; i++) {
        *p++ = ']';
    }

    strcpy(p, "}");
    expect_error(body, SF_PB_BAD_JSON,
                 "invalid JSON at line 1, column 21: nesting too deep "
                 "(more than 16 levels)");

    /* brackets inside strings do not count */

    assert_int_equal(parse("{\"sourceOrderId\":\"[[[[[[[[[[[[[[[[[[[[\","
                           "\"event\":\"received\",\"message\":"
                           "\"{{{{{{{{{{{{{{{{{{{{\\\"{{{\"}", &pb, msg),
                     SF_PB_OK);
}


static void
test_init(void **state)
{
    char           msg[ERR_SIZE];
    sf_postback_t  pb;
    char           items[MAX_ITEMS][SF_PB_ITEM_ID_LEN];

    (void) state;

    memset(&pb, 0x55, sizeof(pb));

    assert_int_equal(sf_postback_parse("x", 1, &pb, items, MAX_ITEMS, msg,
                                       sizeof(msg)),
                     SF_PB_BAD_JSON);
    assert_int_equal(pb.event, 0);
    assert_int_equal(pb.shipment_index, -1);
    assert_int_equal(pb.nitems, 0);
    assert_ptr_equal(pb.items, items);
    assert_string_equal(pb.source_order_id, "");
    assert_string_equal(pb.message, "");
    assert_string_equal(pb.ship_date, "");
}


static void
test_rank(void **state)
{
    (void) state;

    assert_int_equal(sf_postback_rank(SF_EV_SUBMISSION_ERROR), 0);
    assert_int_equal(sf_postback_rank(SF_EV_RECEIVED), 1);
    assert_int_equal(sf_postback_rank(SF_EV_ERROR), 1);
    assert_int_equal(sf_postback_rank(SF_EV_PRINTREADY), 2);
    assert_int_equal(sf_postback_rank(SF_EV_SUBBATCH_SCANNED), 3);
    assert_int_equal(sf_postback_rank(SF_EV_BATCH_COMPLETE), 4);
    assert_int_equal(sf_postback_rank(SF_EV_COMPLETE), 5);
    assert_int_equal(sf_postback_rank(SF_EV_CANCELLED), 6);
    assert_int_equal(sf_postback_rank(SF_EV_SHIPPED), 7);
    assert_int_equal(sf_postback_rank((sf_event_t) 0), -1);
    assert_int_equal(sf_postback_rank((sf_event_t) 10), -1);
}


/*
 * The whole table, written from the rules in docs/postbacks.md rather
 * than from the code.  Rows: newer; columns: older, 0 = nothing applied.
 */

static void
test_supersedes(void **state)
{
    int  newer, older;

    static const int  table[10][10] = {
        /* older:  -  R  P  S  B  C  SH X  E  SE      newer: */
                 { 0, 0, 0, 0, 0, 0, 0, 0, 0, 0 },    /* (none) */
                 { 1, 0, 0, 0, 0, 0, 0, 0, 0, 1 },    /* received */
                 { 1, 1, 0, 0, 0, 0, 0, 0, 1, 1 },    /* printready */
                 { 1, 1, 1, 0, 0, 0, 0, 0, 1, 1 },    /* subbatch */
                 { 1, 1, 1, 1, 0, 0, 0, 0, 1, 1 },    /* batch */
                 { 1, 1, 1, 1, 1, 0, 0, 0, 1, 1 },    /* complete */
                 { 1, 1, 1, 1, 1, 1, 1, 1, 1, 1 },    /* shipped */
                 { 1, 1, 1, 1, 1, 1, 0, 0, 1, 1 },    /* cancelled */
                 { 1, 1, 1, 1, 1, 1, 0, 0, 1, 1 },    /* error */
                 { 1, 0, 0, 0, 0, 0, 0, 0, 0, 1 },    /* submission */
    };

    (void) state;

    for (newer = 0; newer < 10; newer++) {
        for (older = 0; older < 10; older++) {
            if (sf_postback_supersedes((sf_event_t) newer,
                                       (sf_event_t) older)
                != table[newer][older])
            {
                fail_msg("supersedes(%d, %d) != %d", newer, older,
                         table[newer][older]);
            }
        }
    }

    /* out-of-range values are "no event" */

    assert_int_equal(sf_postback_supersedes((sf_event_t) 42,
                                            SF_EV_RECEIVED), 0);
    assert_int_equal(sf_postback_supersedes(SF_EV_RECEIVED,
                                            (sf_event_t) 42), 1);
}


static void
test_same(void **state)
{
    char           msg[ERR_SIZE];
    sf_postback_t  a, b;

#define SHIPPED(rest)                                                        \
    "{\"sourceOrderId\":\"PN-1\",\"event\":\"shipped\"," rest "}"

    (void) state;

    assert_int_equal(parse(SHIPPED("\"shipmentIndex\":0,\"trackingNumber\":"
                                   "\"T1\",\"timestamp\":\"t1\""), &a, msg),
                     SF_PB_OK);

    /* a repeat, another timestamp and spelling: the same */

    assert_int_equal(parse("{\"sourceOrderId\":\"PN-1\",\"status\":"
                           "\"Shipment Dispatched\",\"shipment\":"
                           "{\"shipmentIndex\":\"0\",\"trackingNumber\":"
                           "\"T1\"},\"timestamp\":\"t2\",\"carrier\":\"x\"}",
                           &b, msg),
                     SF_PB_OK);
    assert_true(sf_postback_same(&a, &b));
    assert_true(sf_postback_same(&b, &a));
    assert_true(sf_postback_same(&a, &a));

    /* another shipment: not the same (and shipped supersedes shipped) */

    assert_int_equal(parse(SHIPPED("\"shipmentIndex\":1,\"trackingNumber\":"
                                   "\"T1\""), &b, msg),
                     SF_PB_OK);
    assert_false(sf_postback_same(&a, &b));
    assert_true(sf_postback_supersedes(b.event, a.event));

    /* a corrected tracking number */

    assert_int_equal(parse(SHIPPED("\"shipmentIndex\":0,\"trackingNumber\":"
                                   "\"T2\""), &b, msg),
                     SF_PB_OK);
    assert_false(sf_postback_same(&a, &b));

    /* another order, another event */

    assert_int_equal(parse("{\"sourceOrderId\":\"PN-2\",\"event\":\"shipped\","
                           "\"shipmentIndex\":0,\"trackingNumber\":\"T1\"}",
                           &b, msg),
                     SF_PB_OK);
    assert_false(sf_postback_same(&a, &b));

    assert_int_equal(parse("{\"sourceOrderId\":\"PN-1\",\"event\":\"error\","
                           "\"shipmentIndex\":0,\"trackingNumber\":\"T1\"}",
                           &b, msg),
                     SF_PB_OK);
    assert_false(sf_postback_same(&a, &b));

    /* errors: the same only with the same messages */

    assert_int_equal(parse("{\"sourceOrderId\":\"PN-1\",\"event\":\"error\","
                           "\"message\":\"m1\"}", &a, msg),
                     SF_PB_OK);
    assert_int_equal(parse("{\"sourceOrderId\":\"PN-1\",\"status\":"
                           "\"Order Errored\",\"errors\":[\"m1\"]}", &b, msg),
                     SF_PB_OK);
    assert_true(sf_postback_same(&a, &b));

    assert_int_equal(parse("{\"sourceOrderId\":\"PN-1\",\"event\":\"error\","
                           "\"message\":\"m2\"}", &b, msg),
                     SF_PB_OK);
    assert_false(sf_postback_same(&a, &b));

    assert_false(sf_postback_same(&a, NULL));
    assert_false(sf_postback_same(NULL, &a));

#undef SHIPPED
}


int
main(void)
{
    const struct CMUnitTest  tests[] = {
        cmocka_unit_test(test_fixtures),
        cmocka_unit_test(test_fixture_coverage),
        cmocka_unit_test(test_event_names),
        cmocka_unit_test(test_event_precedence),
        cmocka_unit_test(test_errors),
        cmocka_unit_test(test_shipment_fields),
        cmocka_unit_test(test_precedence),
        cmocka_unit_test(test_items),
        cmocka_unit_test(test_messages),
        cmocka_unit_test(test_truncation),
        cmocka_unit_test(test_unicode),
        cmocka_unit_test(test_depth),
        cmocka_unit_test(test_init),
        cmocka_unit_test(test_rank),
        cmocka_unit_test(test_supersedes),
        cmocka_unit_test(test_same),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
