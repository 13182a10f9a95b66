/* protomicro: the CPU cost of reading a client's pub and answering it, without a network.
 *
 * Sends COUNT pub messages shaped like wsload's ({"op":"pub","ref":"<n>","topic":T,
 * "type":"bench","data":{"t0":<us>,"pad":"xxx..."}}, 100 topics, PAD bytes of padding)
 * through stream_conn_handle_message on a hub with a memory store, turning the loop every
 * 32 messages so they commit, and pulls and drops the replies. Prints the wall time per
 * message. Meant for callgrind, which counts instructions exactly on a noisy machine:
 *
 *   valgrind --tool=callgrind --toggle-collect=stream_conn_handle_message \
 *     --toggle-collect=stream__conn_pub_done build-rel/tests/bench/protomicro 20000
 *
 * then the total of the collected events divided by COUNT is the instructions per publish
 * spent reading the message (parse, validation, publish, event frame) and writing its
 * puback. Uses only the public interface, so the same file builds against older commits
 * for an A/B comparison. usage: protomicro [COUNT (20000)] [PAD (200)] */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <uv.h>

#include "streams.h"

static void pm_wake(stream_conn_t *c, void *ud) { (void)c, (void)ud; }

static const stream_conn_ops_t pm_ops = {.wake = pm_wake};

static void pm_drain(stream_conn_t *c) {
  while (stream_conn_pending(c)) {
    stream_frame_t *frames[64];
    int n = stream_conn_pull(c, frames, 64, 1 << 20);
    if (n <= 0) break;
    for (int i = 0; i < n; i++) stream_frame_unref(&frames[i]);
  }
}

int main(int argc, char **argv) {
  long count = argc > 1 ? atol(argv[1]) : 20000;
  int pad = argc > 2 ? atoi(argv[2]) : 200;
  if (count < 1 || pad < 0 || pad > 4000) {
    fprintf(stderr, "usage: protomicro [COUNT] [PAD <= 4000]\n");
    return 2;
  }
  uv_loop_t loop;
  store_t *store;
  stream_hub_t *hub;
  stream_conn_t *conn;
  if (uv_loop_init(&loop) != 0 || store_open_memory(&store) != 0) return 1;
  stream_config_t cfg;
  stream_config_defaults(&cfg);
  cfg.publish_rate = 0; /* unlimited: the cost of the path, not of refusals */
  cfg.topic_publish_rate = 0;
  /* Commits on the loop: each turn lands its batch, so the pubacks keep pace with the
   * messages (with the writer thread they pile up past the control queue) and the counts
   * do not depend on the thread's timing. */
  cfg.commit_thread = false;
  stream_hub_options_t o = {.loop = &loop, .store = store, .config = &cfg};
  if (stream_hub_new(&o, &hub) != 0) return 1;
  stream_principal_t who = {.tenant = NULL, .scopes = STREAM_SCOPE_PUBLISH};
  if (stream_conn_new(hub, &pm_ops, NULL, &who, &conn) != 0) return 1;

  char padding[4001];
  memset(padding, 'x', (size_t)pad);
  padding[pad] = '\0';
  char msg[4200];
  struct timespec t0, t1;
  clock_gettime(CLOCK_MONOTONIC, &t0);
  for (long i = 0; i < count; i++) {
    int len = snprintf(msg, sizeof msg,
                       "{\"op\":\"pub\",\"ref\":\"%ld\",\"topic\":\"bench/t%ld\",\"type\":\"bench\","
                       "\"data\":{\"t0\":%lld,\"pad\":\"%s\"}}",
                       i, i % 100, 1764300000000000ll + i, padding);
    if (stream_conn_handle_message(conn, msg, (size_t)len) != 0) {
      fprintf(stderr, "message %ld refused: %s\n", i, stream_conn_close_reason(conn));
      return 1;
    }
    if (i % 32 == 31 || i == count - 1) {
      uv_run(&loop, UV_RUN_NOWAIT);
      pm_drain(conn);
    }
  }
  clock_gettime(CLOCK_MONOTONIC, &t1);
  double ns = (double)(t1.tv_sec - t0.tv_sec) * 1e9 + (double)(t1.tv_nsec - t0.tv_nsec);
  printf("%ld messages, %.0f ns per message (commits included)\n", count, ns / (double)count);
  stream_conn_free(conn);
  stream_hub_close(hub);
  uv_run(&loop, UV_RUN_DEFAULT);
  store_close(store);
  return uv_loop_close(&loop) == 0 ? 0 : 1;
}
