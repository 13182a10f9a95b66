/* Error classes: from provider error names, HTTP statuses, error bodies, and the delay a
 * server asks for (Retry-After in seconds or as an HTTP-date, retry-after-ms).
 *
 * This is the one place where foreign error spaces become agent_err_class_t; the retry
 * policy that acts on the class and the delay lives with the HTTP clients, not here. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "base/mem.h"
#include "internal.h"

const char *agent_err_class_name(agent_err_class_t c) {
  switch (c) {
    case AGENT_ERR_NONE: return "none";
    case AGENT_ERR_RATE_LIMITED: return "rate_limited";
    case AGENT_ERR_TIMEOUT: return "timeout";
    case AGENT_ERR_SERVER: return "server_error";
    case AGENT_ERR_NETWORK: return "network";
    case AGENT_ERR_BAD_REQUEST: return "bad_request";
    case AGENT_ERR_AUTH: return "auth";
    case AGENT_ERR_CONTENT_FILTER: return "content_filter";
    case AGENT_ERR_UNKNOWN: break;
  }
  return "unknown";
}

static const struct {
  const char *name;
  agent_err_class_t cls;
} type_map[] = {
    /* OpenAI (type and code), Anthropic, llama.cpp, vLLM, Ollama's OpenAI layer */
    {"rate_limit_exceeded", AGENT_ERR_RATE_LIMITED},
    {"rate_limit_error", AGENT_ERR_RATE_LIMITED},
    {"rate_limited", AGENT_ERR_RATE_LIMITED},
    {"too_many_requests", AGENT_ERR_RATE_LIMITED},
    {"requests", AGENT_ERR_RATE_LIMITED},
    {"tokens", AGENT_ERR_RATE_LIMITED},
    {"server_error", AGENT_ERR_SERVER},
    {"api_error", AGENT_ERR_SERVER},
    {"overloaded_error", AGENT_ERR_SERVER},
    {"overloaded", AGENT_ERR_SERVER},
    {"internal_error", AGENT_ERR_SERVER},
    {"internal_server_error", AGENT_ERR_SERVER},
    {"service_unavailable", AGENT_ERR_SERVER},
    {"unavailable_error", AGENT_ERR_SERVER},
    {"timeout", AGENT_ERR_TIMEOUT},
    {"timeout_error", AGENT_ERR_TIMEOUT},
    {"request_timeout", AGENT_ERR_TIMEOUT},
    {"deadline_exceeded", AGENT_ERR_TIMEOUT},
    {"invalid_request_error", AGENT_ERR_BAD_REQUEST},
    {"invalid_request", AGENT_ERR_BAD_REQUEST},
    {"not_found_error", AGENT_ERR_BAD_REQUEST},
    {"not_found", AGENT_ERR_BAD_REQUEST},
    {"model_not_found", AGENT_ERR_BAD_REQUEST},
    {"request_too_large", AGENT_ERR_BAD_REQUEST},
    {"context_length_exceeded", AGENT_ERR_BAD_REQUEST},
    {"invalid_value", AGENT_ERR_BAD_REQUEST},
    {"not_supported_error", AGENT_ERR_BAD_REQUEST},
    {"authentication_error", AGENT_ERR_AUTH},
    {"invalid_api_key", AGENT_ERR_AUTH},
    {"permission_error", AGENT_ERR_AUTH},
    {"permission_denied", AGENT_ERR_AUTH},
    {"unauthorized", AGENT_ERR_AUTH},
    /* the account cannot pay for the request: retrying will not help */
    {"insufficient_quota", AGENT_ERR_AUTH},
    {"billing_error", AGENT_ERR_AUTH},
    {"content_filter", AGENT_ERR_CONTENT_FILTER},
    {"content_policy_violation", AGENT_ERR_CONTENT_FILTER},
    {"content_filter_error", AGENT_ERR_CONTENT_FILTER},
};

agent_err_class_t agent_err_class_from_status(int status) {
  if (status == 0) return AGENT_ERR_NETWORK;
  if (status >= 200 && status < 300) return AGENT_ERR_NONE;
  if (status == 408 || status == 504 || status == 524) return AGENT_ERR_TIMEOUT;
  if (status == 429) return AGENT_ERR_RATE_LIMITED;
  if (status == 401 || status == 402 || status == 403) return AGENT_ERR_AUTH;
  if (status >= 400 && status < 500) return AGENT_ERR_BAD_REQUEST;
  if (status >= 500 && status < 600) return AGENT_ERR_SERVER;
  return AGENT_ERR_UNKNOWN;
}

