/* The libwebsockets protocol table and its one callback, which only dispatches: HTTP
 * reasons to http.c, WebSocket reasons to ws.c, connection accounting to listener.c.
 * Also the fallback protocol that answers 400 to input that is not HTTP at all, and the
 * header/query helpers shared by http.c and ws.c. Owns no state. */
#include <string.h>
#include <strings.h>

#include "base/log.h"
#include "internal.h"

/* Per-connection WebSocket receive buffer inside lws, allocated for every WebSocket for its
 * whole life (STACK-NOTES P7). As small as lws allows (a control frame, at most 125 bytes,
 * must fit; lws hands larger frames over in pieces and ws.c reassembles them): measured
 * 2.34 KB of RSS per idle connection at 512, 2.10 KB at 256, 1.99 KB at 128. */
#define COORD_WS_RX_BUFFER 128
/* The receive buffer of a connection on the coord-bulk subprotocol (docs/protocol.md,
 * "Connecting"). lws reads a WebSocket at most its buffer's size at a time
 * (roles/ws/ops-ws.c, capped by pt_serv_buf_size, 16 KB in daemon.c), so at 128 bytes a
 * 300-byte pub takes three reads; a publisher that asks for coord-bulk gets reads of 16 KB
 * (about 50 such messages) and pays 16 KB of memory, bounded by limits.ws_bulk_connections. */
#define COORD_WS_RX_BULK 16384
/* Upper bound of one send() lws issues for a write; without it lws would cap sends at
 * the rx buffer size and buffer the rest. Matches the per-turn write budget. */
#define COORD_TX_PACKET 65536

_Static_assert(COORD_WS_PRE == LWS_PRE, "COORD_WS_PRE must equal LWS_PRE");

static coord_daemon_t *transport_daemon(struct lws *wsi) {
  return lws_context_user(lws_get_context(wsi));
}

static int transport_callback(struct lws *wsi, enum lws_callback_reasons reason, void *user,
                              void *in, size_t len) {
  coord_daemon_t *d = transport_daemon(wsi);
  coord_pss_t *pss = user;
  switch (reason) {
  case LWS_CALLBACK_WSI_DESTROY:
    if (d) coord__listener_wsi_destroyed(d, wsi);
    return 0;

  case LWS_CALLBACK_HTTP:
  case LWS_CALLBACK_HTTP_BODY:
  case LWS_CALLBACK_HTTP_BODY_COMPLETION:
  case LWS_CALLBACK_HTTP_WRITEABLE:
  case LWS_CALLBACK_HTTP_FILE_COMPLETION:
  case LWS_CALLBACK_CLOSED_HTTP:
  case LWS_CALLBACK_HTTP_DROP_PROTOCOL:
    if (!pss) return lws_callback_http_dummy(wsi, reason, user, in, len);
    return coord__http_callback(d, wsi, reason, pss, in, len);

  case LWS_CALLBACK_HTTP_CONFIRM_UPGRADE:
    /* No per-session data yet: lws binds the protocol (and allocates it) afterwards. */
    return coord__ws_callback(d, wsi, reason, NULL, in, len);
  case LWS_CALLBACK_ESTABLISHED:
  case LWS_CALLBACK_RECEIVE:
  case LWS_CALLBACK_SERVER_WRITEABLE:
  case LWS_CALLBACK_CLOSED:
  case LWS_CALLBACK_WS_PEER_INITIATED_CLOSE:
    if (!pss) return -1;
    return coord__ws_callback(d, wsi, reason, pss, in, len);

  default:
    /* STACK-NOTES P3: everything else gets lws's default HTTP behaviour. */
    return lws_callback_http_dummy(wsi, reason, user, in, len);
  }
}

/* Input that is not HTTP (an unknown method in the request line) is handed here by
 * LWS_SERVER_OPTION_FALLBACK_TO_APPLY_LISTEN_ACCEPT_CONFIG: answer 400 and hang up. */
