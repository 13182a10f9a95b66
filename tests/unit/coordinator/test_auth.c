/* Tests for coordinator/auth.c: JWT verification, claims, authorization, globs, bearer.
 *
 * Tokens come from three sources: coord_auth_mint_jwt (the happy path), libjwt directly
 * (other algorithms, claims the minting helper refuses to write), and test_craft below,
 * which signs arbitrary header and payload text with HMAC-SHA256 so that hostile headers
 * (lower-case alg, duplicate keys, crit) carry a valid signature and can only be refused
 * for the reason under test. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <jwt.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "auth.h"

#define NOW 1764300000
static const unsigned char SECRET[] = "test-secret-0123456789abcdef-0123456789";
#define SECRET_LEN (sizeof(SECRET) - 1)

static coord_auth_jwt_cfg_t test_cfg(void) {
  coord_auth_jwt_cfg_t cfg = {
      .secret = SECRET, .secret_len = SECRET_LEN, .leeway_s = 30, .max_token_bytes = 0};
  return cfg;
}

static void test_b64url(const unsigned char *in, size_t n, char *out) {
  static const char tbl[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
  size_t o = 0, i = 0;
  for (; i + 2 < n; i += 3) {
    uint32_t v = (uint32_t)in[i] << 16 | (uint32_t)in[i + 1] << 8 | in[i + 2];
    out[o++] = tbl[v >> 18 & 63], out[o++] = tbl[v >> 12 & 63];
    out[o++] = tbl[v >> 6 & 63], out[o++] = tbl[v & 63];
  }
  if (n - i == 1) {
    uint32_t v = (uint32_t)in[i] << 16;
    out[o++] = tbl[v >> 18 & 63], out[o++] = tbl[v >> 12 & 63];
  } else if (n - i == 2) {
    uint32_t v = (uint32_t)in[i] << 16 | (uint32_t)in[i + 1] << 8;
    out[o++] = tbl[v >> 18 & 63], out[o++] = tbl[v >> 12 & 63], out[o++] = tbl[v >> 6 & 63];
  }
  out[o] = '\0';
}

/* header.payload.HMAC-SHA256(key) over arbitrary JSON text. Caller frees. */
static char *test_craft(const char *header, const char *payload, const unsigned char *key,
                        size_t keylen) {
  size_t hl = strlen(header), pl = strlen(payload);
  char *tok = malloc((hl + pl) * 2 + 128);
  assert_non_null(tok);
  test_b64url((const unsigned char *)header, hl, tok);
  strcat(tok, ".");
  test_b64url((const unsigned char *)payload, pl, tok + strlen(tok));
  unsigned char mac[EVP_MAX_MD_SIZE];
  unsigned int maclen = 0;
  assert_non_null(
      HMAC(EVP_sha256(), key, (int)keylen, (const unsigned char *)tok, strlen(tok), mac, &maclen));
  strcat(tok, ".");
  test_b64url(mac, maclen, tok + strlen(tok));
  return tok;
}

static char *test_craft_hs256(const char *payload) {
  return test_craft("{\"alg\":\"HS256\",\"typ\":\"JWT\"}", payload, SECRET, SECRET_LEN);
}

/* A token made by libjwt itself with any alg and raw JSON claims. Caller frees. */
static char *test_libjwt_token(jwt_alg_t alg, const unsigned char *key, size_t keylen,
                               const char *claims_json) {
  jwt_t *jwt = NULL;
  assert_int_equal(jwt_new(&jwt), 0);
  assert_int_equal(jwt_add_grants_json(jwt, claims_json), 0);
  assert_int_equal(jwt_set_alg(jwt, alg, key, (int)keylen), 0);
  char *tok = jwt_encode_str(jwt);
  assert_non_null(tok);
  jwt_free(jwt);
  return tok;
}

static char *test_mint(const char *tenant, unsigned scopes, const char *const *rooms, size_t nrooms,
                       int64_t exp, int64_t nbf) {
  coord_auth_claims_t c = {.tenant = tenant,
                           .scopes = scopes,
                           .rooms = rooms,
                           .nrooms = nrooms,
                           .exp_s = exp,
                           .nbf_s = nbf};
  char *tok = NULL;
  char err[128];
  assert_int_equal(coord_auth_mint_jwt(SECRET, SECRET_LEN, &c, &tok, err, sizeof(err)), 0);
  assert_non_null(tok);
  return tok;
}

/* Verifies tok with the default test config, expects failure rc with a message that
 * contains want, and that the principal was left allowing nothing. */
static void expect_refused(const char *tok, int rc, const char *want) {
  coord_auth_jwt_cfg_t cfg = test_cfg();
  coord_auth_principal_t p;
  char err[160] = "";
  memset(&p, 0x5a, sizeof(p));
  int got = coord_auth_verify_jwt(&cfg, tok, NOW, &p, err, sizeof(err));
  if (got != rc || !strstr(err, want))
    fail_msg("want %d \"%s\", got %d \"%s\"", rc, want, got, err);
  assert_null(p.rooms);
  assert_int_equal(p.scopes, 0);
  assert_false(coord_auth_allows(&p, COORD_AUTH_SCOPE_SUBSCRIBE, p.tenant, "x"));
  coord_auth_principal_close(&p);
}

static void expect_accepted(const char *tok, coord_auth_principal_t *p) {
  coord_auth_jwt_cfg_t cfg = test_cfg();
  char err[160] = "";
  int rc = coord_auth_verify_jwt(&cfg, tok, NOW, p, err, sizeof(err));
  if (rc != 0) fail_msg("verify failed: %d %s", rc, err);
}