agent_err_class_t agent_err_class_from_type(const char *type) {
  if (!type || !*type) return AGENT_ERR_UNKNOWN;
  size_t n = strlen(type);
  if (n <= 3 && strspn(type, "0123456789") == n) {
    agent_err_class_t c = agent_err_class_from_status(atoi(type));
    return c == AGENT_ERR_NONE ? AGENT_ERR_UNKNOWN : c;
  }
  for (size_t i = 0; i < BASE_ARRAY_SIZE(type_map); i++)
    if (strcasecmp(type, type_map[i].name) == 0) return type_map[i].cls;
  return AGENT_ERR_UNKNOWN;
}

/* Class from an error object's "code" (string or HTTP status number), then its "type". */
static agent_err_class_t class_of_obj(const json_t *err) {
  json_t *code = json_object_get(err, "code");
  agent_err_class_t c = AGENT_ERR_UNKNOWN;
  if (json_is_string(code)) c = agent_err_class_from_type(json_string_value(code));
  if (json_is_integer(code)) {
    json_int_t v = json_integer_value(code);
    c = (v >= 100 && v < 600) ? agent_err_class_from_status((int)v) : AGENT_ERR_UNKNOWN;
    if (c == AGENT_ERR_NONE) c = AGENT_ERR_UNKNOWN;
  }
  if (c == AGENT_ERR_UNKNOWN)
    c = agent_err_class_from_type(json_string_value(json_object_get(err, "type")));
  return c;
}

bool agent__error_doc(const json_t *doc, agent_err_class_t *cls, const char **msg,
                      size_t *msg_len) {
  if (!json_is_object(doc)) return false;
  json_t *e = json_object_get(doc, "error");
  *msg = NULL;
  *msg_len = 0;
  if (json_is_string(e)) { /* Ollama: {"error":"..."} */
    *cls = AGENT_ERR_UNKNOWN;
    agent__json_str(doc, "error", msg, msg_len);
    return true;
  }
  if (!json_is_object(e)) {
    /* a bare error object: {"code":500,"message":"...","type":"server_error"} */
    if (!json_object_get(doc, "message") || json_object_get(doc, "choices")) return false;
    if (!json_object_get(doc, "code") && !json_object_get(doc, "type")) return false;
    e = (json_t *)doc;
  }
  *cls = class_of_obj(e);
  if (!agent__json_str(e, "message", msg, msg_len)) *msg = NULL;
  return true;
}

int agent_error_body_parse(const char *body, size_t len, agent_err_class_t *cls, char **msg) {
  json_t *doc;
  char perr[200];
  const char *m;
  size_t mlen;
  *msg = NULL;
  *cls = AGENT_ERR_UNKNOWN;
  if (agent__json_parse(body, len, 0, &doc, perr, sizeof perr) < 0) return -EBADMSG;
  int rc = -ENOENT;
  if (agent__error_doc(doc, cls, &m, &mlen)) {
    *msg = m ? xstrndup(m, mlen) : xstrndup(body, len);
    rc = 0;
  }
  json_decref(doc);
  return rc;
}

/* ---- Retry-After ---- */

static const char *const months[12] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                       "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};

static bool read_uint(const char **s, int min_digits, int max_digits, int *v) {
  int n = 0, x = 0;
  while (**s >= '0' && **s <= '9' && n < max_digits) {
    x = x * 10 + (**s - '0');
    (*s)++;
    n++;
  }
  *v = x;
  return n >= min_digits;
}

static bool read_month(const char **s, int *mon) {
  for (int i = 0; i < 12; i++) {
    if (strncmp(*s, months[i], 3) == 0) {
      *mon = i;
      *s += 3;
      return true;
    }
  }
  return false;
}

static bool read_lit(const char **s, const char *lit) {
  size_t n = strlen(lit);
  if (strncmp(*s, lit, n) != 0) return false;
  *s += n;
  return true;
}

static bool read_time(const char **s, struct tm *tm) {
  return read_uint(s, 2, 2, &tm->tm_hour) && read_lit(s, ":") &&
         read_uint(s, 2, 2, &tm->tm_min) && read_lit(s, ":") &&
         read_uint(s, 2, 2, &tm->tm_sec);
}

