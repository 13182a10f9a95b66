/* JWT verification, claim validation, room globs and the bearer helper (see auth.h).
 *
 * The signature is checked by libjwt (Debian's 1.10.2+deb12u1 compares signatures in
 * constant time). libjwt 1.10 reports every failure as a bare EINVAL and trusts whatever
 * alg the header names, so this file first checks the token's shape and header itself,
 * accepting only "HS256", and parses the payload itself (strict base64url, duplicate keys
 * refused) so that claim errors can name the claim. Claims are read only after the
 * signature has been verified. Nothing here logs: the caller logs err, which never
 * contains the token, the secret or claim values. */
#include "auth.h"

#include <errno.h>
#include <jansson.h>
#include <jwt.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "base/mem.h"

#define AUTH_SCOPE_STR_MAX 1024              /* bytes of the scope claim as a string */
#define AUTH_SCOPE_ARRAY_MAX 32              /* entries of the scope claim as an array */
#define AUTH_HS256_SIG_B64_LEN 43            /* 32 bytes in unpadded base64url */
#define AUTH_NUMERIC_DATE_MAX 253402300799.0 /* 9999-12-31T23:59:59Z */

static int auth_fail(char *err, size_t errlen, int rc, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static int auth_fail(char *err, size_t errlen, int rc, const char *fmt, ...) {
  if (err && errlen > 0) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
  }
  return rc;
}

void coord_auth_principal_init_any(coord_auth_principal_t *p) {
  memset(p, 0, sizeof(*p));
  p->any_tenant = true;
  strcpy(p->tenant, "*");
  p->scopes = COORD_AUTH_SCOPE_ALL;
}

void coord_auth_principal_close(coord_auth_principal_t *p) {
  if (!p) return;
  for (size_t i = 0; i < p->nrooms; i++) free(p->rooms[i]);
  free(p->rooms);
  memset(p, 0, sizeof(*p));
}

void coord_auth_principal_move(coord_auth_principal_t *dst, coord_auth_principal_t *src) {
  *dst = *src;
  memset(src, 0, sizeof *src);
}

bool coord_auth_exp_passed(int64_t exp_s, int64_t now_s) { return exp_s != 0 && now_s >= exp_s; }

bool coord_auth_principal_expired(const coord_auth_principal_t *p, int64_t now_s) {
  return coord_auth_exp_passed(p->exp_s, now_s);
}

/* ---- names and globs ---- */

bool coord_auth_tenant_valid(const char *tenant) {
  if (!tenant) return false;
  size_t n = 0;
  for (; tenant[n]; n++) {
    char c = tenant[n];
    if (n >= COORD_AUTH_TENANT_MAX) return false;
    if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_' || c == '-')) return false;
  }
  return n > 0;
}

static bool auth_room_char(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' ||
         c == '.' || c == ':' || c == '/' || c == '-';
}

bool coord_auth_glob_valid(const char *pattern) {
  if (!pattern) return false;
  size_t n = 0;
  for (; pattern[n]; n++) {
    if (n >= COORD_AUTH_GLOB_MAX) return false;
    char c = pattern[n];
    if (!auth_room_char(c) && c != '*' && c != '?') return false;
  }
  return n > 0;
}

enum { GLOB_LIT, GLOB_ONE, GLOB_STAR, GLOB_DSTAR };

typedef struct auth_glob_tok {
  unsigned char kind; /* GLOB_* */
  char c;             /* the literal for GLOB_LIT */
} auth_glob_tok_t;

/* The matcher simulates the pattern as an automaton: live[j] says "the first j tokens
 * match the text read so far". Each text character advances every live state at once,
 * so the cost is tokens x characters whatever the pattern, unlike backtracking. */