/* ---- verification ---- */

static void test_verify_accepts_a_valid_token_and_fills_the_principal(void **state) {
  (void)state;
  const char *rooms[] = {"runs/**", "chat-?"};
  char *tok = test_mint("acme", COORD_AUTH_SCOPE_SUBSCRIBE | COORD_AUTH_SCOPE_PUBLISH, rooms, 2,
                        NOW + 600, NOW - 10);
  coord_auth_principal_t p;
  expect_accepted(tok, &p);
  assert_false(p.any_tenant);
  assert_string_equal(p.tenant, "acme");
  assert_int_equal(p.scopes, COORD_AUTH_SCOPE_SUBSCRIBE | COORD_AUTH_SCOPE_PUBLISH);
  assert_int_equal(p.nrooms, 2);
  assert_string_equal(p.rooms[0], "runs/**");
  assert_string_equal(p.rooms[1], "chat-?");
  assert_int_equal(p.exp_s, NOW + 600);
  assert_false(coord_auth_principal_expired(&p, NOW + 599));
  assert_true(coord_auth_principal_expired(&p, NOW + 600));
  /* the expiry alone, as a WebSocket session keeps it */
  assert_false(coord_auth_exp_passed(p.exp_s, NOW + 599));
  assert_true(coord_auth_exp_passed(p.exp_s, NOW + 600));
  assert_false(coord_auth_exp_passed(0, INT64_MAX)); /* 0 = never */
  coord_auth_principal_close(&p);
  coord_auth_principal_close(&p); /* idempotent */
  assert_null(p.rooms);
  free(tok);
}

static void test_verify_refuses_a_token_signed_with_another_secret(void **state) {
  (void)state;
  static const unsigned char other[] = "another-secret-0123456789abcdef-012345";
  char *tok = test_craft("{\"alg\":\"HS256\",\"typ\":\"JWT\"}",
                         "{\"tenant\":\"acme\",\"exp\":1764300600}", other, sizeof(other) - 1);
  expect_refused(tok, -EACCES, "signature mismatch");
  free(tok);
}

static void test_verify_refuses_a_payload_changed_after_signing(void **state) {
  (void)state;
  char *good = test_mint("acme", COORD_AUTH_SCOPE_SUBSCRIBE, NULL, 0, NOW + 600, 0);
  char *evil = test_craft_hs256("{\"tenant\":\"evil\",\"exp\":1764300600}");
  /* acme's header and signature around evil's payload */
  char *mixed = malloc(strlen(good) + strlen(evil) + 1);
  assert_non_null(mixed);
  const char *gd1 = strchr(good, '.'), *gd2 = strrchr(good, '.');
  const char *ed1 = strchr(evil, '.'), *ed2 = strrchr(evil, '.');
  sprintf(mixed, "%.*s%.*s%s", (int)(gd1 - good), good, (int)(ed2 - ed1), ed1, gd2);
  expect_refused(mixed, -EACCES, "signature mismatch");
  free(mixed);
  free(evil);
  free(good);
}

static void test_verify_refuses_alg_none_with_or_without_a_signature(void **state) {
  (void)state;
  char *none = test_libjwt_token(JWT_ALG_NONE, NULL, 0, "{\"tenant\":\"acme\",\"exp\":1764300600}");
  expect_refused(none, -EINVAL, "alg must be HS256");
  /* the same, with a signature that would be valid under HS256 */
  char *signed_none = test_craft("{\"alg\":\"none\"}", "{\"tenant\":\"acme\",\"exp\":1764300600}",
                                 SECRET, SECRET_LEN);
  expect_refused(signed_none, -EINVAL, "alg must be HS256");
  /* no alg at all */
  char *no_alg = test_craft("{\"typ\":\"JWT\"}", "{\"tenant\":\"acme\",\"exp\":1764300600}", SECRET,
                            SECRET_LEN);
  expect_refused(no_alg, -EINVAL, "alg must be HS256");
  free(no_alg);
  free(signed_none);
  free(none);
}

static void test_verify_refuses_hs512_and_hs384_even_with_the_right_secret(void **state) {
  (void)state;
  const char *claims = "{\"tenant\":\"acme\",\"exp\":1764300600}";
  char *hs512 = test_libjwt_token(JWT_ALG_HS512, SECRET, SECRET_LEN, claims);
  expect_refused(hs512, -EINVAL, "alg must be HS256");
  char *hs384 = test_libjwt_token(JWT_ALG_HS384, SECRET, SECRET_LEN, claims);
  expect_refused(hs384, -EINVAL, "alg must be HS256");
  free(hs384);
  free(hs512);
}

