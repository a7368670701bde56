/*
 * The slice of the Falco plugin C ABI (API 3.x) that falconet's test plugins use, written for
 * falconet from the ABI facts in docs/plugins.md. Only what the test plugins touch is declared;
 * the tables and the owner are opaque pointers here.
 */
#ifndef FALCONET_TEST_PLUGIN_ABI_H
#define FALCONET_TEST_PLUGIN_ABI_H

#include <stdint.h>

typedef int32_t ss_plugin_rc;
#define SS_PLUGIN_SUCCESS 0
#define SS_PLUGIN_FAILURE 1
#define SS_PLUGIN_TIMEOUT (-1)
#define SS_PLUGIN_EOF 2
#define SS_PLUGIN_NOT_SUPPORTED 3

#define FTYPE_UINT64 8
#define FTYPE_STRING 9
#define FTYPE_BOOL 25

#define PPME_PLUGINEVENT_E 322
#define PPME_ASYNCEVENT_E 402

typedef void ss_plugin_t;
typedef void ss_instance_t;
typedef void ss_plugin_owner_t;

#pragma pack(push, 1)
typedef struct {
    uint64_t ts;
    uint64_t tid;
    uint32_t len;
    uint16_t type;
    uint32_t nparams;
} ss_plugin_event;
#pragma pack(pop)

typedef struct {
    const ss_plugin_event *evt;
    uint64_t evtnum;
    const char *evtsrc;
} ss_plugin_event_input;

typedef struct {
    const char *config;
    ss_plugin_owner_t *owner;
    const char *(*get_owner_last_error)(ss_plugin_owner_t *o);
    const void *tables;
    void *log_fn;
} ss_plugin_init_input;

typedef struct {
    void *res;
    uint64_t res_len;
    uint32_t field_id;
    const char *field;
    const char *arg_key;
    uint64_t arg_index;
    uint32_t arg_present;
    uint32_t ftype;
    uint32_t flist;
} ss_plugin_extract_field;

typedef struct {
    ss_plugin_owner_t *owner;
    const char *(*get_owner_last_error)(ss_plugin_owner_t *o);
    uint32_t num_fields;
    ss_plugin_extract_field *fields;
    /* table readers and value offsets follow: unused by the test plugins */
} ss_plugin_field_extract_input;

typedef ss_plugin_rc (*ss_plugin_async_event_handler_t)(ss_plugin_owner_t *o,
                                                        const ss_plugin_event *evt, char *err);

/* The payload of a plugin event: [hdr 26][len u32 = 4][len u32 = n][plugin_id u32][data n]. */
#define PLUGIN_EVENT_HEADER 26
#define PLUGIN_EVENT_DATA_OFFSET (PLUGIN_EVENT_HEADER + 4 + 4 + 4)

static inline const uint8_t *plugin_event_data(const ss_plugin_event *evt, uint32_t *len) {
    const uint8_t *raw = (const uint8_t *)evt;
    uint32_t lens[2];
    if (evt->type != PPME_PLUGINEVENT_E || evt->nparams != 2 || evt->len < PLUGIN_EVENT_DATA_OFFSET) {
        *len = 0;
        return 0;
    }
    __builtin_memcpy(lens, raw + PLUGIN_EVENT_HEADER, sizeof lens);
    if (PLUGIN_EVENT_DATA_OFFSET + (uint64_t)lens[1] > evt->len) {
        *len = 0;
        return 0;
    }
    *len = lens[1];
    return raw + PLUGIN_EVENT_DATA_OFFSET;
}

#endif