bool coord_auth_glob_match(const char *pattern, const char *text) {
  if (!pattern || !text) return false;
  size_t plen = strnlen(pattern, COORD_AUTH_GLOB_MAX + 1);
  if (plen > COORD_AUTH_GLOB_MAX) return false;

  auth_glob_tok_t tok[COORD_AUTH_GLOB_MAX];
  size_t n = 0;
  for (size_t i = 0; i < plen;) {
    if (pattern[i] == '*') {
      size_t run = 0;
      while (pattern[i] == '*') i++, run++;
      tok[n++].kind = run >= 2 ? GLOB_DSTAR : GLOB_STAR;
    } else if (pattern[i] == '?') {
      tok[n++].kind = GLOB_ONE;
      i++;
    } else {
      tok[n].kind = GLOB_LIT;
      tok[n++].c = pattern[i++];
    }
  }

  bool a[COORD_AUTH_GLOB_MAX + 1], b[COORD_AUTH_GLOB_MAX + 1];
  bool *live = a, *next = b;
  memset(live, 0, (n + 1) * sizeof(bool));
  live[0] = true;
  /* A star may match nothing: a live state before a star makes the one after it live. */
  for (size_t j = 0; j < n; j++)
    if (live[j] && tok[j].kind >= GLOB_STAR) live[j + 1] = true;

  for (const char *t = text; *t; t++) {
    char c = *t;
    bool any = false;
    memset(next, 0, (n + 1) * sizeof(bool));
    for (size_t j = 0; j < n; j++) {
      if (!live[j]) continue;
      switch (tok[j].kind) {
        case GLOB_LIT:
          if (tok[j].c == c) next[j + 1] = any = true;
          break;
        case GLOB_ONE:
          if (c != '/') next[j + 1] = any = true;
          break;
        case GLOB_STAR:
          if (c != '/') next[j] = any = true;
          break;
        case GLOB_DSTAR:
          next[j] = any = true;
          break;
      }
    }
    if (!any) return false;
    for (size_t j = 0; j < n; j++)
      if (next[j] && tok[j].kind >= GLOB_STAR) next[j + 1] = true;
    bool *tmp = live;
    live = next;
    next = tmp;
  }
  return live[n];
}

/* ---- authorization ---- */

bool coord_auth_allows(const coord_auth_principal_t *p, unsigned action, const char *topic_tenant,
                       const char *room) {
  if (!p || !topic_tenant) return false;
  if (action != COORD_AUTH_SCOPE_SUBSCRIBE && action != COORD_AUTH_SCOPE_PUBLISH &&
      action != COORD_AUTH_SCOPE_ADMIN)
    return false;
  if (!p->any_tenant && (p->tenant[0] == '\0' || strcmp(p->tenant, topic_tenant) != 0))
    return false;
  if (!(p->scopes & action) && !(p->scopes & COORD_AUTH_SCOPE_ADMIN)) return false;
  if (p->nrooms == 0) return true;
  if (!room) return false;
  for (size_t i = 0; i < p->nrooms; i++)
    if (coord_auth_glob_match(p->rooms[i], room)) return true;
  return false;
}

/* ---- bearer header ---- */

static bool auth_b64token_char(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' ||
         c == '.' || c == '_' || c == '~' || c == '+' || c == '/';
}

int coord_auth_extract_bearer(const char *value, char *out, size_t outlen) {
  if (!value) return -EINVAL;
  const char *s = value;
  while (*s == ' ' || *s == '\t') s++;
  if (strncasecmp(s, "bearer", 6) != 0) return -EINVAL;
  s += 6;
  if (*s != ' ' && *s != '\t') return -EINVAL;
  while (*s == ' ' || *s == '\t') s++;
  const char *tok = s;
  while (auth_b64token_char(*s)) s++;
  while (*s == '=') s++;
  size_t len = (size_t)(s - tok);
  while (*s == ' ' || *s == '\t') s++;
  if (len == 0 || *s != '\0') return -EINVAL;
  if (!out || len + 1 > outlen) return -EMSGSIZE;
  memcpy(out, tok, len);
  out[len] = '\0';
  return 0;
}

/* ---- token structure ---- */

static int auth_b64url_value(char c) {
  if (c >= 'A' && c <= 'Z') return c - 'A';
  if (c >= 'a' && c <= 'z') return c - 'a' + 26;
  if (c >= '0' && c <= '9') return c - '0' + 52;
  if (c == '-') return 62;
  if (c == '_') return 63;
  return -1;
}