static void test_verify_refuses_a_header_alg_that_differs_from_hs256_in_any_way(void **state) {
  (void)state;
  const char *claims = "{\"tenant\":\"acme\",\"exp\":1764300600}";
  /* libjwt 1.10 itself accepts "hs256" (strcasecmp); we must not. */
  static const char *headers[] = {
      "{\"alg\":\"hs256\"}",
      "{\"alg\":\"HS256 \"}",
      "{\"alg\":[\"HS256\"]}",
      "{\"alg\":\"HS512\",\"typ\":\"JWT\"}", /* signed with HS256 but claims HS512 */
      "{\"alg\":\"RS256\"}",
  };
  for (size_t i = 0; i < sizeof(headers) / sizeof(headers[0]); i++) {
    char *tok = test_craft(headers[i], claims, SECRET, SECRET_LEN);
    expect_refused(tok, -EINVAL, "alg must be HS256");
    free(tok);
  }
  /* a second alg after HS256 must not be silently ignored or used */
  char *dup = test_craft("{\"alg\":\"HS256\",\"alg\":\"none\"}", claims, SECRET, SECRET_LEN);
  expect_refused(dup, -EINVAL, "header: invalid JSON");
  free(dup);
  char *crit = test_craft("{\"alg\":\"HS256\",\"crit\":[\"b64\"],\"b64\":false}", claims, SECRET,
                          SECRET_LEN);
  expect_refused(crit, -EINVAL, "header crit");
  free(crit);
  char *typ = test_craft("{\"alg\":\"HS256\",\"typ\":\"JOSE+JSON\"}", claims, SECRET, SECRET_LEN);
  expect_refused(typ, -EINVAL, "header typ");
  free(typ);
}

static void test_verify_refuses_expired_tokens_beyond_the_leeway_only(void **state) {
  (void)state;
  char *gone = test_mint("acme", 0, NULL, 0, NOW - 31, 0);
  expect_refused(gone, -EKEYEXPIRED, "token expired");
  char *edge = test_mint("acme", 0, NULL, 0, NOW - 30, 0);
  expect_refused(edge, -EKEYEXPIRED, "token expired");
  char *within = test_mint("acme", 0, NULL, 0, NOW - 29, 0);
  coord_auth_principal_t p;
  expect_accepted(within, &p);
  coord_auth_principal_close(&p);
  /* with no leeway, expiry is exact */
  coord_auth_jwt_cfg_t cfg = test_cfg();
  cfg.leeway_s = 0;
  char err[128];
  assert_int_equal(coord_auth_verify_jwt(&cfg, within, NOW, &p, err, sizeof(err)), -EKEYEXPIRED);
  char *now_exp = test_mint("acme", 0, NULL, 0, NOW, 0);
  assert_int_equal(coord_auth_verify_jwt(&cfg, now_exp, NOW, &p, err, sizeof(err)), -EKEYEXPIRED);
  assert_int_equal(coord_auth_verify_jwt(&cfg, now_exp, NOW - 1, &p, err, sizeof(err)), 0);
  coord_auth_principal_close(&p);
  free(now_exp);
  free(within);
  free(edge);
  free(gone);
}

static void test_verify_refuses_a_token_whose_nbf_is_in_the_future(void **state) {
  (void)state;
  char *later = test_mint("acme", 0, NULL, 0, NOW + 600, NOW + 31);
  expect_refused(later, -EACCES, "not yet valid");
  char *skewed = test_mint("acme", 0, NULL, 0, NOW + 600, NOW + 30);
  coord_auth_principal_t p;
  expect_accepted(skewed, &p);
  coord_auth_principal_close(&p);
  char *bad = test_craft_hs256("{\"tenant\":\"acme\",\"exp\":1764300600,\"nbf\":\"soon\"}");
  expect_refused(bad, -EINVAL, "claim nbf: must be a number");
  free(bad);
  free(skewed);
  free(later);
}

static void test_verify_requires_exp_as_a_number_in_range(void **state) {
  (void)state;
  static const struct {
    const char *payload;
    const char *want;
  } cases[] = {
      {"{\"tenant\":\"acme\"}", "claim exp: missing"},
      {"{\"tenant\":\"acme\",\"exp\":\"1764300600\"}", "claim exp: must be a number"},
      {"{\"tenant\":\"acme\",\"exp\":null}", "claim exp: must be a number"},
      {"{\"tenant\":\"acme\",\"exp\":-5}", "claim exp: out of range"},
      {"{\"tenant\":\"acme\",\"exp\":1e300}", "claim exp: out of range"},
  };
  for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
    char *tok = test_craft_hs256(cases[i].payload);
    expect_refused(tok, -EINVAL, cases[i].want);
    free(tok);
  }
  /* a fractional NumericDate is allowed (RFC 7519) */
  char *frac = test_craft_hs256("{\"tenant\":\"acme\",\"exp\":1764300600.75}");
  coord_auth_principal_t p;
  expect_accepted(frac, &p);
  assert_int_equal(p.exp_s, 1764300600);
  coord_auth_principal_close(&p);
  free(frac);
}

static void test_verify_refuses_a_token_without_tenant(void **state) {
  (void)state;
  char *tok = test_libjwt_token(JWT_ALG_HS256, SECRET, SECRET_LEN,
                                "{\"exp\":1764300600,\"scope\":\"admin\"}");
  expect_refused(tok, -EINVAL, "claim tenant: missing");
  free(tok);
}

