/*
 * A UDP socket read and written in batches (Linux recvmmsg/sendmmsg), for the DNS server.
 *
 * node:dgram costs one call into JavaScript, a Buffer, an rinfo object and a send request per
 * datagram, and one recvmsg and one sendmsg system call each. Under load that is most of a
 * DNS answer's cost (src/api/dns/udp-batch.ts has the figures). Here one readiness event reads up
 * to BATCH datagrams with one system call into memory JavaScript sees directly, calls JavaScript
 * once for all of them, and sends the answers it wrote back with one more.
 *
 * One ArrayBuffer holds everything JavaScript reads and writes, in this order:
 *   in     BATCH slots of SLOT bytes: the datagrams received
 *   out    BATCH slots of SLOT bytes: the answers, written by JavaScript
 *   addrs  BATCH slots of ADDR bytes: each sender's address (a struct sockaddr)
 *   lens   3 x BATCH int32: datagram lengths (-1: longer than a slot, cut), answer lengths (0: no
 *          answer in the slot), address lengths
 *   stats  3 float64: answers sent, answers the kernel refused (a full send buffer, mostly), errors
 *          the socket reported (and that were cleared)
 * A datagram and its answer share a slot number, so an answer goes back to its sender.
 *
 * This is an I/O edge and nothing else: it knows no DNS. Everything that can be decided in
 * JavaScript is (what to answer, oversized answers, answers sent later through send()).
 */

#define _GNU_SOURCE
#define NAPI_VERSION 8
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <node_api.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>
#include <uv.h>

/* Bumped whenever the layout or the functions change, so that a stale build is not used. */
#define ABI_VERSION 2
#define BATCH 32
#define SLOT 4096
#define ADDR ((int)sizeof(struct sockaddr_storage))
/* Batches read per readiness event before the event loop gets its turn back (timers, TCP, HTTP). */
#define ROUNDS 8

#define IN_OFFSET 0
#define OUT_OFFSET (BATCH * SLOT)
#define ADDRS_OFFSET (2 * BATCH * SLOT)
#define LENS_OFFSET (ADDRS_OFFSET + BATCH * ADDR)
#define STATS_OFFSET (LENS_OFFSET + 3 * BATCH * 4)
#define SHARED_BYTES (STATS_OFFSET + 3 * 8)

typedef struct {
  napi_env env;
  uv_poll_t poll;
  int fd;
  /* close() was called: no more reads, sends or calls into JavaScript. */
  int closing;
  napi_ref on_batch;
  napi_ref shared_ref;
  /* The handle JavaScript holds, kept from collection while the socket is open. */
  napi_ref self;
  napi_async_context async_context;
  napi_async_cleanup_hook_handle cleanup;
  uint8_t *shared;
  int32_t *lens;
  double *stats;
  struct mmsghdr recv_msgs[BATCH];
  struct iovec recv_iov[BATCH];
  struct mmsghdr send_msgs[BATCH];
  struct iovec send_iov[BATCH];
} udp_batch;

#define CALL(env, expr)                                                                            \
  do {                                                                                             \
    if ((expr) != napi_ok) return NULL;                                                            \
  } while (0)

static napi_value throw_errno(napi_env env, int err, const char *what) {
  int uverr = uv_translate_sys_error(err);
  char message[256];
  snprintf(message, sizeof message, "%s: %s", what, uv_strerror(uverr));
  napi_throw_error(env, uv_err_name(uverr), message);
  return NULL;
}

static void send_answers(udp_batch *s, int received) {
  int count = 0;
  for (int i = 0; i < received; i++) {
    int len = s->lens[BATCH + i];
    if (len <= 0 || len > SLOT) continue;
    s->send_iov[count].iov_base = s->shared + OUT_OFFSET + i * SLOT;
    s->send_iov[count].iov_len = (size_t)len;
    struct msghdr *h = &s->send_msgs[count].msg_hdr;
    memset(h, 0, sizeof *h);
    h->msg_iov = &s->send_iov[count];
    h->msg_iovlen = 1;
    h->msg_name = s->shared + ADDRS_OFFSET + i * ADDR;
    h->msg_namelen = (socklen_t)s->lens[2 * BATCH + i];
    count++;
  }
  int sent = 0;
  while (sent < count) {
    int n = sendmmsg(s->fd, s->send_msgs + sent, (unsigned)(count - sent), MSG_DONTWAIT);
    if (n > 0) {
      sent += n;
      s->stats[0] += n;
    } else if (n < 0 && errno == EINTR) {
      continue;
    } else {
      /* The first one left was refused (a full buffer, an address the kernel rejects): a lost UDP
       * answer, which the client asks again for. The rest may still go. */
      sent++;
      s->stats[1] += 1;
    }
  }
}