/* Whether s[0..len) is unpadded base64url that can decode (length mod 4 is not 1). */
static bool auth_b64url_valid(const char *s, size_t len) {
  if (len % 4 == 1) return false;
  for (size_t i = 0; i < len; i++)
    if (auth_b64url_value(s[i]) < 0) return false;
  return true;
}

/* Decodes s[0..len), already checked by auth_b64url_valid, into a new buffer of
 * *outlen bytes plus a NUL. The caller frees it. */
static unsigned char *auth_b64url_decode(const char *s, size_t len, size_t *outlen) {
  unsigned char *out = xmalloc(len / 4 * 3 + 3);
  size_t o = 0;
  uint32_t acc = 0;
  int bits = 0;
  for (size_t i = 0; i < len; i++) {
    acc = (acc << 6) | (uint32_t)auth_b64url_value(s[i]);
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      out[o++] = (unsigned char)(acc >> bits);
      acc &= (1u << bits) - 1;
    }
  }
  out[o] = '\0';
  *outlen = o;
  return out;
}

/* Decodes one part into a JSON object; what names the part in errors. */
static int auth_part_json(const char *s, size_t len, const char *what, json_t **out, char *err,
                          size_t errlen) {
  size_t n;
  unsigned char *raw = auth_b64url_decode(s, len, &n);
  json_error_t jerr;
  json_t *js = json_loadb((const char *)raw, n, JSON_REJECT_DUPLICATES, &jerr);
  free(raw);
  if (!js) return auth_fail(err, errlen, -EINVAL, "%s: invalid JSON", what);
  if (!json_is_object(js)) {
    json_decref(js);
    return auth_fail(err, errlen, -EINVAL, "%s: not a JSON object", what);
  }
  *out = js;
  return 0;
}

static int auth_check_header(const json_t *hdr, char *err, size_t errlen) {
  const json_t *alg = json_object_get(hdr, "alg");
  if (!json_is_string(alg) || strcmp(json_string_value(alg), "HS256") != 0)
    return auth_fail(err, errlen, -EINVAL, "alg must be HS256");
  const json_t *typ = json_object_get(hdr, "typ");
  if (typ && (!json_is_string(typ) || strcasecmp(json_string_value(typ), "JWT") != 0))
    return auth_fail(err, errlen, -EINVAL, "header typ: must be JWT");
  /* RFC 7515 4.1.11: extensions listed in crit must be understood; we know none. */
  if (json_object_get(hdr, "crit"))
    return auth_fail(err, errlen, -EINVAL, "header crit: unsupported");
  return 0;
}

/* ---- claims ---- */

/* Reads a NumericDate claim; returns 0 (found), 1 (absent) or -EINVAL. */
static int auth_claim_time(const json_t *claims, const char *name, int64_t *out, char *err,
                           size_t errlen) {
  const json_t *v = json_object_get(claims, name);
  if (!v) return 1;
  double d;
  if (json_is_integer(v)) {
    d = (double)json_integer_value(v);
  } else if (json_is_real(v)) {
    d = json_real_value(v);
  } else {
    return auth_fail(err, errlen, -EINVAL, "claim %s: must be a number", name);
  }
  if (!(d >= 0 && d <= AUTH_NUMERIC_DATE_MAX))
    return auth_fail(err, errlen, -EINVAL, "claim %s: out of range", name);
  *out = (int64_t)d; /* d >= 0, so this truncation is floor */
  return 0;
}

static int auth_scope_word(const char *w, size_t len, unsigned *scopes) {
  if (len == 9 && memcmp(w, "subscribe", 9) == 0)
    *scopes |= COORD_AUTH_SCOPE_SUBSCRIBE;
  else if (len == 7 && memcmp(w, "publish", 7) == 0)
    *scopes |= COORD_AUTH_SCOPE_PUBLISH;
  else if (len == 5 && memcmp(w, "admin", 5) == 0)
    *scopes |= COORD_AUTH_SCOPE_ADMIN;
  /* Other words are ignored: issuers shared with other services add their own scopes. */
  return 0;
}