static void test_verify_refuses_tenants_outside_the_allowed_characters(void **state) {
  (void)state;
  static const char *payloads[] = {
      "{\"tenant\":\"Acme\",\"exp\":1764300600}",
      "{\"tenant\":\"acme/room\",\"exp\":1764300600}",
      "{\"tenant\":\"\",\"exp\":1764300600}",
      "{\"tenant\":\"ac me\",\"exp\":1764300600}",
      "{\"tenant\":\"caf\\u00e9\",\"exp\":1764300600}",
      "{\"tenant\":\"*\",\"exp\":1764300600}",
      "{\"tenant\":42,\"exp\":1764300600}",
  };
  for (size_t i = 0; i < sizeof(payloads) / sizeof(payloads[0]); i++) {
    char *tok = test_craft_hs256(payloads[i]);
    expect_refused(tok, -EINVAL, "claim tenant: must match");
    free(tok);
  }
  /* jansson refuses NUL inside strings outright, so the tenant never sees it */
  char *nul = test_craft_hs256("{\"tenant\":\"acme\\u0000b\",\"exp\":1764300600}");
  expect_refused(nul, -EINVAL, "payload: invalid JSON");
  free(nul);
  char payload[160];
  snprintf(payload, sizeof(payload), "{\"tenant\":\"a-b_c-0123456789%049d\",\"exp\":1764300600}",
           0); /* 65 characters */
  char *over = test_craft_hs256(payload);
  expect_refused(over, -EINVAL, "claim tenant: must match");
  free(over);
  snprintf(payload, sizeof(payload), "{\"tenant\":\"a-b_c-0123456789%048d\",\"exp\":1764300600}",
           0); /* 64 characters */
  char *max = test_craft_hs256(payload);
  coord_auth_principal_t p;
  expect_accepted(max, &p);
  assert_int_equal(strlen(p.tenant), 64);
  coord_auth_principal_close(&p);
  free(max);
}

static void test_verify_reads_scope_as_string_or_array_and_defaults_to_subscribe(void **state) {
  (void)state;
  static const struct {
    const char *payload;
    unsigned scopes;
  } cases[] = {
      {"{\"tenant\":\"acme\",\"exp\":1764300600}", COORD_AUTH_SCOPE_SUBSCRIBE},
      {"{\"tenant\":\"acme\",\"exp\":1764300600,\"scope\":\"publish\"}", COORD_AUTH_SCOPE_PUBLISH},
      {"{\"tenant\":\"acme\",\"exp\":1764300600,\"scope\":\"  subscribe   publish \"}",
       COORD_AUTH_SCOPE_SUBSCRIBE | COORD_AUTH_SCOPE_PUBLISH},
      {"{\"tenant\":\"acme\",\"exp\":1764300600,\"scope\":[\"admin\",\"openid\"]}",
       COORD_AUTH_SCOPE_ADMIN},
      {"{\"tenant\":\"acme\",\"exp\":1764300600,\"scope\":\"openid publish profile\"}",
       COORD_AUTH_SCOPE_PUBLISH},
  };
  for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
    char *tok = test_craft_hs256(cases[i].payload);
    coord_auth_principal_t p;
    expect_accepted(tok, &p);
    assert_int_equal(p.scopes, cases[i].scopes);
    coord_auth_principal_close(&p);
    free(tok);
  }
  static const struct {
    const char *payload;
    const char *want;
  } bad[] = {
      {"{\"tenant\":\"acme\",\"exp\":1764300600,\"scope\":\"\"}", "claim scope: names none"},
      {"{\"tenant\":\"acme\",\"exp\":1764300600,\"scope\":\"Publish\"}", "claim scope: names none"},
      {"{\"tenant\":\"acme\",\"exp\":1764300600,\"scope\":[]}", "claim scope: names none"},
      {"{\"tenant\":\"acme\",\"exp\":1764300600,\"scope\":[\"publish\",7]}",
       "claim scope[1]: must be a string"},
      {"{\"tenant\":\"acme\",\"exp\":1764300600,\"scope\":{\"publish\":true}}",
       "claim scope: must be a string or an array"},
  };
  for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
    char *tok = test_craft_hs256(bad[i].payload);
    expect_refused(tok, -EINVAL, bad[i].want);
    free(tok);
  }
}

static void test_verify_refuses_rooms_claims_that_are_not_bounded_globs(void **state) {
  (void)state;
  char big[2048];
  strcpy(big, "{\"tenant\":\"acme\",\"exp\":1764300600,\"rooms\":[");
  for (int i = 0; i < COORD_AUTH_ROOMS_MAX + 1; i++) strcat(big, i ? ",\"r\"" : "\"r\"");
  strcat(big, "]}");
  char long_glob[400];
  snprintf(long_glob, sizeof(long_glob),
           "{\"tenant\":\"acme\",\"exp\":1764300600,\"rooms\":[\"%0257d\"]}", 0);
  const struct {
    const char *payload;
    const char *want;
  } cases[] = {
      {"{\"tenant\":\"acme\",\"exp\":1764300600,\"rooms\":\"runs/*\"}",
       "claim rooms: must be an array"},
      {"{\"tenant\":\"acme\",\"exp\":1764300600,\"rooms\":[]}", "claim rooms: empty"},
      {"{\"tenant\":\"acme\",\"exp\":1764300600,\"rooms\":[\"a\",null]}",
       "claim rooms[1]: must be a string"},
      {"{\"tenant\":\"acme\",\"exp\":1764300600,\"rooms\":[\"\"]}",
       "claim rooms[0]: must be 1..256"},
      {"{\"tenant\":\"acme\",\"exp\":1764300600,\"rooms\":[\"a b\"]}",
       "claim rooms[0]: must be 1..256"},
      {"{\"tenant\":\"acme\",\"exp\":1764300600,\"rooms\":[\"ok\",\"[a-z]\"]}",
       "claim rooms[1]: must be 1..256"},
      {big, "claim rooms: more than 64"},
      {long_glob, "claim rooms[0]: must be 1..256"},
  };
  for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
    char *tok = test_craft_hs256(cases[i].payload);
    expect_refused(tok, -EINVAL, cases[i].want);
    free(tok);
  }
}