/* RFC 9110 5.6.7: IMF-fixdate, obsolete RFC 850 and asctime forms, all GMT. */
static bool parse_http_date(const char *s, int64_t *unix_ms) {
  struct tm tm;
  memset(&tm, 0, sizeof tm);
  const char *p = s;
  while ((*p >= 'A' && *p <= 'Z') || (*p >= 'a' && *p <= 'z')) p++; /* day name */
  if (p - s < 3) return false;
  if (*p == ',') {
    p++;
    if (!read_lit(&p, " ") || !read_uint(&p, 2, 2, &tm.tm_mday)) return false;
    if (*p == ' ') { /* IMF-fixdate: 06 Nov 1994 08:49:37 GMT */
      p++;
      if (!read_month(&p, &tm.tm_mon) || !read_lit(&p, " ") ||
          !read_uint(&p, 4, 4, &tm.tm_year))
        return false;
      tm.tm_year -= 1900;
    } else { /* RFC 850: 06-Nov-94 08:49:37 GMT */
      int yy;
      if (!read_lit(&p, "-") || !read_month(&p, &tm.tm_mon) || !read_lit(&p, "-") ||
          !read_uint(&p, 2, 2, &yy))
        return false;
      tm.tm_year = yy < 70 ? yy + 100 : yy;
    }
    if (!read_lit(&p, " ") || !read_time(&p, &tm) || !read_lit(&p, " GMT")) return false;
  } else { /* asctime: Sun Nov  6 08:49:37 1994 */
    if (!read_lit(&p, " ") || !read_month(&p, &tm.tm_mon) || !read_lit(&p, " ")) return false;
    if (*p == ' ') p++;
    if (!read_uint(&p, 1, 2, &tm.tm_mday) || !read_lit(&p, " ") || !read_time(&p, &tm) ||
        !read_lit(&p, " ") || !read_uint(&p, 4, 4, &tm.tm_year))
      return false;
    tm.tm_year -= 1900;
  }
  while (*p == ' ') p++;
  if (*p || tm.tm_mday < 1 || tm.tm_mday > 31 || tm.tm_hour > 23 || tm.tm_min > 59 ||
      tm.tm_sec > 60)
    return false;
  time_t t = timegm(&tm);
  if (t == (time_t)-1) return false;
  *unix_ms = (int64_t)t * 1000;
  return true;
}

#define RETRY_MAX_MS ((int64_t)1000 * 86400 * 365) /* caps absurd values */

static bool parse_retry_after(const char *s, int64_t now_ms, int64_t *ms) {
  while (*s == ' ' || *s == '\t') s++;
  if (*s >= '0' && *s <= '9') {
    int64_t secs = 0;
    for (; *s >= '0' && *s <= '9'; s++)
      if (secs < RETRY_MAX_MS) secs = secs * 10 + (*s - '0');
    while (*s == ' ' || *s == '\t') s++;
    if (*s) return false;
    *ms = secs >= RETRY_MAX_MS / 1000 ? RETRY_MAX_MS : secs * 1000;
    return true;
  }
  int64_t at;
  if (!parse_http_date(s, &at)) return false;
  *ms = at > now_ms ? at - now_ms : 0;
  if (*ms > RETRY_MAX_MS) *ms = RETRY_MAX_MS;
  return true;
}

/* retry-after-ms: a non-negative decimal number of ms, maybe with a fraction (rounded
 * up: waiting a little longer is always safe). */
static bool parse_retry_after_ms(const char *s, int64_t *ms) {
  int64_t v = 0;
  bool digits = false, frac = false;
  while (*s == ' ' || *s == '\t') s++;
  for (; *s >= '0' && *s <= '9'; s++, digits = true)
    if (v < RETRY_MAX_MS) v = v * 10 + (*s - '0');
  if (*s == '.') {
    for (s++; *s >= '0' && *s <= '9'; s++, digits = true)
      if (*s != '0') frac = true;
  }
  while (*s == ' ' || *s == '\t') s++;
  if (!digits || *s) return false;
  v += frac;
  *ms = v > RETRY_MAX_MS ? RETRY_MAX_MS : v;
  return true;
}

int agent_http_classify(int status, const char *retry_after, const char *retry_after_ms,
                        int64_t now_ms, agent_err_class_t *cls, int64_t *retry_ms) {
  if (!cls || !retry_ms) return -EINVAL;
  *cls = agent_err_class_from_status(status);
  *retry_ms = -1;
  if (retry_after_ms && parse_retry_after_ms(retry_after_ms, retry_ms)) return 0;
  if (retry_after && !parse_retry_after(retry_after, now_ms, retry_ms)) *retry_ms = -1;
  return 0;
}