static int auth_claim_scope(const json_t *claims, unsigned *out, char *err, size_t errlen) {
  const json_t *v = json_object_get(claims, "scope");
  unsigned scopes = 0;
  if (!v) {
    *out = COORD_AUTH_SCOPE_SUBSCRIBE;
    return 0;
  }
  if (json_is_string(v)) {
    const char *s = json_string_value(v);
    size_t len = json_string_length(v);
    if (len > AUTH_SCOPE_STR_MAX)
      return auth_fail(err, errlen, -EINVAL, "claim scope: longer than %d bytes",
                       AUTH_SCOPE_STR_MAX);
    for (size_t i = 0; i < len;) {
      while (i < len && s[i] == ' ') i++;
      size_t start = i;
      while (i < len && s[i] != ' ') i++;
      if (i > start) auth_scope_word(s + start, i - start, &scopes);
    }
  } else if (json_is_array(v)) {
    if (json_array_size(v) > AUTH_SCOPE_ARRAY_MAX)
      return auth_fail(err, errlen, -EINVAL, "claim scope: more than %d entries",
                       AUTH_SCOPE_ARRAY_MAX);
    size_t i;
    const json_t *e;
    json_array_foreach(v, i, e) {
      if (!json_is_string(e))
        return auth_fail(err, errlen, -EINVAL, "claim scope[%zu]: must be a string", i);
      auth_scope_word(json_string_value(e), json_string_length(e), &scopes);
    }
  } else {
    return auth_fail(err, errlen, -EINVAL, "claim scope: must be a string or an array");
  }
  if (scopes == 0)
    return auth_fail(err, errlen, -EINVAL, "claim scope: names none of subscribe, publish, admin");
  *out = scopes;
  return 0;
}

/* Fills p->rooms from the rooms claim (p->rooms stays NULL when absent). */
static int auth_claim_rooms(const json_t *claims, coord_auth_principal_t *p, char *err,
                            size_t errlen) {
  const json_t *v = json_object_get(claims, "rooms");
  if (!v) return 0;
  if (!json_is_array(v))
    return auth_fail(err, errlen, -EINVAL, "claim rooms: must be an array of globs");
  size_t n = json_array_size(v);
  if (n == 0)
    return auth_fail(err, errlen, -EINVAL,
                     "claim rooms: empty (omit the claim to allow every room)");
  if (n > COORD_AUTH_ROOMS_MAX)
    return auth_fail(err, errlen, -EINVAL, "claim rooms: more than %d globs", COORD_AUTH_ROOMS_MAX);
  for (size_t i = 0; i < n; i++) {
    const json_t *e = json_array_get(v, i);
    if (!json_is_string(e))
      return auth_fail(err, errlen, -EINVAL, "claim rooms[%zu]: must be a string", i);
    if (strlen(json_string_value(e)) != json_string_length(e) ||
        !coord_auth_glob_valid(json_string_value(e)))
      return auth_fail(err, errlen, -EINVAL,
                       "claim rooms[%zu]: must be 1..%d bytes of [A-Za-z0-9_.:/-*?]", i,
                       COORD_AUTH_GLOB_MAX);
  }
  p->rooms = xcalloc(n, sizeof(char *));
  for (size_t i = 0; i < n; i++) {
    p->rooms[i] = xstrdup(json_string_value(json_array_get(v, i)));
    p->nrooms++;
  }
  return 0;
}

