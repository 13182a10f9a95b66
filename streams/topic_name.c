/* Topic names and partitions.
 *
 * A topic is "tenant/room": tenant [a-z0-9_-]{1,64}, room [A-Za-z0-9_.:/-]{1,200} (rooms
 * may contain '/'). Validation names the part that is wrong and why, for error replies.
 * The partition of a topic is the 32-bit FNV-1a hash of its bytes modulo the partition
 * count: stable across restarts and builds, so a partition can later be owned by a
 * router thread or a Redis shard. */
#include <errno.h>
#include <string.h>

#include "internal.h"

#define TENANT_MAX 64
#define ROOM_MAX 200

static bool tenant_char(unsigned char c) {
  return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_' || c == '-';
}

static bool room_char(unsigned char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' || c == '.' ||
         c == ':' || c == '/' || c == '-';
}

int stream_topic_validate(const char *topic, size_t *tenant_len, stream_err_t *err) {
  if (!topic) {
    stream__errf(err, "topic: missing");
    return -EINVAL;
  }
  const char *slash = strchr(topic, '/');
  if (!slash) {
    stream__errf(err, "topic: must be tenant/room");
    return -EINVAL;
  }
  size_t tl = (size_t)(slash - topic);
  if (tl == 0 || tl > TENANT_MAX) {
    stream__errf(err, "topic: tenant must be 1 to %d characters", TENANT_MAX);
    return -EINVAL;
  }
  for (size_t i = 0; i < tl; i++) {
    if (!tenant_char((unsigned char)topic[i])) {
      stream__errf(err, "topic: tenant has a character outside [a-z0-9_-] at offset %zu", i);
      return -EINVAL;
    }
  }
  const char *room = slash + 1;
  size_t rl = strlen(room);
  if (rl == 0 || rl > ROOM_MAX) {
    stream__errf(err, "topic: room must be 1 to %d characters", ROOM_MAX);
    return -EINVAL;
  }
  for (size_t i = 0; i < rl; i++) {
    if (!room_char((unsigned char)room[i])) {
      stream__errf(err, "topic: room has a character outside [A-Za-z0-9_.:/-] at offset %zu", i);
      return -EINVAL;
    }
  }
  if (tenant_len) *tenant_len = tl;
  return 0;
}

uint32_t stream_topic_partition(const char *topic, uint32_t partitions) {
  uint32_t h = 2166136261u;
  for (const unsigned char *p = (const unsigned char *)topic; *p; p++) {
    h ^= *p;
    h *= 16777619u;
  }
  return partitions ? h % partitions : 0;
}