static int transport_bad_http_callback(struct lws *wsi, enum lws_callback_reasons reason,
                                       void *user, void *in, size_t len) {
  static const char resp[] = "HTTP/1.1 400 Bad Request\r\n"
                             "content-type: application/json\r\n"
                             "content-length: 68\r\n"
                             "connection: close\r\n\r\n"
                             "{\"error\":{\"code\":\"bad_request\",\"message\":\"malformed HTTP request\"}}\n";
  switch (reason) {
  case LWS_CALLBACK_RAW_ADOPT:
    lws_callback_on_writable(wsi);
    return 0;
  case LWS_CALLBACK_RAW_RX:
    return 0;
  case LWS_CALLBACK_RAW_WRITEABLE: {
    coord_daemon_t *d = transport_daemon(wsi);
    unsigned char buf[LWS_PRE + sizeof resp];
    memcpy(buf + LWS_PRE, resp, sizeof resp - 1);
    (void)lws_write(wsi, buf + LWS_PRE, sizeof resp - 1, LWS_WRITE_RAW);
    if (d)
      coord_metric_add(coord_metric_series(d->m.http_requests,
                                           (const char *const[]){"route", "malformed", "status",
                                                                 "400", NULL}),
                       1);
    return -1;
  }
  default:
    return lws_callback_http_dummy(wsi, reason, user, in, len);
  }
}

const struct lws_protocols coord__protocols[] = {
    {
        .name = COORD_WS_PROTOCOL,
        .callback = transport_callback,
        .per_session_data_size = sizeof(coord_pss_t),
        .rx_buffer_size = COORD_WS_RX_BUFFER,
        .tx_packet_size = COORD_TX_PACKET,
    },
    {
        .name = "coord-bad-http",
        .callback = transport_bad_http_callback,
    },
    {
        .name = COORD_WS_BULK_PROTOCOL,
        .callback = transport_callback,
        .per_session_data_size = sizeof(coord_pss_t),
        .rx_buffer_size = COORD_WS_RX_BULK,
        .tx_packet_size = COORD_TX_PACKET,
    },
    {.name = NULL, .callback = NULL},
};

static const struct {
  const char *name;
  enum lws_token_indexes token;
} transport_known_headers[] = {
    {"authorization", WSI_TOKEN_HTTP_AUTHORIZATION},
    {"content-type", WSI_TOKEN_HTTP_CONTENT_TYPE},
    {"content-length", WSI_TOKEN_HTTP_CONTENT_LENGTH},
    {"host", WSI_TOKEN_HOST},
    {"origin", WSI_TOKEN_ORIGIN},
    {"user-agent", WSI_TOKEN_HTTP_USER_AGENT},
    {"accept", WSI_TOKEN_HTTP_ACCEPT},
    {"cookie", WSI_TOKEN_HTTP_COOKIE},
    {"x-forwarded-for", WSI_TOKEN_X_FORWARDED_FOR},
    {"if-none-match", WSI_TOKEN_HTTP_IF_NONE_MATCH},
    {"sec-websocket-protocol", WSI_TOKEN_PROTOCOL},
    {"upgrade", WSI_TOKEN_UPGRADE},
    {"connection", WSI_TOKEN_CONNECTION},
};

int coord__hdr_copy(struct lws *wsi, const char *name, char *buf, size_t len) {
  if (!len) return -1;
  for (size_t i = 0; i < sizeof transport_known_headers / sizeof transport_known_headers[0]; i++) {
    if (strcasecmp(name, transport_known_headers[i].name) != 0) continue;
    if (lws_hdr_total_length(wsi, transport_known_headers[i].token) <= 0) return -1;
    return lws_hdr_copy(wsi, buf, (int)len, transport_known_headers[i].token);
  }
  /* Unknown to lws: stored by name, lower case, with the colon. */
  char key[96];
  size_t n = strlen(name);
  if (n + 2 > sizeof key) return -1;
  for (size_t i = 0; i < n; i++)
    key[i] = (char)((name[i] >= 'A' && name[i] <= 'Z') ? name[i] - 'A' + 'a' : name[i]);
  key[n] = ':';
  key[n + 1] = '\0';
  return lws_hdr_custom_copy(wsi, buf, (int)len, key, (int)n + 1);
}

int coord__query_copy(struct lws *wsi, const char *name, char *buf, size_t len) {
  char key[64];
  size_t n = strlen(name);
  if (n + 2 > sizeof key || len < n + 2) return -1;
  memcpy(key, name, n);
  key[n] = '=';
  key[n + 1] = '\0';
  const char *v = lws_get_urlarg_by_name(wsi, key, buf, (int)len);
  if (!v) return -1;
  size_t vlen = strlen(v);
  memmove(buf, v, vlen + 1);
  return (int)vlen;
}