static void test_verify_refuses_an_oversized_token_before_parsing(void **state) {
  (void)state;
  size_t n = COORD_AUTH_TOKEN_MAX_DEFAULT + 1;
  char *tok = malloc(n + 1);
  assert_non_null(tok);
  memset(tok, 'A', n);
  tok[n] = '\0';
  expect_refused(tok, -EMSGSIZE, "token too large");
  free(tok);

  /* a real, valid token over a configured smaller limit */
  const char *rooms[] = {"runs/aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa/**"};
  char *valid = test_mint("acme", 0, rooms, 1, NOW + 600, 0);
  coord_auth_jwt_cfg_t cfg = test_cfg();
  cfg.max_token_bytes = strlen(valid) - 1;
  coord_auth_principal_t p;
  char err[128];
  assert_int_equal(coord_auth_verify_jwt(&cfg, valid, NOW, &p, err, sizeof(err)), -EMSGSIZE);
  cfg.max_token_bytes = strlen(valid);
  assert_int_equal(coord_auth_verify_jwt(&cfg, valid, NOW, &p, err, sizeof(err)), 0);
  coord_auth_principal_close(&p);
  free(valid);
}

static void test_verify_refuses_malformed_structure_and_base64(void **state) {
  (void)state;
  char *good = test_mint("acme", 0, NULL, 0, NOW + 600, 0);
  const char *d1 = strchr(good, '.'), *d2 = strrchr(good, '.');
  int hl = (int)(d1 - good), pl = (int)(d2 - d1 - 1);
  char buf[1024];

  expect_refused("", -EINVAL, "token empty");
  expect_refused("abc", -EINVAL, "malformed token");
  expect_refused("a.b", -EINVAL, "malformed token");
  snprintf(buf, sizeof(buf), "%s.", good);
  expect_refused(buf, -EINVAL, "malformed token");
  snprintf(buf, sizeof(buf), ".%s", d1 + 1);
  expect_refused(buf, -EINVAL, "header: malformed base64url");
  /* '+', '/' and '=' are standard base64, not base64url */
  snprintf(buf, sizeof(buf), "%.*s+%s", hl - 1, good, d1);
  expect_refused(buf, -EINVAL, "header: malformed base64url");
  snprintf(buf, sizeof(buf), "%.*s.%.*s/%s", hl, good, pl - 1, d1 + 1, d2);
  expect_refused(buf, -EINVAL, "payload: malformed base64url");
  snprintf(buf, sizeof(buf), "%.*s=", (int)strlen(good) - 1, good);
  expect_refused(buf, -EINVAL, "signature: malformed base64url");
  /* a length of 4k+1 cannot be base64 */
  expect_refused("eyJhbGciOiJIUzI1NiJ9.e.sig", -EINVAL, "payload: malformed base64url");
  /* decodes, but is not JSON, or not an object */
  expect_refused("bm90IGpzb24.e30.AAAA", -EINVAL, "header: invalid JSON");
  expect_refused("WzFd.e30.AAAA", -EINVAL, "header: not a JSON object");
  /* signature of the wrong length */
  snprintf(buf, sizeof(buf), "%.*sAAAA", (int)(d2 - good + 1), good);
  expect_refused(buf, -EINVAL, "signature: wrong length");
  snprintf(buf, sizeof(buf), "%.*s", (int)(d2 - good + 1), good);
  expect_refused(buf, -EINVAL, "signature: wrong length");
  /* valid header and signature length, payload not an object */
  char *arr = test_craft_hs256("[\"tenant\",\"acme\"]");
  expect_refused(arr, -EINVAL, "payload: not a JSON object");
  free(arr);
  free(good);
}

static void test_verify_refuses_missing_arguments_and_an_empty_secret(void **state) {
  (void)state;
  char *tok = test_mint("acme", 0, NULL, 0, NOW + 600, 0);
  coord_auth_jwt_cfg_t cfg = test_cfg();
  coord_auth_principal_t p;
  char err[128];
  cfg.secret_len = 0;
  assert_int_equal(coord_auth_verify_jwt(&cfg, tok, NOW, &p, err, sizeof(err)), -EINVAL);
  assert_non_null(strstr(err, "no jwt secret"));
  cfg = test_cfg();
  assert_int_equal(coord_auth_verify_jwt(&cfg, NULL, NOW, &p, err, sizeof(err)), -EINVAL);
  assert_int_equal(coord_auth_verify_jwt(NULL, tok, NOW, &p, err, sizeof(err)), -EINVAL);
  /* err may be NULL */
  assert_int_equal(coord_auth_verify_jwt(&cfg, tok, NOW, &p, NULL, 0), 0);
  coord_auth_principal_close(&p);
  free(tok);
}

/* ---- authorization ---- */

