/*
 * falconet test plugin: sourcing + extraction + parsing + async events, written for falconet's
 * tests from the plugin ABI facts (docs/plugins.md). Compile-time switches make the misbehaving
 * variants the tests need:
 *   -DTOO_NEW       requires plugin API 3.99.0 (the host must refuse it)
 *   -DBAD_FIELDS    get_fields returns broken JSON
 *   -DINIT_FAIL     init fails, with a message in get_last_error
 *   -DWITH_SCHEMA   exports get_init_schema (a JSON Schema for the init config)
 *   -DBAD_EXTRACT   returns two values for the non-list field testsrc.user
 *   -DBAD_EVENT     produces events whose header length disagrees with their parameters
 *   -DEXTRA_FIELD   lists a field (id 8) that extract_fields does not know: it fails on it
 *   -DNO_PARSE      no parsing capability (sourcing and extraction only, like k8saudit)
 * PLUGIN_NAME (default "testsrc") names the build.
 *
 * Events: PPME_PLUGINEVENT_E with the JSON payload {"n":N,"user":"U","action":"A"}; ts and tid
 * are left at UINT64_MAX and the plugin id at 0, for the host to fill.
 * Init config: JSON, optional "user_prefix" (string prepended to user names).
 * Open params: "COUNT BATCH TIMEOUT_EVERY" (defaults 5 1 0): COUNT events in batches of BATCH,
 * then EOF; with TIMEOUT_EVERY k > 0 every k-th call returns SS_PLUGIN_TIMEOUT first.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "plugin_abi.h"

#ifndef PLUGIN_NAME
#define PLUGIN_NAME "testsrc"
#endif
#define PLUGIN_ID 999
#ifndef PLUGIN_SOURCE
#define PLUGIN_SOURCE "testsrc"
#endif
#define MAX_BATCH 512
#define MAX_PAYLOAD 128

typedef struct {
    char last_error[1024];
    char user_prefix[32];
    uint64_t parsed;
    ss_plugin_owner_t *async_owner;
    ss_plugin_async_event_handler_t async_handler;
    /* extraction results: valid until the next extract_fields call */
    uint64_t u64_res[64];
    const char *str_res[64];
    uint32_t bool_res[64];
    char strbuf[64][MAX_PAYLOAD];
} plugin_state;

typedef struct {
    uint32_t count, batch, timeout_every;
    uint32_t next, calls;
    int opened_async_sent;
    uint8_t *buffers; /* MAX_BATCH events, each EVENT_CAP bytes */
    ss_plugin_event *pointers[MAX_BATCH];
    char progress[64];
} plugin_instance;

#define EVENT_CAP (PLUGIN_EVENT_DATA_OFFSET + MAX_PAYLOAD)

static const char *users[] = {"alice", "bob", "mallory"};

const char *plugin_get_required_api_version(void) {
#ifdef TOO_NEW
    return "3.99.0";
#else
    return "3.0.0";
#endif
}
const char *plugin_get_version(void) { return "1.2.3"; }
const char *plugin_get_name(void) { return PLUGIN_NAME; }
const char *plugin_get_description(void) { return "falconet test source plugin"; }
const char *plugin_get_contact(void) { return "falconet tests"; }
uint32_t plugin_get_id(void) { return PLUGIN_ID; }
const char *plugin_get_event_source(void) { return PLUGIN_SOURCE; }

#ifdef WITH_SCHEMA
const char *plugin_get_init_schema(uint32_t *schema_type) {
    *schema_type = 1;
    return "{\"$schema\":\"http://json-schema.org/draft-04/schema#\",\"type\":\"object\","
           "\"properties\":{\"user_prefix\":{\"type\":\"string\",\"maxLength\":16}},"
           "\"additionalProperties\":false}";
}
#endif

/* The JSON string value of "key" in a flat object, copied into out; 0 when absent. */
static int json_string(const char *json, uint32_t len, const char *key, char *out, size_t cap) {
    char pattern[64];
    snprintf(pattern, sizeof pattern, "\"%s\":\"", key);
    size_t plen = strlen(pattern);
    for (uint32_t i = 0; i + plen <= len; i++) {
        if (memcmp(json + i, pattern, plen) == 0) {
            uint32_t start = i + plen, end = start;
            while (end < len && json[end] != '"') end++;
            if (end >= len || end - start >= cap) return 0;
            memcpy(out, json + start, end - start);
            out[end - start] = 0;
            return 1;
        }
    }
    return 0;
}

