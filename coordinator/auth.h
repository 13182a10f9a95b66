/* Authentication and authorization of stream clients: who a client is (a principal built
 * from an HS256 JWT, or the "any tenant" principal of auth mode none) and what it may do
 * (coord_auth_allows). Internal to coordinator/.
 *
 * This file owns token verification (with libjwt for the signature), claim validation, the
 * room glob matcher, the Authorization header helper and a token minting helper for tests
 * and dev tools. It does not own transport: where the token comes from (query string,
 * header), which reply a refusal gets, and the loopback-only rule of mode none are the
 * caller's, and so is the auth mode itself (coord_auth_mode_t and auth.jwt_secret live in
 * config.h). It knows nothing of libwebsockets. Everything here is pure computation on the
 * caller's thread: no globals, no I/O, no blocking; a verification costs one HMAC-SHA256.
 * The claims and their rules are described for users in docs/auth.md. */
#ifndef COORD_AUTH_H
#define COORD_AUTH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define COORD_AUTH_TENANT_MAX 64          /* bytes, tenant is [a-z0-9_-]{1,64} */
#define COORD_AUTH_ROOMS_MAX 64           /* globs per principal */
#define COORD_AUTH_GLOB_MAX 256           /* bytes per glob */
#define COORD_AUTH_TOKEN_MAX_DEFAULT 8192 /* bytes */
#define COORD_AUTH_LEEWAY_DEFAULT_S 30    /* clock skew tolerated on exp and nbf */

/* Scopes are bits; an action passed to coord_auth_allows is exactly one of them.
 * ADMIN implies the others (inside the token's tenant and rooms only). */
enum {
  COORD_AUTH_SCOPE_SUBSCRIBE = 1u << 0, /* sub, read events, SSE, list topics */
  COORD_AUTH_SCOPE_PUBLISH = 1u << 1,
  COORD_AUTH_SCOPE_ADMIN = 1u << 2,
  COORD_AUTH_SCOPE_ALL = (1u << 3) - 1,
};

/* Who a client is. Invariants: any_tenant is true only for the principal of mode none
 * (tenant then reads "*", which no real tenant can be); otherwise tenant is a valid tenant
 * name. rooms is NULL iff nrooms is 0, meaning "every room of the tenant"; otherwise it
 * holds 1..COORD_AUTH_ROOMS_MAX valid globs. A zero-filled principal is allowed nothing.
 * It owns its globs: do not copy it by assignment; verify into the storage that keeps it,
 * or move it there with coord_auth_principal_move() (96 bytes, plus the globs when the
 * token has rooms). */
typedef struct coord_auth_principal {
  bool any_tenant;
  char tenant[COORD_AUTH_TENANT_MAX + 1];
  unsigned scopes; /* COORD_AUTH_SCOPE_* bits */
  char **rooms;    /* owned, each string owned */
  size_t nrooms;
  int64_t exp_s; /* unix seconds; 0 = never expires (mode none) */
} coord_auth_principal_t;

/* Verification settings; the caller keeps them alive during each call. */
typedef struct coord_auth_jwt_cfg {
  const unsigned char *secret; /* borrowed; HS256 key, raw bytes (not base64) */
  size_t secret_len;           /* bytes; must be > 0, 32 or more recommended */
  int64_t leeway_s;            /* skew tolerated on exp and nbf; < 0 counts as 0 */
  size_t max_token_bytes;      /* 0 = COORD_AUTH_TOKEN_MAX_DEFAULT */
} coord_auth_jwt_cfg_t;

/* Claims for coord_auth_mint_jwt. */
typedef struct coord_auth_claims {
  const char *tenant;       /* borrowed; required, validated like the verifier does */
  unsigned scopes;          /* COORD_AUTH_SCOPE_* bits; 0 omits the claim (= subscribe) */
  const char *const *rooms; /* borrowed; NULL/0 omits the claim (= every room) */
  size_t nrooms;
  int64_t exp_s; /* unix seconds; required, > 0 */
  int64_t nbf_s; /* unix seconds; 0 omits the claim */
} coord_auth_claims_t;

/* Fills p with the principal of auth mode none: any tenant, every scope and room, no
 * expiry. p needs no coord_auth_principal_close, though calling it is harmless. */
void coord_auth_principal_init_any(coord_auth_principal_t *p);

/* Frees the room globs and zero-fills p (allowed nothing afterwards). Idempotent. */
void coord_auth_principal_close(coord_auth_principal_t *p);