static void on_readable(uv_poll_t *poll, int status, int events) {
  (void)events;
  udp_batch *s = poll->data;
  if (s->closing) return;
  if (status < 0) {
    /* libuv stops a poll handle that reports an error (EPOLLERR). An unconnected UDP socket gets
     * none from ICMP unless asked, but whatever it was must not end the DNS server's reading:
     * take the error off the socket (reading SO_ERROR clears it) and poll again. */
    int err = 0;
    socklen_t err_len = sizeof err;
    getsockopt(s->fd, SOL_SOCKET, SO_ERROR, &err, &err_len);
    s->stats[2] += 1;
    uv_poll_start(&s->poll, UV_READABLE, on_readable);
    return;
  }
  napi_env env = s->env;
  for (int round = 0; round < ROUNDS; round++) {
    for (int i = 0; i < BATCH; i++) {
      s->recv_iov[i].iov_base = s->shared + IN_OFFSET + i * SLOT;
      s->recv_iov[i].iov_len = SLOT;
      struct msghdr *h = &s->recv_msgs[i].msg_hdr;
      memset(h, 0, sizeof *h);
      h->msg_iov = &s->recv_iov[i];
      h->msg_iovlen = 1;
      h->msg_name = s->shared + ADDRS_OFFSET + i * ADDR;
      h->msg_namelen = (socklen_t)ADDR;
    }
    int received = recvmmsg(s->fd, s->recv_msgs, BATCH, MSG_DONTWAIT, NULL);
    if (received < 0 && errno == EINTR) continue;
    if (received <= 0) return;
    for (int i = 0; i < received; i++) {
      struct msghdr *h = &s->recv_msgs[i].msg_hdr;
      s->lens[i] = (h->msg_flags & MSG_TRUNC) ? -1 : (int32_t)s->recv_msgs[i].msg_len;
      s->lens[BATCH + i] = 0;
      s->lens[2 * BATCH + i] = (int32_t)h->msg_namelen;
    }

    napi_handle_scope scope;
    if (napi_open_handle_scope(env, &scope) != napi_ok) return;
    napi_value callback, receiver, argv[1], result;
    napi_status st = napi_get_reference_value(env, s->on_batch, &callback);
    if (st == napi_ok) st = napi_get_global(env, &receiver);
    if (st == napi_ok) st = napi_create_int32(env, received, &argv[0]);
    if (st == napi_ok) st = napi_make_callback(env, s->async_context, receiver, callback, 1, argv, &result);
    if (st == napi_pending_exception) {
      /* As any callback from the event loop: an uncaught exception. */
      napi_value err;
      napi_get_and_clear_last_exception(env, &err);
      napi_fatal_exception(env, err);
    }
    napi_close_handle_scope(env, scope);

    /* JavaScript may have closed the socket; its memory stays until the close completes. */
    if (s->closing) return;
    send_answers(s, received);
    if (received < BATCH) return;
  }
}

static void on_closed(uv_handle_t *handle) {
  udp_batch *s = handle->data;
  napi_env env = s->env;
  if (s->on_batch != NULL) napi_delete_reference(env, s->on_batch);
  if (s->shared_ref != NULL) napi_delete_reference(env, s->shared_ref);
  if (s->async_context != NULL) napi_async_destroy(env, s->async_context);
  if (s->cleanup != NULL) napi_remove_async_cleanup_hook(s->cleanup);
  /* Now the handle may be collected, and its finalizer frees s. */
  napi_delete_reference(env, s->self);
}

static void begin_close(udp_batch *s) {
  if (s->closing) return;
  s->closing = 1;
  /* Stopping the poll takes the descriptor out of epoll at once, so it can be closed now: the port
   * is free when close() returns. The handle's memory waits for libuv. */
  uv_poll_stop(&s->poll);
  close(s->fd);
  uv_close((uv_handle_t *)&s->poll, on_closed);
}