static int json_number(const char *json, uint32_t len, const char *key, uint64_t *out) {
    char pattern[64];
    snprintf(pattern, sizeof pattern, "\"%s\":", key);
    size_t plen = strlen(pattern);
    for (uint32_t i = 0; i + plen <= len; i++) {
        if (memcmp(json + i, pattern, plen) == 0) {
            uint32_t p = i + plen;
            if (p >= len || json[p] < '0' || json[p] > '9') return 0;
            uint64_t v = 0;
            while (p < len && json[p] >= '0' && json[p] <= '9') v = v * 10 + (uint64_t)(json[p++] - '0');
            *out = v;
            return 1;
        }
    }
    return 0;
}

ss_plugin_t *plugin_init(const ss_plugin_init_input *in, ss_plugin_rc *rc) {
    plugin_state *s = calloc(1, sizeof *s);
    if (!s) {
        *rc = SS_PLUGIN_FAILURE;
        return NULL;
    }
    if (in->tables == NULL) { /* the SDK reads it: a NULL tables input is a host bug */
        snprintf(s->last_error, sizeof s->last_error, "tables input is NULL");
        *rc = SS_PLUGIN_FAILURE;
        return s;
    }
#ifdef INIT_FAIL
    snprintf(s->last_error, sizeof s->last_error,
             "cannot reach the collector at 192.0.2.1:9 (connection refused)");
    *rc = SS_PLUGIN_FAILURE;
    return s;
#endif
    const char *config = in->config ? in->config : "";
    json_string(config, (uint32_t)strlen(config), "user_prefix", s->user_prefix, sizeof s->user_prefix);
    *rc = SS_PLUGIN_SUCCESS;
    return s;
}

void plugin_destroy(ss_plugin_t *s) { free(s); }

const char *plugin_get_last_error(ss_plugin_t *s) { return ((plugin_state *)s)->last_error; }

ss_instance_t *plugin_open(ss_plugin_t *s, const char *params, ss_plugin_rc *rc) {
    plugin_state *ps = s;
    plugin_instance *h = calloc(1, sizeof *h);
    if (!h) {
        *rc = SS_PLUGIN_FAILURE;
        return NULL;
    }
    h->count = 5;
    h->batch = 1;
    if (params && *params) {
        int n = sscanf(params, "%u %u %u", &h->count, &h->batch, &h->timeout_every);
        if (n < 1 || h->batch == 0 || h->batch > MAX_BATCH) {
            snprintf(ps->last_error, sizeof ps->last_error,
                     "bad open params '%s': want COUNT [BATCH 1-%d] [TIMEOUT_EVERY]", params, MAX_BATCH);
            free(h);
            *rc = SS_PLUGIN_FAILURE;
            return NULL;
        }
    }
    h->buffers = calloc(MAX_BATCH, EVENT_CAP);
    if (!h->buffers) {
        free(h);
        *rc = SS_PLUGIN_FAILURE;
        return NULL;
    }
    *rc = SS_PLUGIN_SUCCESS;
    return h;
}

void plugin_close(ss_plugin_t *s, ss_instance_t *h) {
    (void)s;
    plugin_instance *i = h;
    if (i) {
        free(i->buffers);
        free(i);
    }
}

const char *plugin_list_open_params(ss_plugin_t *s, ss_plugin_rc *rc) {
    (void)s;
    *rc = SS_PLUGIN_SUCCESS;
    return "[{\"value\":\"5 1\",\"desc\":\"five events, one per batch\"},"
           "{\"value\":\"1000 100\",\"desc\":\"a thousand events\"}]";
}

const char *plugin_get_progress(ss_plugin_t *s, ss_instance_t *h, uint32_t *pct) {
    (void)s;
    plugin_instance *i = h;
    *pct = i->count ? (uint32_t)((uint64_t)i->next * 10000 / i->count) : 10000;
    snprintf(i->progress, sizeof i->progress, "%u/%u events", i->next, i->count);
    return i->progress;
}