/* Whether the principal's token has expired at now_s (no leeway: callers that hold a
 * connection open past the token's exp decide themselves what to do, see docs/auth.md). */
bool coord_auth_principal_expired(const coord_auth_principal_t *p, int64_t now_s);
/* Moves a verified principal (its globs with it) into dst and leaves src empty. */
void coord_auth_principal_move(coord_auth_principal_t *dst, coord_auth_principal_t *src);
/* The same test on an expiry kept without its principal (exp_s 0 = never expires). */
bool coord_auth_exp_passed(int64_t exp_s, int64_t now_s);

/* Verifies an HS256 JWT and builds its principal.
 *
 * token is NUL-terminated, the bare token (see coord_auth_extract_bearer). now_s is unix
 * seconds. On success *out is filled (the caller closes it with
 * coord_auth_principal_close). On failure *out is zero-filled, and err (may be NULL)
 * receives a reason naming the part at fault, never the token or secret, e.g. "token
 * expired", "claim tenant: missing", "alg must be HS256".
 *
 * Checks, in order: size; three base64url parts; header is a JSON object whose alg is
 * exactly "HS256" (none and every other alg refused), whose typ, if any, is "JWT", with no
 * crit; payload is a JSON object (duplicate keys refused in both); the signature (libjwt,
 * constant-time comparison); then the claims: exp (required), nbf (optional), tenant
 * (required), scope (optional, default subscribe), rooms (optional).
 *
 * Returns 0, or
 *   -EINVAL       bad arguments (no secret), malformed token, wrong alg, invalid claim
 *   -EMSGSIZE     token longer than cfg->max_token_bytes
 *   -EACCES       signature mismatch, or nbf still in the future
 *   -EKEYEXPIRED  exp has passed (beyond the leeway)
 *   -ENOMEM       libjwt could not allocate */
int coord_auth_verify_jwt(const coord_auth_jwt_cfg_t *cfg, const char *token, int64_t now_s,
                          coord_auth_principal_t *out, char *err, size_t errlen)
    __attribute__((warn_unused_result));

/* Whether p may do action (one COORD_AUTH_SCOPE_* bit) on topic topic_tenant/room.
 * Tenant must equal the principal's exactly (unless mode none); the scopes must include
 * action or ADMIN; with room globs, room must match one of them. room NULL asks for the
 * whole tenant (e.g. listing its topics) and is refused to a room-restricted principal.
 * Anything unexpected (NULL tenant, unknown or combined action bits) is refused. Does not
 * look at expiry. */
bool coord_auth_allows(const coord_auth_principal_t *p, unsigned action, const char *topic_tenant,
                       const char *room);

/* Room glob match: `*` matches any run of characters except '/', `**` (or more stars) any
 * run including '/', `?` exactly one character except '/', anything else itself. The
 * whole text must match. Time is O(strlen(pattern) * strlen(text)), iterative, with no
 * backtracking blow-up. A pattern longer than COORD_AUTH_GLOB_MAX matches nothing. */
bool coord_auth_glob_match(const char *pattern, const char *text);

/* Checks a room glob the way claims are checked: 1..COORD_AUTH_GLOB_MAX bytes of room
 * characters [A-Za-z0-9_.:/-] and the wildcards `*` and `?`. */
bool coord_auth_glob_valid(const char *pattern);

/* Checks a tenant name: [a-z0-9_-]{1,64}. */
bool coord_auth_tenant_valid(const char *tenant);

/* Takes the token out of an Authorization header value "Bearer <token>" (scheme case-
 * insensitive, surrounding spaces and tabs allowed, token of RFC 6750 b64token characters)
 * and copies it NUL-terminated into out. Returns 0, -EINVAL when value is NULL or not of
 * that form, or -EMSGSIZE when the token does not fit into outlen bytes with its NUL. */
int coord_auth_extract_bearer(const char *value, char *out, size_t outlen)
    __attribute__((warn_unused_result));

/* Mints an HS256 JWT with the given claims (scope as a space-separated string). For tests,
 * examples and dev tools; the daemon itself never mints. On success *token_out is a new
 * string the caller frees with free(). Returns 0, -EINVAL (err names the bad argument), or
 * -ENOMEM when libjwt fails to allocate. */
int coord_auth_mint_jwt(const unsigned char *secret, size_t secret_len,
                        const coord_auth_claims_t *claims, char **token_out, char *err,
                        size_t errlen) __attribute__((warn_unused_result));

#endif
