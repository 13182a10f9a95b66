/* RFC 6455 framing for the benchmark client (tests/bench/wsload.c).
 *
 * This file owns the byte-level WebSocket pieces a client needs and nothing else: the
 * opening handshake (key, request, checking the 101 answer and Sec-WebSocket-Accept),
 * encoding masked client frames, and a reader that turns a byte stream from a server into
 * whole messages (fragmented data messages reassembled, control frames delivered as they
 * come, even between fragments). It does no I/O and holds no sockets, so it is unit-tested
 * on byte strings split at every boundary (tests/bench/test_wsframe.c). No extensions are
 * ever negotiated, so any RSV bit is a protocol error. Text is not checked for UTF-8: the
 * load client measures a server, it does not police it. */
#ifndef BENCH_WSFRAME_H
#define BENCH_WSFRAME_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum {
  WSF_OP_CONT = 0x0,
  WSF_OP_TEXT = 0x1,
  WSF_OP_BINARY = 0x2,
  WSF_OP_CLOSE = 0x8,
  WSF_OP_PING = 0x9,
  WSF_OP_PONG = 0xA,
};

#define WSF_MAX_HEADER 14 /* bytes: 2 + 8 (64-bit length) + 4 (mask) */
#define WSF_KEY_LEN 24    /* base64 of 16 bytes */
#define WSF_ACCEPT_LEN 28 /* base64 of a 20-byte SHA-1 */

typedef struct wsf_header {
  bool fin;
  uint8_t opcode;
  bool masked;
  uint8_t mask[4];
  uint64_t payload_len; /* bytes */
  size_t header_len;    /* bytes, 2..14 */
} wsf_header_t;

/* Parses one frame header from buf. Returns 0 with *h filled, -EAGAIN when buf holds
 * less than a whole header, -EPROTO for a malformed header: RSV bits set, an unknown
 * opcode, a control frame that is fragmented or longer than 125 bytes, a length that is
 * not in its shortest form, or a 64-bit length with the top bit set. */
int wsf_header_parse(const uint8_t *buf, size_t len, wsf_header_t *h)
    __attribute__((warn_unused_result));

/* Writes a frame header into out (WSF_MAX_HEADER bytes of room) and returns its length.
 * mask NULL means an unmasked (server-style) frame; clients always pass a mask. */
size_t wsf_header_encode(uint8_t *out, uint8_t opcode, bool fin, uint64_t payload_len,
                         const uint8_t *mask);

/* XORs n bytes at p with mask, starting at mask position (offset % 4). Its own inverse. */
void wsf_mask_apply(uint8_t *p, size_t n, const uint8_t mask[4], size_t offset);

/* Encodes a whole frame (header then payload, masked with mask unless NULL) into out.
 * Returns the frame's length, or 0 when cap is too small (nothing useful is written). */
size_t wsf_frame_encode(uint8_t *out, size_t cap, uint8_t opcode, bool fin,
                        const uint8_t *mask, const void *payload, size_t len);

/* A close frame's payload: 2-byte big-endian code, then reason (truncated to fit 125). */
size_t wsf_close_payload(uint8_t out[125], uint16_t code, const char *reason);

/* Called once per whole message: a data message (opcode TEXT or BINARY, fragments
 * joined) or a control frame. payload is borrowed and valid only during the call.
 * A nonzero return stops wsf_reader_feed, which returns it. */
typedef int (*wsf_message_cb)(void *ud, uint8_t opcode, const uint8_t *payload, size_t len);

/* Stream-to-messages state for one connection. Invariants: pending holds the unparsed
 * tail of the stream (always less than one whole frame); msg holds the payloads of the
 * fragments of an unfinished data message (msg_len bytes, opcode msg_opcode). */
typedef struct wsf_reader {
  uint8_t *pending; /* owned */
  size_t pending_len, pending_cap; /* bytes */
  uint8_t *msg; /* owned */
  size_t msg_len, msg_cap; /* bytes */
  uint8_t msg_opcode; /* 0 when no fragmented message is open */
  size_t max_message; /* bytes; a larger message (or frame) fails with -EMSGSIZE */
} wsf_reader_t;

void wsf_reader_init(wsf_reader_t *r, size_t max_message);
void wsf_reader_close(wsf_reader_t *r);

/* Feeds len bytes (any split of the stream) and calls cb for every message completed.
 * Returns 0, cb's nonzero value, -EPROTO for a protocol violation (see wsf_header_parse;
 * also a masked server frame, a continuation with no message open, or a new data frame
 * while one is open), or -EMSGSIZE. After an error the reader must not be fed again. */
int wsf_reader_feed(wsf_reader_t *r, const uint8_t *data, size_t len, wsf_message_cb cb,
                    void *ud) __attribute__((warn_unused_result));

/* The handshake. wsf_key_make writes a NUL-terminated Sec-WebSocket-Key for 16 random
 * bytes; wsf_accept_for writes the NUL-terminated Sec-WebSocket-Accept a server must
 * answer for key (base64(SHA-1(key + GUID))). */
void wsf_key_make(const uint8_t nonce[16], char out[WSF_KEY_LEN + 1]);
void wsf_accept_for(const char *key, char out[WSF_ACCEPT_LEN + 1]);

/* Writes the upgrade request into out, with a Sec-WebSocket-Protocol header when
 * subprotocol is neither NULL nor ""; returns its length, or 0 when cap is too small. */
size_t wsf_request_build(char *out, size_t cap, const char *host, int port, const char *path,
                         const char *key, const char *subprotocol);

/* Checks a server's answer to the upgrade. buf holds what was received so far.
 * Returns the length of the answer's head (through the blank line) when it is a valid
 * 101 with the right Sec-WebSocket-Accept, Upgrade: websocket and Connection: upgrade;
 * -EAGAIN when the head is not complete yet; -EMSGSIZE when no head ended within 8 KiB;
 * -ECONNREFUSED when the status is not 101 (*status gets the code when status is not
 * NULL); -EPROTO for a 101 with a wrong or missing header. */
int wsf_response_check(const char *buf, size_t len, const char *key, int *status)
    __attribute__((warn_unused_result));

#endif