static void test_allows_requires_a_room_to_match_one_of_the_globs(void **state) {
  (void)state;
  const char *rooms[] = {"runs/**", "chat-*", "lobby"};
  char *tok = test_mint("acme", COORD_AUTH_SCOPE_SUBSCRIBE, rooms, 3, NOW + 600, 0);
  coord_auth_principal_t p;
  expect_accepted(tok, &p);
  assert_true(coord_auth_allows(&p, COORD_AUTH_SCOPE_SUBSCRIBE, "acme", "runs/r_81f"));
  assert_true(coord_auth_allows(&p, COORD_AUTH_SCOPE_SUBSCRIBE, "acme", "runs/a/b/c"));
  assert_true(coord_auth_allows(&p, COORD_AUTH_SCOPE_SUBSCRIBE, "acme", "chat-1"));
  assert_true(coord_auth_allows(&p, COORD_AUTH_SCOPE_SUBSCRIBE, "acme", "lobby"));
  assert_false(coord_auth_allows(&p, COORD_AUTH_SCOPE_SUBSCRIBE, "acme", "chat-1/private"));
  assert_false(coord_auth_allows(&p, COORD_AUTH_SCOPE_SUBSCRIBE, "acme", "lobby2"));
  assert_false(coord_auth_allows(&p, COORD_AUTH_SCOPE_SUBSCRIBE, "acme", "runsx/1"));
  /* whole-tenant requests are refused to a room-restricted principal */
  assert_false(coord_auth_allows(&p, COORD_AUTH_SCOPE_SUBSCRIBE, "acme", NULL));
  coord_auth_principal_close(&p);
  free(tok);
}

static void test_allows_checks_scopes_and_admin_implies_every_action(void **state) {
  (void)state;
  char *sub = test_mint("acme", 0, NULL, 0, NOW + 600, 0); /* default: subscribe */
  char *pub = test_mint("acme", COORD_AUTH_SCOPE_PUBLISH, NULL, 0, NOW + 600, 0);
  char *adm = test_mint("acme", COORD_AUTH_SCOPE_ADMIN, NULL, 0, NOW + 600, 0);
  coord_auth_principal_t ps, pp, pa;
  expect_accepted(sub, &ps);
  expect_accepted(pub, &pp);
  expect_accepted(adm, &pa);
  assert_true(coord_auth_allows(&ps, COORD_AUTH_SCOPE_SUBSCRIBE, "acme", "r"));
  assert_false(coord_auth_allows(&ps, COORD_AUTH_SCOPE_PUBLISH, "acme", "r"));
  assert_false(coord_auth_allows(&ps, COORD_AUTH_SCOPE_ADMIN, "acme", "r"));
  assert_true(coord_auth_allows(&ps, COORD_AUTH_SCOPE_SUBSCRIBE, "acme", NULL));
  assert_false(coord_auth_allows(&pp, COORD_AUTH_SCOPE_SUBSCRIBE, "acme", "r"));
  assert_true(coord_auth_allows(&pp, COORD_AUTH_SCOPE_PUBLISH, "acme", "r"));
  assert_true(coord_auth_allows(&pa, COORD_AUTH_SCOPE_SUBSCRIBE, "acme", "r"));
  assert_true(coord_auth_allows(&pa, COORD_AUTH_SCOPE_PUBLISH, "acme", "r"));
  assert_true(coord_auth_allows(&pa, COORD_AUTH_SCOPE_ADMIN, "acme", "r"));
  /* combined or unknown action bits are refused, not OR-ed */
  assert_false(coord_auth_allows(&pa, COORD_AUTH_SCOPE_ALL, "acme", "r"));
  assert_false(coord_auth_allows(&pa, 0, "acme", "r"));
  assert_false(coord_auth_allows(&pa, 1u << 5, "acme", "r"));
  /* admin with rooms still stays inside its rooms */
  const char *rooms[] = {"ops/*"};
  char *adm_rooms = test_mint("acme", COORD_AUTH_SCOPE_ADMIN, rooms, 1, NOW + 600, 0);
  coord_auth_principal_t par;
  expect_accepted(adm_rooms, &par);
  assert_true(coord_auth_allows(&par, COORD_AUTH_SCOPE_PUBLISH, "acme", "ops/x"));
  assert_false(coord_auth_allows(&par, COORD_AUTH_SCOPE_PUBLISH, "acme", "runs/x"));
  coord_auth_principal_close(&par);
  coord_auth_principal_close(&pa);
  coord_auth_principal_close(&pp);
  coord_auth_principal_close(&ps);
  free(adm_rooms);
  free(adm);
  free(pub);
  free(sub);
}

static void test_token_of_tenant_a_is_refused_on_tenant_b_for_every_action(void **state) {
  (void)state;
  const char *rooms[] = {"**"};
  char *tok = test_mint("tenant-a", COORD_AUTH_SCOPE_ALL, rooms, 1, NOW + 600, 0);
  char *tok_all_rooms = test_mint("tenant-a", COORD_AUTH_SCOPE_ALL, NULL, 0, NOW + 600, 0);
  coord_auth_principal_t p[2];
  expect_accepted(tok, &p[0]);
  expect_accepted(tok_all_rooms, &p[1]);
  static const unsigned actions[] = {COORD_AUTH_SCOPE_SUBSCRIBE, COORD_AUTH_SCOPE_PUBLISH,
                                     COORD_AUTH_SCOPE_ADMIN};
  static const char *others[] = {"tenant-b",  "tenant-a2", "tenant-", "Tenant-a",
                                 "tenant-a ", "",          "*",       "any"};
  static const char *room_list[] = {"r", "runs/x", "", NULL};
  for (size_t k = 0; k < 2; k++)
    for (size_t a = 0; a < 3; a++) {
      assert_true(coord_auth_allows(&p[k], actions[a], "tenant-a", "runs/x"));
      for (size_t t = 0; t < sizeof(others) / sizeof(others[0]); t++)
        for (size_t r = 0; r < sizeof(room_list) / sizeof(room_list[0]); r++)
          if (coord_auth_allows(&p[k], actions[a], others[t], room_list[r]))
            fail_msg("allowed action %u on \"%s\" room %s", actions[a], others[t],
                     room_list[r] ? room_list[r] : "(tenant)");
      assert_false(coord_auth_allows(&p[k], actions[a], NULL, "r"));
    }
  coord_auth_principal_close(&p[1]);
  coord_auth_principal_close(&p[0]);
  free(tok_all_rooms);
  free(tok);
}