static int auth_claims(const json_t *claims, int64_t now_s, int64_t leeway_s,
                       coord_auth_principal_t *p, char *err, size_t errlen) {
  int64_t exp = 0, nbf = 0;
  int rc = auth_claim_time(claims, "exp", &exp, err, errlen);
  if (rc < 0) return rc;
  if (rc == 1) return auth_fail(err, errlen, -EINVAL, "claim exp: missing");
  if (now_s - leeway_s >= exp) return auth_fail(err, errlen, -EKEYEXPIRED, "token expired");
  rc = auth_claim_time(claims, "nbf", &nbf, err, errlen);
  if (rc < 0) return rc;
  if (rc == 0 && nbf > now_s + leeway_s)
    return auth_fail(err, errlen, -EACCES, "token not yet valid (nbf)");

  const json_t *tenant = json_object_get(claims, "tenant");
  if (!tenant) return auth_fail(err, errlen, -EINVAL, "claim tenant: missing");
  if (!json_is_string(tenant) || strlen(json_string_value(tenant)) != json_string_length(tenant) ||
      !coord_auth_tenant_valid(json_string_value(tenant)))
    return auth_fail(err, errlen, -EINVAL, "claim tenant: must match [a-z0-9_-]{1,64}");

  rc = auth_claim_scope(claims, &p->scopes, err, errlen);
  if (rc < 0) return rc;
  rc = auth_claim_rooms(claims, p, err, errlen);
  if (rc < 0) return rc;
  strcpy(p->tenant, json_string_value(tenant));
  p->exp_s = exp;
  return 0;
}

/* ---- verification ---- */

int coord_auth_verify_jwt(const coord_auth_jwt_cfg_t *cfg, const char *token, int64_t now_s,
                          coord_auth_principal_t *out, char *err, size_t errlen) {
  json_t *hdr = NULL, *claims = NULL;
  jwt_t *jwt = NULL;
  int rc;

  if (err && errlen > 0) err[0] = '\0';
  if (out) memset(out, 0, sizeof(*out));
  if (!cfg || !token || !out) return auth_fail(err, errlen, -EINVAL, "bad arguments");
  if (!cfg->secret || cfg->secret_len == 0 || cfg->secret_len > INT_MAX)
    return auth_fail(err, errlen, -EINVAL, "no jwt secret configured");
  size_t max = cfg->max_token_bytes ? cfg->max_token_bytes : COORD_AUTH_TOKEN_MAX_DEFAULT;
  int64_t leeway = cfg->leeway_s > 0 ? cfg->leeway_s : 0;

  size_t len = strnlen(token, max + 1);
  if (len > max) return auth_fail(err, errlen, -EMSGSIZE, "token too large (max %zu bytes)", max);
  if (len == 0) return auth_fail(err, errlen, -EINVAL, "token empty");

  const char *dot1 = memchr(token, '.', len);
  const char *dot2 = dot1 ? memchr(dot1 + 1, '.', len - (size_t)(dot1 + 1 - token)) : NULL;
  if (!dot2 || memchr(dot2 + 1, '.', len - (size_t)(dot2 + 1 - token)))
    return auth_fail(err, errlen, -EINVAL, "malformed token: expected header.payload.signature");
  size_t hlen = (size_t)(dot1 - token), plen = (size_t)(dot2 - dot1 - 1);
  size_t slen = len - (size_t)(dot2 + 1 - token);
  if (hlen == 0 || !auth_b64url_valid(token, hlen))
    return auth_fail(err, errlen, -EINVAL, "header: malformed base64url");
  if (plen == 0 || !auth_b64url_valid(dot1 + 1, plen))
    return auth_fail(err, errlen, -EINVAL, "payload: malformed base64url");
  if (!auth_b64url_valid(dot2 + 1, slen))
    return auth_fail(err, errlen, -EINVAL, "signature: malformed base64url");

  rc = auth_part_json(token, hlen, "header", &hdr, err, errlen);
  if (rc < 0) goto out;
  rc = auth_check_header(hdr, err, errlen);
  if (rc < 0) goto out;
  if (slen != AUTH_HS256_SIG_B64_LEN) {
    rc = auth_fail(err, errlen, -EINVAL, "signature: wrong length for HS256");
    goto out;
  }
  rc = auth_part_json(dot1 + 1, plen, "payload", &claims, err, errlen);
  if (rc < 0) goto out;

  /* The header and payload were both checked above, so a failure here is the signature
   * (or, rarely, memory). */
  int jrc = jwt_decode(&jwt, token, cfg->secret, (int)cfg->secret_len);
  if (jrc != 0 || !jwt) {
    rc = jrc == ENOMEM ? auth_fail(err, errlen, -ENOMEM, "out of memory")
                       : auth_fail(err, errlen, -EACCES, "signature mismatch");
    goto out;
  }
  if (jwt_get_alg(jwt) != JWT_ALG_HS256) {
    rc = auth_fail(err, errlen, -EINVAL, "alg must be HS256");
    goto out;
  }

  rc = auth_claims(claims, now_s, leeway, out, err, errlen);

out:
  if (rc < 0) coord_auth_principal_close(out);
  if (jwt) jwt_free(jwt);
  json_decref(hdr);
  json_decref(claims);
  return rc;
}