/* A worker thread or the process ending with the socket still open. */
static void on_env_cleanup(napi_async_cleanup_hook_handle handle, void *data) {
  (void)handle;
  begin_close(data);
}

static void finalize(napi_env env, void *data, void *hint) {
  (void)env;
  (void)hint;
  free(data);
}

static udp_batch *unwrap(napi_env env, napi_value handle) {
  void *data = NULL;
  if (napi_get_value_external(env, handle, &data) != napi_ok) {
    napi_throw_type_error(env, NULL, "not a udp-batch handle");
    return NULL;
  }
  return data;
}

/* open(family: 4 | 6, host: string, port: number, onBatch: (count) => void)
 *   → { handle, shared: ArrayBuffer, port } */
static napi_value open_socket(napi_env env, napi_callback_info info) {
  size_t argc = 4;
  napi_value argv[4];
  CALL(env, napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  int32_t family, port;
  char host[INET6_ADDRSTRLEN + 1];
  size_t host_len;
  if (argc < 4 || napi_get_value_int32(env, argv[0], &family) != napi_ok ||
      napi_get_value_string_utf8(env, argv[1], host, sizeof host, &host_len) != napi_ok ||
      napi_get_value_int32(env, argv[2], &port) != napi_ok || port < 0 || port > 65535) {
    napi_throw_type_error(env, "ERR_INVALID_ARG_TYPE", "open(family, host, port, onBatch)");
    return NULL;
  }

  struct sockaddr_storage addr;
  socklen_t addr_len;
  memset(&addr, 0, sizeof addr);
  if (family == 4) {
    struct sockaddr_in *a = (struct sockaddr_in *)&addr;
    a->sin_family = AF_INET;
    a->sin_port = htons((uint16_t)port);
    if (inet_pton(AF_INET, host, &a->sin_addr) != 1) return throw_errno(env, EINVAL, "bad IPv4 address");
    addr_len = sizeof *a;
  } else if (family == 6) {
    struct sockaddr_in6 *a = (struct sockaddr_in6 *)&addr;
    a->sin6_family = AF_INET6;
    a->sin6_port = htons((uint16_t)port);
    if (inet_pton(AF_INET6, host, &a->sin6_addr) != 1) return throw_errno(env, EINVAL, "bad IPv6 address");
    addr_len = sizeof *a;
  } else {
    napi_throw_range_error(env, "ERR_INVALID_ARG_VALUE", "family must be 4 or 6");
    return NULL;
  }

  int fd = socket(family == 4 ? AF_INET : AF_INET6, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) return throw_errno(env, errno, "socket");
  if (bind(fd, (struct sockaddr *)&addr, addr_len) != 0) {
    int err = errno;
    close(fd);
    return throw_errno(env, err, "bind");
  }
  struct sockaddr_storage bound;
  socklen_t bound_len = sizeof bound;
  if (getsockname(fd, (struct sockaddr *)&bound, &bound_len) != 0) {
    int err = errno;
    close(fd);
    return throw_errno(env, err, "getsockname");
  }
  int bound_port = ntohs(family == 4 ? ((struct sockaddr_in *)&bound)->sin_port
                                     : ((struct sockaddr_in6 *)&bound)->sin6_port);

  udp_batch *s = calloc(1, sizeof *s);
  if (s == NULL) {
    close(fd);
    return throw_errno(env, ENOMEM, "open");
  }
  s->env = env;
  s->fd = fd;
  napi_value shared, handle, name, result, port_value;
  void *shared_data;
  uv_loop_t *loop;
  if (napi_create_arraybuffer(env, SHARED_BYTES, &shared_data, &shared) != napi_ok ||
      napi_create_external(env, s, finalize, NULL, &handle) != napi_ok) {
    close(fd);
    free(s);
    return NULL;
  }
  s->shared = shared_data;
  s->lens = (int32_t *)(s->shared + LENS_OFFSET);
  s->stats = (double *)(s->shared + STATS_OFFSET);
  /* From here s belongs to handle: its finalizer frees s once the self reference is gone. */
  if (napi_create_reference(env, handle, 1, &s->self) != napi_ok) {
    close(fd);
    s->closing = 1;
    return NULL;
  }
  if (napi_get_uv_event_loop(env, &loop) != napi_ok || uv_poll_init_socket(loop, &s->poll, fd) != 0) {
    close(fd);
    s->closing = 1;
    napi_delete_reference(env, s->self);
    return throw_errno(env, EINVAL, "uv_poll_init");
  }
  s->poll.data = s;
  /* Failures from here close the poll handle, which releases whatever was set up. */
  if (napi_create_string_utf8(env, "meshd:udp-batch", NAPI_AUTO_LENGTH, &name) != napi_ok ||
      napi_async_init(env, NULL, name, &s->async_context) != napi_ok ||
      napi_create_reference(env, argv[3], 1, &s->on_batch) != napi_ok ||
      napi_create_reference(env, shared, 1, &s->shared_ref) != napi_ok ||
      napi_add_async_cleanup_hook(env, on_env_cleanup, s, &s->cleanup) != napi_ok ||
      uv_poll_start(&s->poll, UV_READABLE, on_readable) != 0) {
    begin_close(s);
    return throw_errno(env, ENOMEM, "open");
  }

  CALL(env, napi_create_object(env, &result));
  CALL(env, napi_create_int32(env, bound_port, &port_value));
  CALL(env, napi_set_named_property(env, result, "handle", handle));
  CALL(env, napi_set_named_property(env, result, "shared", shared));
  CALL(env, napi_set_named_property(env, result, "port", port_value));
  return result;
}

/* send(handle, data: Uint8Array, address: Uint8Array) → whether the kernel took it. For answers
 * not written into a slot: later ones, and ones longer than a slot. */
static napi_value send_one(napi_env env, napi_callback_info info) {
  size_t argc = 3;
  napi_value argv[3];
  CALL(env, napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  if (argc < 3) {
    napi_throw_type_error(env, "ERR_INVALID_ARG_TYPE", "send(handle, data, address)");
    return NULL;
  }
  udp_batch *s = unwrap(env, argv[0]);
  if (s == NULL) return NULL;
  void *data, *address;
  size_t data_len, address_len;
  napi_typedarray_type type;
  napi_value ab;
  size_t offset;
  if (napi_get_typedarray_info(env, argv[1], &type, &data_len, &data, &ab, &offset) != napi_ok ||
      type != napi_uint8_array ||
      napi_get_typedarray_info(env, argv[2], &type, &address_len, &address, &ab, &offset) != napi_ok ||
      type != napi_uint8_array || address_len > (size_t)ADDR) {
    napi_throw_type_error(env, "ERR_INVALID_ARG_TYPE", "send(handle, data: Uint8Array, address: Uint8Array)");
    return NULL;
  }
  bool ok = false;
  if (!s->closing) {
    ssize_t n;
    do {
      n = sendto(s->fd, data, data_len, MSG_DONTWAIT, (struct sockaddr *)address, (socklen_t)address_len);
    } while (n < 0 && errno == EINTR);
    ok = n >= 0;
    s->stats[ok ? 0 : 1] += 1;
  }
  napi_value result;
  CALL(env, napi_get_boolean(env, ok, &result));
  return result;
}

/* close(handle): closes the socket; calls into JavaScript stop at once. */
static napi_value close_socket(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  CALL(env, napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  udp_batch *s = argc < 1 ? NULL : unwrap(env, argv[0]);
  if (s == NULL) return NULL;
  begin_close(s);
  return NULL;
}

NAPI_MODULE_INIT() {
  napi_property_descriptor props[] = {
      {"open", NULL, open_socket, NULL, NULL, NULL, napi_enumerable, NULL},
      {"send", NULL, send_one, NULL, NULL, NULL, napi_enumerable, NULL},
      {"close", NULL, close_socket, NULL, NULL, NULL, napi_enumerable, NULL},
  };
  CALL(env, napi_define_properties(env, exports, sizeof props / sizeof props[0], props));
  const char *names[] = {"abiVersion", "batch", "slot", "addressBytes", "rounds"};
  int32_t values[] = {ABI_VERSION, BATCH, SLOT, ADDR, ROUNDS};
  for (size_t i = 0; i < sizeof values / sizeof values[0]; i++) {
    napi_value v;
    CALL(env, napi_create_int32(env, values[i], &v));
    CALL(env, napi_set_named_property(env, exports, names[i], v));
  }
  return exports;
}