static void test_mode_none_principal_allows_every_tenant_and_a_zeroed_one_nothing(void **state) {
  (void)state;
  coord_auth_principal_t any;
  coord_auth_principal_init_any(&any);
  assert_true(any.any_tenant);
  assert_false(coord_auth_principal_expired(&any, INT64_MAX));
  assert_true(coord_auth_allows(&any, COORD_AUTH_SCOPE_PUBLISH, "acme", "r"));
  assert_true(coord_auth_allows(&any, COORD_AUTH_SCOPE_ADMIN, "other", NULL));
  coord_auth_principal_close(&any);

  coord_auth_principal_t zero;
  memset(&zero, 0, sizeof(zero));
  assert_false(coord_auth_allows(&zero, COORD_AUTH_SCOPE_SUBSCRIBE, "", "r"));
  assert_false(coord_auth_allows(&zero, COORD_AUTH_SCOPE_SUBSCRIBE, "acme", "r"));
  zero.scopes = COORD_AUTH_SCOPE_ALL; /* scopes without a tenant still allow nothing */
  assert_false(coord_auth_allows(&zero, COORD_AUTH_SCOPE_SUBSCRIBE, "", "r"));
}

/* ---- globs ---- */

static void test_glob_matches_stars_double_stars_and_question_marks(void **state) {
  (void)state;
  static const struct {
    const char *pat, *text;
    bool match;
  } cases[] = {
      {"lobby", "lobby", true},
      {"lobby", "lobby2", false},
      {"lobby", "lobb", false},
      {"*", "", true},
      {"*", "abc", true},
      {"*", "a/b", false},
      {"**", "a/b/c", true},
      {"**", "", true},
      {"runs/*", "runs/r1", true},
      {"runs/*", "runs/", true},
      {"runs/*", "runs/r1/x", false},
      {"runs/**", "runs/r1/x", true},
      {"runs/**", "runs", false},
      {"**/x", "a/b/x", true},
      {"**/x", "x", false},
      {"a/**/b", "a/b", false},
      {"a/**/b", "a//b", true},
      {"a/**/b", "a/x/y/b", true},
      {"a**b", "a/x/b", true},
      {"a*b", "a/b", false},
      {"?", "a", true},
      {"?", "", false},
      {"?", "/", false},
      {"?", "ab", false},
      {"chat-??", "chat-12", true},
      {"chat-??", "chat-1", false},
      {"*-*", "a-b", true},
      {"*-*", "ab", false},
      {"*a*", "xxaxx", true},
      {"*a*", "xxbxx", false},
      {"*/**", "a/b/c", true},
      {"*/**", "abc", false},
      {"**/*", "a", false},
      {"**/*", "a/b", true},
      {"***", "a/b", true},
      {"*.json", "x.json", true},
      {"*.json", "dir/x.json", false},
      {"**.json", "dir/x.json", true},
      {"a*b*c", "abbbc", true},
      {"a*b*c", "acb", false},
      {"", "", true},
      {"", "a", false},
  };
  for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
    if (coord_auth_glob_match(cases[i].pat, cases[i].text) != cases[i].match)
      fail_msg("glob \"%s\" vs \"%s\": want %d", cases[i].pat, cases[i].text, cases[i].match);

  char toolong[COORD_AUTH_GLOB_MAX + 2];
  memset(toolong, '*', sizeof(toolong) - 1);
  toolong[sizeof(toolong) - 1] = '\0';
  assert_false(coord_auth_glob_match(toolong, "a"));
  assert_false(coord_auth_glob_valid(toolong));
  toolong[COORD_AUTH_GLOB_MAX] = '\0';
  assert_true(coord_auth_glob_match(toolong, "a"));
  assert_true(coord_auth_glob_valid(toolong));
  assert_false(coord_auth_glob_match(NULL, "a"));
  assert_false(coord_auth_glob_match("a", NULL));
}

static double test_now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

static void test_glob_pathological_pattern_finishes_fast(void **state) {
  (void)state;
  /* "*a*a*a...*a*b" against a long run of 'a': a backtracking matcher explores a number of
   * splits exponential in the stars (it would not finish before the test timeout). */
  char pat[COORD_AUTH_GLOB_MAX + 1], dpat[COORD_AUTH_GLOB_MAX + 1];
  size_t n = 0;
  while (n + 3 <= COORD_AUTH_GLOB_MAX) pat[n++] = '*', pat[n++] = 'a';
  pat[n++] = 'b';
  pat[n] = '\0';
  n = 0;
  while (n + 4 <= COORD_AUTH_GLOB_MAX) dpat[n++] = '*', dpat[n++] = '*', dpat[n++] = 'a';
  dpat[n++] = 'b';
  dpat[n] = '\0';
  char text[4097];
  memset(text, 'a', sizeof(text) - 1);
  text[sizeof(text) - 1] = '\0';

  double t0 = test_now_ms();
  assert_false(coord_auth_glob_match(pat, text));
  assert_false(coord_auth_glob_match(dpat, text));
  text[sizeof(text) - 2] = 'b';
  assert_true(coord_auth_glob_match(pat, text));
  assert_true(coord_auth_glob_match(dpat, text));
  double ms = test_now_ms() - t0;
  /* about 4 x 4096 x 128 state steps: a few ms; generous for sanitizers and a busy box */
  if (ms > 1000) fail_msg("glob took %.1f ms", ms);
}