/* ---- minting ---- */

int coord_auth_mint_jwt(const unsigned char *secret, size_t secret_len,
                        const coord_auth_claims_t *c, char **token_out, char *err, size_t errlen) {
  json_t *claims = NULL;
  char *body = NULL, *tok = NULL;
  jwt_t *jwt = NULL;
  int rc = 0;

  if (err && errlen > 0) err[0] = '\0';
  if (!token_out || !c) return auth_fail(err, errlen, -EINVAL, "bad arguments");
  *token_out = NULL;
  if (!secret || secret_len == 0 || secret_len > INT_MAX)
    return auth_fail(err, errlen, -EINVAL, "secret: empty");
  if (!coord_auth_tenant_valid(c->tenant))
    return auth_fail(err, errlen, -EINVAL, "tenant: must match [a-z0-9_-]{1,64}");
  if (c->scopes & ~(unsigned)COORD_AUTH_SCOPE_ALL)
    return auth_fail(err, errlen, -EINVAL, "scopes: unknown bits");
  if (c->exp_s <= 0) return auth_fail(err, errlen, -EINVAL, "exp: required");
  if (c->nbf_s < 0) return auth_fail(err, errlen, -EINVAL, "nbf: negative");
  if (c->nrooms > COORD_AUTH_ROOMS_MAX || (c->nrooms > 0 && !c->rooms))
    return auth_fail(err, errlen, -EINVAL, "rooms: 1..%d globs", COORD_AUTH_ROOMS_MAX);
  for (size_t i = 0; i < c->nrooms; i++)
    if (!coord_auth_glob_valid(c->rooms[i]))
      return auth_fail(err, errlen, -EINVAL, "rooms[%zu]: invalid glob", i);

  claims = json_object();
  json_object_set_new(claims, "tenant", json_string(c->tenant));
  json_object_set_new(claims, "exp", json_integer((json_int_t)c->exp_s));
  if (c->nbf_s > 0) json_object_set_new(claims, "nbf", json_integer((json_int_t)c->nbf_s));
  if (c->scopes) {
    char scope[32] = "";
    if (c->scopes & COORD_AUTH_SCOPE_SUBSCRIBE) strcat(scope, " subscribe");
    if (c->scopes & COORD_AUTH_SCOPE_PUBLISH) strcat(scope, " publish");
    if (c->scopes & COORD_AUTH_SCOPE_ADMIN) strcat(scope, " admin");
    json_object_set_new(claims, "scope", json_string(scope + 1));
  }
  if (c->nrooms > 0) {
    json_t *rooms = json_array();
    for (size_t i = 0; i < c->nrooms; i++) json_array_append_new(rooms, json_string(c->rooms[i]));
    json_object_set_new(claims, "rooms", rooms);
  }
  body = json_dumps(claims, JSON_COMPACT);
  if (!body) {
    rc = auth_fail(err, errlen, -ENOMEM, "out of memory");
    goto out;
  }
  if (jwt_new(&jwt) != 0 || jwt_add_grants_json(jwt, body) != 0 ||
      jwt_set_alg(jwt, JWT_ALG_HS256, secret, (int)secret_len) != 0 ||
      !(tok = jwt_encode_str(jwt))) {
    rc = auth_fail(err, errlen, -ENOMEM, "libjwt failed to encode");
    goto out;
  }
  *token_out = xstrdup(tok);

out:
  free(tok);
  free(body);
  if (jwt) jwt_free(jwt);
  json_decref(claims);
  return rc;
}
