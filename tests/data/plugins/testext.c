/*
 * falconet test plugin: extraction only, written for falconet's tests from the plugin ABI facts
 * (docs/plugins.md). By default it declares the `json` source (get_extract_event_sources); built
 * with -DANY_SOURCE it is named "testany", declares no source and so applies to every source,
 * the syscall one included (as the json plugin does).
 *
 * Fields (PREFIX = testext | testany):
 *   PREFIX.len      uint64  payload length of a plugin event
 *   PREFIX.user     string  the "user" string member of a JSON payload
 *   PREFIX.evtype   uint64  the event type code from the event header (any event)
 *   PREFIX.value[k] string  the string member k of a JSON payload
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "plugin_abi.h"

#ifdef ANY_SOURCE
#define NAME "testany"
#else
#define NAME "testext"
#endif

typedef struct {
    char last_error[256];
    uint64_t u64[64];
    const char *str[64];
    char buf[64][256];
} state;

const char *plugin_get_required_api_version(void) { return "3.10.0"; }
const char *plugin_get_version(void) { return "0.3.1"; }
const char *plugin_get_name(void) { return NAME; }
const char *plugin_get_description(void) { return "falconet test extractor plugin"; }
const char *plugin_get_contact(void) { return "falconet tests"; }

ss_plugin_t *plugin_init(const ss_plugin_init_input *in, ss_plugin_rc *rc) {
    state *s = calloc(1, sizeof *s);
    if (s && in->tables == NULL) {
        snprintf(s->last_error, sizeof s->last_error, "tables input is NULL");
        *rc = SS_PLUGIN_FAILURE;
        return s;
    }
    *rc = s ? SS_PLUGIN_SUCCESS : SS_PLUGIN_FAILURE;
    return s;
}

void plugin_destroy(ss_plugin_t *s) { free(s); }
const char *plugin_get_last_error(ss_plugin_t *s) { return ((state *)s)->last_error; }

#ifndef ANY_SOURCE
const char *plugin_get_extract_event_sources(void) { return "[\"json\"]"; }
#endif

const char *plugin_get_fields(void) {
    return "["
           "{\"name\":\"" NAME ".len\",\"type\":\"uint64\",\"desc\":\"payload length\"},"
           "{\"name\":\"" NAME ".user\",\"type\":\"string\",\"desc\":\"the user member\"},"
           "{\"name\":\"" NAME ".evtype\",\"type\":\"uint64\",\"desc\":\"event type code\"},"
           "{\"name\":\"" NAME ".value\",\"type\":\"string\",\"arg\":{\"isRequired\":true,\"isKey\":true},"
           "\"desc\":\"a string member by key\"}"
           "]";
}

static int member(const char *json, uint32_t len, const char *key, char *out, size_t cap) {
    char pattern[128];
    int plen = snprintf(pattern, sizeof pattern, "\"%s\":", key);
    if (plen <= 0 || (size_t)plen >= sizeof pattern) return 0;
    for (uint32_t i = 0; i + (uint32_t)plen <= len; i++) {
        if (memcmp(json + i, pattern, (size_t)plen) != 0) continue;
        uint32_t p = i + (uint32_t)plen;
        while (p < len && json[p] == ' ') p++;
        if (p >= len || json[p] != '"') return 0;
        uint32_t start = ++p;
        while (p < len && json[p] != '"') p++;
        if (p >= len || p - start >= cap) return 0;
        memcpy(out, json + start, p - start);
        out[p - start] = 0;
        return 1;
    }
    return 0;
}

ss_plugin_rc plugin_extract_fields(ss_plugin_t *st, const ss_plugin_event_input *evt,
                                   const ss_plugin_field_extract_input *in) {
    state *s = st;
    uint32_t len;
    const char *data = (const char *)plugin_event_data(evt->evt, &len);
    for (uint32_t k = 0; k < in->num_fields; k++) {
        ss_plugin_extract_field *f = &in->fields[k];
        uint32_t slot = k % 64;
        f->res_len = 0;
        switch (f->field_id) {
        case 0:
            if (data) {
                s->u64[slot] = len;
                f->res = &s->u64[slot];
                f->res_len = 1;
            }
            break;
        case 1:
        case 3: {
            const char *key = f->field_id == 1 ? "user" : (f->arg_present ? f->arg_key : NULL);
            if (data && key && member(data, len, key, s->buf[slot], sizeof s->buf[slot])) {
                s->str[slot] = s->buf[slot];
                f->res = &s->str[slot];
                f->res_len = 1;
            }
            break;
        }
        case 2:
            s->u64[slot] = evt->evt->type;
            f->res = &s->u64[slot];
            f->res_len = 1;
            break;
        default:
            snprintf(s->last_error, sizeof s->last_error, "unknown field id %u", f->field_id);
            return SS_PLUGIN_FAILURE;
        }
    }
    return SS_PLUGIN_SUCCESS;
}