static void send_async(plugin_state *ps) {
    /* PPME_ASYNCEVENT_E: [hdr][3 x u32 lens][plugin_id u32][name\0][data] */
    uint8_t buf[128];
    const char name[] = "testsrc_opened";
    const char data[] = "hello";
    uint32_t lens[3] = {4, sizeof name, sizeof data - 1};
    uint32_t total = PLUGIN_EVENT_HEADER + sizeof lens + lens[0] + lens[1] + lens[2];
    ss_plugin_event hdr = {UINT64_MAX, UINT64_MAX, total, PPME_ASYNCEVENT_E, 3};
    uint32_t zero = 0;
    uint8_t *p = buf;
    memcpy(p, &hdr, PLUGIN_EVENT_HEADER);
    p += PLUGIN_EVENT_HEADER;
    memcpy(p, lens, sizeof lens);
    p += sizeof lens;
    memcpy(p, &zero, 4);
    p += 4;
    memcpy(p, name, sizeof name);
    p += sizeof name;
    memcpy(p, data, sizeof data - 1);
    char err[1024];
    ps->async_handler(ps->async_owner, (const ss_plugin_event *)buf, err);
}

ss_plugin_rc plugin_next_batch(ss_plugin_t *s, ss_instance_t *h, uint32_t *nevts, ss_plugin_event ***evts) {
    plugin_state *ps = s;
    plugin_instance *i = h;
    i->calls++;
    *nevts = 0;
    if (!i->opened_async_sent && ps->async_handler) {
        i->opened_async_sent = 1;
        send_async(ps);
    }
    if (i->timeout_every && i->calls % i->timeout_every == 0) return SS_PLUGIN_TIMEOUT;
    if (i->next >= i->count) return SS_PLUGIN_EOF;
    uint32_t n = 0;
    while (n < i->batch && i->next < i->count) {
        uint8_t *buf = i->buffers + (size_t)n * EVENT_CAP;
        uint32_t num = i->next + 1;
        const char *action = num % 5 == 0 ? "delete" : "read";
        char payload[MAX_PAYLOAD];
        int plen = snprintf(payload, sizeof payload, "{\"n\":%u,\"user\":\"%s%s\",\"action\":\"%s\"}",
                            num, ps->user_prefix, users[num % 3], action);
        uint32_t lens[2] = {4, (uint32_t)plen};
        uint32_t zero = 0;
        ss_plugin_event hdr = {UINT64_MAX, UINT64_MAX, PLUGIN_EVENT_DATA_OFFSET + (uint32_t)plen,
                               PPME_PLUGINEVENT_E, 2};
#ifdef BAD_EVENT
        hdr.len = PLUGIN_EVENT_DATA_OFFSET + (uint32_t)plen + 1000;
#endif
        memcpy(buf, &hdr, PLUGIN_EVENT_HEADER);
        memcpy(buf + PLUGIN_EVENT_HEADER, lens, sizeof lens);
        memcpy(buf + PLUGIN_EVENT_HEADER + sizeof lens, &zero, 4);
        memcpy(buf + PLUGIN_EVENT_DATA_OFFSET, payload, (size_t)plen);
        i->pointers[n] = (ss_plugin_event *)buf;
        n++;
        i->next++;
    }
    *nevts = n;
    *evts = i->pointers;
    return SS_PLUGIN_SUCCESS;
}

const char *plugin_event_to_string(ss_plugin_t *s, const ss_plugin_event_input *in) {
    static char text[MAX_PAYLOAD + 16];
    (void)s;
    uint32_t len;
    const uint8_t *data = plugin_event_data(in->evt, &len);
    snprintf(text, sizeof text, "testsrc %.*s", (int)len, data ? (const char *)data : "");
    return text;
}

const char *plugin_get_fields(void) {
#ifdef BAD_FIELDS
    return "[{\"name\": \"testsrc.n\", \"type\": \"uint64\", \"desc\": ";
#else
    return "["
           "{\"name\":\"testsrc.n\",\"type\":\"uint64\",\"desc\":\"event number\"},"
           "{\"name\":\"testsrc.user\",\"type\":\"string\",\"desc\":\"user name\"},"
           "{\"name\":\"testsrc.action\",\"type\":\"string\",\"desc\":\"action\"},"
           "{\"name\":\"testsrc.tags\",\"type\":\"string\",\"isList\":true,\"desc\":\"parity and user\"},"
           "{\"name\":\"testsrc.field\",\"type\":\"string\",\"arg\":{\"isRequired\":true,\"isKey\":true},"
           "\"desc\":\"a string member by key\"},"
           "{\"name\":\"testsrc.digit\",\"type\":\"uint64\",\"arg\":{\"isRequired\":true,\"isIndex\":true},"
           "\"desc\":\"the i-th decimal digit of n, from the right\"},"
           "{\"name\":\"testsrc.admin\",\"type\":\"bool\",\"desc\":\"whether the user is mallory\"},"
           "{\"name\":\"testsrc.parsed\",\"type\":\"uint64\",\"desc\":\"events parse_event saw so far\"}"
#ifdef EXTRA_FIELD
           ",{\"name\":\"testsrc.extra\",\"type\":\"string\",\"desc\":\"listed, never implemented\"}"
#endif
           "]";
#endif
}