/* ---- bearer and minting ---- */

static void test_extract_bearer_accepts_only_a_bearer_token(void **state) {
  (void)state;
  static const struct {
    const char *value;
    int rc;
    const char *token;
  } cases[] = {
      {"Bearer abc.def.ghi", 0, "abc.def.ghi"},
      {"bearer abc", 0, "abc"},
      {"BEARER \t abc  ", 0, "abc"},
      {"  Bearer a-b_c~d+e/f==", 0, "a-b_c~d+e/f=="},
      {"Bearer", -EINVAL, NULL},
      {"Bearer ", -EINVAL, NULL},
      {"Bearerabc", -EINVAL, NULL},
      {"Basic dXNlcjpwYXNz", -EINVAL, NULL},
      {"Bearer abc def", -EINVAL, NULL},
      {"Bearer ab=c", -EINVAL, NULL},
      {"Bearer abc,", -EINVAL, NULL},
      {"", -EINVAL, NULL},
      {NULL, -EINVAL, NULL},
  };
  for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
    char out[64] = "";
    int rc = coord_auth_extract_bearer(cases[i].value, out, sizeof(out));
    if (rc != cases[i].rc) fail_msg("case %zu: rc %d", i, rc);
    if (cases[i].token) assert_string_equal(out, cases[i].token);
  }
  char small[4];
  assert_int_equal(coord_auth_extract_bearer("Bearer abcd", small, sizeof(small)), -EMSGSIZE);
  assert_int_equal(coord_auth_extract_bearer("Bearer abc", small, sizeof(small)), 0);
  assert_string_equal(small, "abc");
}

static void test_mint_refuses_claims_the_verifier_would_refuse(void **state) {
  (void)state;
  char *tok = NULL;
  char err[128];
  const char *bad_rooms[] = {"ok", "not ok"};
  const struct {
    coord_auth_claims_t c;
    const char *want;
  } cases[] = {
      {{.tenant = "Acme", .exp_s = NOW}, "tenant"},
      {{.tenant = NULL, .exp_s = NOW}, "tenant"},
      {{.tenant = "acme", .exp_s = 0}, "exp"},
      {{.tenant = "acme", .exp_s = NOW, .scopes = 1u << 7}, "scopes"},
      {{.tenant = "acme", .exp_s = NOW, .rooms = bad_rooms, .nrooms = 2}, "rooms[1]"},
      {{.tenant = "acme", .exp_s = NOW, .rooms = NULL, .nrooms = 1}, "rooms"},
  };
  for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
    assert_int_equal(coord_auth_mint_jwt(SECRET, SECRET_LEN, &cases[i].c, &tok, err, sizeof(err)),
                     -EINVAL);
    assert_null(tok);
    if (!strstr(err, cases[i].want)) fail_msg("case %zu: \"%s\"", i, err);
  }
  coord_auth_claims_t ok = {.tenant = "acme", .exp_s = NOW};
  assert_int_equal(coord_auth_mint_jwt(SECRET, 0, &ok, &tok, err, sizeof(err)), -EINVAL);
  assert_null(tok);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_verify_accepts_a_valid_token_and_fills_the_principal),
      cmocka_unit_test(test_verify_refuses_a_token_signed_with_another_secret),
      cmocka_unit_test(test_verify_refuses_a_payload_changed_after_signing),
      cmocka_unit_test(test_verify_refuses_alg_none_with_or_without_a_signature),
      cmocka_unit_test(test_verify_refuses_hs512_and_hs384_even_with_the_right_secret),
      cmocka_unit_test(test_verify_refuses_a_header_alg_that_differs_from_hs256_in_any_way),
      cmocka_unit_test(test_verify_refuses_expired_tokens_beyond_the_leeway_only),
      cmocka_unit_test(test_verify_refuses_a_token_whose_nbf_is_in_the_future),
      cmocka_unit_test(test_verify_requires_exp_as_a_number_in_range),
      cmocka_unit_test(test_verify_refuses_a_token_without_tenant),
      cmocka_unit_test(test_verify_refuses_tenants_outside_the_allowed_characters),
      cmocka_unit_test(test_verify_reads_scope_as_string_or_array_and_defaults_to_subscribe),
      cmocka_unit_test(test_verify_refuses_rooms_claims_that_are_not_bounded_globs),
      cmocka_unit_test(test_verify_refuses_an_oversized_token_before_parsing),
      cmocka_unit_test(test_verify_refuses_malformed_structure_and_base64),
      cmocka_unit_test(test_verify_refuses_missing_arguments_and_an_empty_secret),
      cmocka_unit_test(test_allows_requires_a_room_to_match_one_of_the_globs),
      cmocka_unit_test(test_allows_checks_scopes_and_admin_implies_every_action),
      cmocka_unit_test(test_token_of_tenant_a_is_refused_on_tenant_b_for_every_action),
      cmocka_unit_test(test_mode_none_principal_allows_every_tenant_and_a_zeroed_one_nothing),
      cmocka_unit_test(test_glob_matches_stars_double_stars_and_question_marks),
      cmocka_unit_test(test_glob_pathological_pattern_finishes_fast),
      cmocka_unit_test(test_extract_bearer_accepts_only_a_bearer_token),
      cmocka_unit_test(test_mint_refuses_claims_the_verifier_would_refuse),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
