/* The listening socket, owned by us instead of libwebsockets.
 *
 * Owning accept() lets the daemon (1) stop accepting at drain start by closing the socket
 * (lws_context_deprecate() would later send the process SIGINT when the last connection
 * goes, see docs/libwebsockets.md), (2) never spin on EMFILE (STACK-NOTES P6): at the fd
 * limit accepting pauses for a moment instead, and a connection whose fd is too close to
 * the limit is closed at once, and (3) count connections to answer 503 above
 * limits.max_connections. Accepted sockets are handed to lws with lws_adopt_socket_vhost()
 * and tagged with opaque user data so that WSI_DESTROY can count them down. */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "base/log.h"
#include "internal.h"

#define LISTEN_BACKLOG 4096
#define ACCEPT_BATCH 256        /* accepts per readiness callback, so the loop stays fair */
#define ACCEPT_PAUSE_MS 100     /* pause after EMFILE/ENFILE */
#define FD_HARD_RESERVE 16      /* fds above limit - this are closed right after accept */

static void listener_on_readable(uv_poll_t *h, int status, int events);

static void listener_resume(uv_timer_t *t) {
  coord_daemon_t *d = t->data;
  d->listener.retry_active = false;
  if (d->listener.active) uv_poll_start(&d->listener.poll, UV_READABLE, listener_on_readable);
}

static void listener_pause(coord_daemon_t *d) {
  coord_listener_t *l = &d->listener;
  uv_poll_stop(&l->poll);
  if (!l->retry_active) {
    l->retry_active = true;
    uv_timer_start(&l->retry, listener_resume, ACCEPT_PAUSE_MS, 0);
  }
  uint64_t now = uv_now(d->loop);
  if (now - l->emfile_logged_ms >= 10000 || !l->emfile_logged_ms) {
    l->emfile_logged_ms = now ? now : 1;
    log_warn("listener", "out of file descriptors, pausing accept", "{s:i,s:I}", "ms",
             ACCEPT_PAUSE_MS, "open_connections", (json_int_t)d->open_conns);
  }
}

static void listener_adopt(coord_daemon_t *d, int fd) {
  if (fd >= d->fd_limit - FD_HARD_RESERVE) {
    coord_metric_add(d->m.rejected_fd, 1);
    close(fd);
    return;
  }
  int one = 1;
  (void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  bool over = d->open_conns >= d->max_conns;
  if (d->wso) coord__wso_accept(d, fd, over); /* it hands what is not a WebSocket back */
  else coord__listener_adopt_lws(d, fd, over);
}

void coord__listener_adopt_lws(coord_daemon_t *d, int fd, bool over) {
  struct lws *wsi = lws_adopt_socket_vhost(d->vhost, fd);
  if (!wsi) {
    /* lws closed the socket on its failure path. */
    log_warn("listener", "lws could not adopt a connection", NULL);
    return;
  }
  if (over) coord_metric_add(d->m.rejected_max, 1);
  lws_set_opaque_user_data(wsi, over ? &d->over_marker : &d->conn_marker);
  d->open_conns++;
}

static void listener_on_readable(uv_poll_t *h, int status, int events) {
  (void)events;
  coord_daemon_t *d = h->data;
  if (status < 0 || !d->listener.active) return;
  for (int i = 0; i < ACCEPT_BATCH; i++) {
    int fd = accept4(d->listener.fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (fd < 0) {
      if (errno == EINTR || errno == ECONNABORTED) continue;
      if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM) {
        listener_pause(d);
        return;
      }
      if (errno != EAGAIN && errno != EWOULDBLOCK)
        log_warn("listener", "accept failed", "{s:s}", "error", strerror(errno));
      return;
    }
    listener_adopt(d, fd);
    if (!d->listener.active) return; /* an adoption callback started shutdown */
  }
}

int coord__listener_start(coord_daemon_t *d) {
  coord_listener_t *l = &d->listener;
  const coord_config_t *cfg = d->cfg;
  struct sockaddr_storage ss;
  socklen_t sslen;
  memset(&ss, 0, sizeof ss);
  bool v6 = strchr(cfg->listen_host, ':') != NULL;
  if (v6) {
    struct sockaddr_in6 *a = (struct sockaddr_in6 *)&ss;
    a->sin6_family = AF_INET6;
    a->sin6_port = htons((uint16_t)cfg->listen_port);
    inet_pton(AF_INET6, cfg->listen_host, &a->sin6_addr);
    sslen = sizeof *a;
  } else {
    struct sockaddr_in *a = (struct sockaddr_in *)&ss;
    a->sin_family = AF_INET;
    a->sin_port = htons((uint16_t)cfg->listen_port);
    inet_pton(AF_INET, cfg->listen_host, &a->sin_addr);
    sslen = sizeof *a;
  }
  l->fd = socket(ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (l->fd < 0) return -errno;
  int one = 1;
  (void)setsockopt(l->fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  if (v6) (void)setsockopt(l->fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof one);
  if (bind(l->fd, (struct sockaddr *)&ss, sslen) < 0 || listen(l->fd, LISTEN_BACKLOG) < 0) {
    int rc = -errno;
    close(l->fd);
    l->fd = -1;
    return rc;
  }
  sslen = sizeof ss;
  if (getsockname(l->fd, (struct sockaddr *)&ss, &sslen) == 0)
    d->bound_port = ntohs(v6 ? ((struct sockaddr_in6 *)&ss)->sin6_port
                             : ((struct sockaddr_in *)&ss)->sin_port);
  uv_poll_init(d->loop, &l->poll, l->fd);
  l->poll.data = d;
  uv_timer_init(d->loop, &l->retry);
  l->retry.data = d;
  l->active = true;
  uv_poll_start(&l->poll, UV_READABLE, listener_on_readable);
  return 0;
}

void coord__listener_stop(coord_daemon_t *d) {
  coord_listener_t *l = &d->listener;
  if (!l->active) return;
  l->active = false;
  uv_poll_stop(&l->poll);
  uv_timer_stop(&l->retry);
  uv_close((uv_handle_t *)&l->poll, NULL);
  uv_close((uv_handle_t *)&l->retry, NULL);
  close(l->fd); /* after uv_poll_stop: the fd is no longer watched */
  l->fd = -1;
}

void coord__listener_wsi_destroyed(coord_daemon_t *d, struct lws *wsi) {
  void *tag = lws_get_opaque_user_data(wsi);
  if (tag != &d->conn_marker && tag != &d->over_marker) return;
  lws_set_opaque_user_data(wsi, NULL);
  d->open_conns--;
  coord__daemon_conn_gone(d);
}

bool coord__listener_over_limit(coord_daemon_t *d, struct lws *wsi) {
  return lws_get_opaque_user_data(lws_get_network_wsi(wsi)) == &d->over_marker;
}