ss_plugin_rc plugin_extract_fields(ss_plugin_t *s, const ss_plugin_event_input *evt,
                                   const ss_plugin_field_extract_input *in) {
    plugin_state *ps = s;
    uint32_t len;
    const char *data = (const char *)plugin_event_data(evt->evt, &len);
    for (uint32_t k = 0; k < in->num_fields; k++) {
        ss_plugin_extract_field *f = &in->fields[k];
        uint32_t slot = k % 64; /* results stay distinct for up to 64 fields a call */
        f->res_len = 0;
        if (!data) continue;
        switch (f->field_id) {
        case 0:
            if (json_number(data, len, "n", &ps->u64_res[slot])) {
                f->res = &ps->u64_res[slot];
                f->res_len = 1;
            }
            break;
        case 1:
        case 2:
            if (json_string(data, len, f->field_id == 1 ? "user" : "action", ps->strbuf[slot], MAX_PAYLOAD)) {
                ps->str_res[slot] = ps->strbuf[slot];
                f->res = &ps->str_res[slot];
                f->res_len = 1;
#ifdef BAD_EXTRACT
                if (f->field_id == 1) f->res_len = 2;
#endif
            }
            break;
        case 3: {
            static const char *tags[2];
            uint64_t n;
            if (json_number(data, len, "n", &n) && json_string(data, len, "user", ps->strbuf[slot], MAX_PAYLOAD)) {
                tags[0] = n % 2 ? "odd" : "even";
                tags[1] = ps->strbuf[slot];
                f->res = tags;
                f->res_len = 2;
            }
            break;
        }
        case 4:
            if (f->arg_present && f->arg_key &&
                json_string(data, len, f->arg_key, ps->strbuf[slot], MAX_PAYLOAD)) {
                ps->str_res[slot] = ps->strbuf[slot];
                f->res = &ps->str_res[slot];
                f->res_len = 1;
            }
            break;
        case 5: {
            uint64_t n;
            if (f->arg_present && json_number(data, len, "n", &n)) {
                for (uint64_t d = 0; d < f->arg_index; d++) n /= 10;
                ps->u64_res[slot] = n % 10;
                f->res = &ps->u64_res[slot];
                f->res_len = 1;
            }
            break;
        }
        case 6:
            if (json_string(data, len, "user", ps->strbuf[slot], MAX_PAYLOAD)) {
                ps->bool_res[slot] = strstr(ps->strbuf[slot], "mallory") != NULL;
                f->res = &ps->bool_res[slot];
                f->res_len = 1;
            }
            break;
        case 7:
            ps->u64_res[slot] = ps->parsed;
            f->res = &ps->u64_res[slot];
            f->res_len = 1;
            break;
        default:
            snprintf(ps->last_error, sizeof ps->last_error, "unknown field id %u", f->field_id);
            return SS_PLUGIN_FAILURE;
        }
    }
    return SS_PLUGIN_SUCCESS;
}

#ifndef NO_PARSE
ss_plugin_rc plugin_parse_event(ss_plugin_t *s, const ss_plugin_event_input *evt, const void *in) {
    (void)evt;
    (void)in;
    ((plugin_state *)s)->parsed++;
    return SS_PLUGIN_SUCCESS;
}
#endif

const char *plugin_get_async_events(void) { return "[\"testsrc_opened\"]"; }

const char *plugin_get_async_event_sources(void) { return "[\"testsrc\"]"; }

ss_plugin_rc plugin_set_async_event_handler(ss_plugin_t *s, ss_plugin_owner_t *owner,
                                            const ss_plugin_async_event_handler_t handler) {
    plugin_state *ps = s;
    ps->async_owner = owner;
    ps->async_handler = handler;
    return SS_PLUGIN_SUCCESS;
}
