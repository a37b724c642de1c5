/* bench/tls_load.c: the load generator of bench/tls_vs_postfix_dovecot.py (compiled by it at run time).

   C and OpenSSL so that the client costs no more than the TLS work itself: one thread per concurrent
   connection, blocking sockets, each thread in a loop until the deadline:

     handshake mode:  connect, TLS handshake (implicit TLS), read the greeting (SMTP "220 ", IMAP "* OK"),
                      send close_notify, close.  --resume offers the session ticket of the thread's previous
                      connection (TLS 1.3 tickets arrive before the greeting and are read with it).
     submit mode:     connect, [implicit TLS | greeting, EHLO, STARTTLS, TLS], EHLO, AUTH PLAIN, then
                      --messages times MAIL FROM, RCPT TO, DATA (one small message), then QUIT.

   Every reply code is checked; a wrong one counts as an error (the first few are printed on stderr) and the
   thread goes on with a new connection.  At the end one line of key=value pairs goes to stdout: completed
   operations, messages accepted, errors, wall time, the median and 99th percentile time of one operation
   (connection), this process's own CPU (getrusage), the TLS version,
   cipher and key exchange group of the last handshake, and how many handshakes were resumptions.

   Loopback only; the server certificate is not verified (self-signed, the same for every server). */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/ssl.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

static const char *host = "127.0.0.1", *sni = NULL, *mode = "handshake", *proto = "smtp", *tls = "implicit";
static const char *user = "", *password = "", *mail_from = "", *rcpt_to = "";
static int port, concurrency = 1, resume = 0, messages = 1, size = 1024, max_errors_shown = 5;
static double seconds = 5;
static struct timespec deadline;
static SSL_CTX *ctx;
static char *message;
static size_t message_len;
static char auth_b64[700]; /* base64 of at most 512 bytes */

static atomic_long ops, msgs, errors, resumed, handshakes;
static atomic_int errors_shown;
static pthread_mutex_t info_lock = PTHREAD_MUTEX_INITIALIZER;
static char info_version[32] = "-", info_cipher[64] = "-", info_group[64] = "-";

static double now(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return t.tv_sec + t.tv_nsec / 1e9;
}

static int past_deadline(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return t.tv_sec > deadline.tv_sec || (t.tv_sec == deadline.tv_sec && t.tv_nsec >= deadline.tv_nsec);
}

static void fail(const char *fmt, ...) {
  atomic_fetch_add(&errors, 1);
  if (atomic_fetch_add(&errors_shown, 1) >= max_errors_shown) return;
  va_list ap;
  va_start(ap, fmt);
  fprintf(stderr, "tls_load: ");
  vfprintf(stderr, fmt, ap);
  fprintf(stderr, "\n");
  va_end(ap);
  unsigned long e;
  while ((e = ERR_get_error()) != 0) {
    char buf[256];
    ERR_error_string_n(e, buf, sizeof buf);
    fprintf(stderr, "tls_load:   %s\n", buf);
  }
}

/* one connection: a socket, maybe TLS over it, and a line buffer */
struct conn {
  int fd;
  SSL *ssl;
  char buf[8192];
  size_t have;
};

static int conn_read(struct conn *c) {
  if (c->have >= sizeof c->buf - 1) return -1;
  int n = c->ssl ? SSL_read(c->ssl, c->buf + c->have, (int)(sizeof c->buf - 1 - c->have))
                 : (int)read(c->fd, c->buf + c->have, sizeof c->buf - 1 - c->have);
  if (n <= 0) return -1;
  c->have += (size_t)n;
  c->buf[c->have] = 0;
  return n;
}

static int conn_write(struct conn *c, const char *p, size_t len) {
  while (len > 0) {
    int n = c->ssl ? SSL_write(c->ssl, p, (int)len) : (int)write(c->fd, p, len);
    if (n <= 0) return -1;
    p += n;
    len -= (size_t)n;
  }
  return 0;
}

/* Reads one reply: SMTP "ddd-"... up to "ddd "; IMAP one line.  Returns the SMTP code (or 1 for an IMAP
   "* OK" greeting, 0 for another IMAP line), -1 on EOF/error.  The reply is left in last (truncated). */
static int read_reply(struct conn *c, int smtp, char *last, size_t last_size) {
  for (;;) {
    char *nl;
    while ((nl = memchr(c->buf, '\n', c->have)) == NULL)
      if (conn_read(c) < 0) return -1;
    size_t len = (size_t)(nl - c->buf) + 1;
    size_t keep = len < last_size ? len : last_size - 1;
    memcpy(last, c->buf, keep);
    last[keep] = 0;
    int done = 1, code = 0;
    if (smtp) {
      if (len < 4) return -1;
      code = atoi(c->buf);
      done = c->buf[3] != '-';
    } else {
      code = strncmp(c->buf, "* OK", 4) == 0;
    }
    memmove(c->buf, c->buf + len, c->have - len);
    c->have -= len;
    if (done) return code;
  }
}

static int expect(struct conn *c, int want, const char *what) {
  char last[256];
  int code = read_reply(c, 1, last, sizeof last);
  if (code != want) {
    fail("%s: expected %d, got %s", what, want, code < 0 ? "EOF or error" : last);
    return -1;
  }
  return 0;
}

static int command(struct conn *c, const char *cmd, int want) {
  char line[1000];
  int n = snprintf(line, sizeof line, "%s\r\n", cmd);
  if (conn_write(c, line, (size_t)n) < 0) {
    fail("%s: write failed", cmd);
    return -1;
  }
  return expect(c, want, cmd);
}

static int tcp_connect(void) {
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return -1;
  int one = 1;
  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  struct timeval tv = {30, 0};
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
  struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((unsigned short)port)};
  inet_pton(AF_INET, host, &a.sin_addr);
  if (connect(fd, (struct sockaddr *)&a, sizeof a) < 0) {
    close(fd);
    return -1;
  }
  return fd;
}

static int start_tls(struct conn *c, SSL_SESSION **session) {
  c->ssl = SSL_new(ctx);
  SSL_set_fd(c->ssl, c->fd);
  if (sni) SSL_set_tlsext_host_name(c->ssl, sni);
  if (resume && *session) SSL_set_session(c->ssl, *session);
  if (SSL_connect(c->ssl) != 1) {
    fail("TLS handshake failed");
    return -1;
  }
  atomic_fetch_add(&handshakes, 1);
  if (SSL_session_reused(c->ssl)) atomic_fetch_add(&resumed, 1);
  return 0;
}

static void remember(struct conn *c, SSL_SESSION **session) {
  if (!c->ssl) return;
  if (resume) {
    SSL_SESSION *s = SSL_get1_session(c->ssl);
    if (s && SSL_SESSION_is_resumable(s)) {
      if (*session) SSL_SESSION_free(*session);
      *session = s;
    } else if (s) {
      SSL_SESSION_free(s);
    }
  }
  if (pthread_mutex_trylock(&info_lock) == 0) {
    snprintf(info_version, sizeof info_version, "%s", SSL_get_version(c->ssl));
    snprintf(info_cipher, sizeof info_cipher, "%s", SSL_get_cipher_name(c->ssl));
    int g = SSL_get_shared_group(c->ssl, 0);
    const char *gn = g > 0 ? OBJ_nid2sn(g) : NULL;
    EVP_PKEY *tmp = NULL;
    if (SSL_get_peer_tmp_key(c->ssl, &tmp) == 1 && tmp) {
      const char *n = EVP_PKEY_get0_type_name(tmp);
      char gname[64] = "";
      size_t gl = 0;
      if (EVP_PKEY_get_group_name(tmp, gname, sizeof gname, &gl) == 1 && gname[0])
        snprintf(info_group, sizeof info_group, "%s", gname);
      else if (n)
        snprintf(info_group, sizeof info_group, "%s", n);
      EVP_PKEY_free(tmp);
    } else if (gn) {
      snprintf(info_group, sizeof info_group, "%s", gn);
    }
    pthread_mutex_unlock(&info_lock);
  }
}

static void conn_close(struct conn *c) {
  if (c->ssl) {
    SSL_shutdown(c->ssl); /* close_notify, as a polite client does; no wait for the peer's */
    SSL_free(c->ssl);
  }
  close(c->fd);
}

static int one_handshake(SSL_SESSION **session) {
  struct conn c = {.fd = tcp_connect()};
  if (c.fd < 0) {
    fail("connect: %s", strerror(errno));
    return -1;
  }
  int ok = start_tls(&c, session) == 0;
  if (ok) {
    char last[256];
    int smtp = strcmp(proto, "smtp") == 0;
    int code = read_reply(&c, smtp, last, sizeof last);
    if (smtp ? code != 220 : code != 1) {
      fail("greeting: %s", code < 0 ? "EOF or error" : last);
      ok = 0;
    } else {
      remember(&c, session);
    }
  }
  conn_close(&c);
  return ok ? 0 : -1;
}

static int one_submission(SSL_SESSION **session) {
  struct conn c = {.fd = tcp_connect()};
  if (c.fd < 0) {
    fail("connect: %s", strerror(errno));
    return -1;
  }
  int ok = 0;
  char cmd[800];
  if (strcmp(tls, "implicit") == 0) {
    if (start_tls(&c, session) < 0) goto out;
    if (expect(&c, 220, "greeting") < 0) goto out;
  } else {
    if (expect(&c, 220, "greeting") < 0) goto out;
    if (command(&c, "EHLO client.example.test", 250) < 0) goto out;
    if (command(&c, "STARTTLS", 220) < 0) goto out;
    if (start_tls(&c, session) < 0) goto out;
  }
  if (command(&c, "EHLO client.example.test", 250) < 0) goto out;
  snprintf(cmd, sizeof cmd, "AUTH PLAIN %s", auth_b64);
  if (command(&c, cmd, 235) < 0) goto out;
  for (int i = 0; i < messages; ++i) {
    snprintf(cmd, sizeof cmd, "MAIL FROM:<%s>", mail_from);
    if (command(&c, cmd, 250) < 0) goto out;
    snprintf(cmd, sizeof cmd, "RCPT TO:<%s>", rcpt_to);
    if (command(&c, cmd, 250) < 0) goto out;
    if (command(&c, "DATA", 354) < 0) goto out;
    if (conn_write(&c, message, message_len) < 0 || expect(&c, 250, "end of DATA") < 0) goto out;
    atomic_fetch_add(&msgs, 1);
  }
  if (command(&c, "QUIT", 221) < 0) goto out;
  remember(&c, session);
  ok = 1;
out:
  conn_close(&c);
  return ok ? 0 : -1;
}

/* durations of successful operations, per thread (merged at the end for the percentiles) */
struct lat {
  double *v;
  size_t n, cap;
};

static int cmp_double(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return x < y ? -1 : x > y;
}

static void *worker(void *arg) {
  struct lat *lat = arg;
  SSL_SESSION *session = NULL;
  int submit = strcmp(mode, "submit") == 0;
  while (!past_deadline()) {
    double t0 = now();
    int r = submit ? one_submission(&session) : one_handshake(&session);
    if (r == 0) {
      atomic_fetch_add(&ops, 1);
      if (lat->n == lat->cap) {
        lat->cap = lat->cap ? 2 * lat->cap : 1024;
        lat->v = realloc(lat->v, lat->cap * sizeof *lat->v);
      }
      lat->v[lat->n++] = now() - t0;
    } else {
      struct timespec pause = {0, 20 * 1000 * 1000}; /* no tight loop against a refusing server */
      nanosleep(&pause, NULL);
    }
    ERR_clear_error();
  }
  if (session) SSL_SESSION_free(session);
  return NULL;
}

static void make_message(void) {
  /* headers as a mail client writes them, then a body of `size` bytes in 72-character lines */
  size_t cap = (size_t)size + 1024;
  message = malloc(cap);
  int n = snprintf(message, cap,
                   "From: <%s>\r\nTo: <%s>\r\nSubject: submission benchmark\r\n"
                   "Date: Mon, 01 Jan 2024 00:00:00 +0000\r\nMessage-ID: <bench@client.example.test>\r\n"
                   "MIME-Version: 1.0\r\nContent-Type: text/plain; charset=us-ascii\r\n\r\n",
                   mail_from, rcpt_to);
  size_t len = (size_t)n;
  const char *words = "the quick brown fox jumps over the lazy dog ";
  size_t body = 0, col = 0;
  while (body < (size_t)size) {
    if (col == 72) {
      message[len++] = '\r';
      message[len++] = '\n';
      body += 2;
      col = 0;
    } else {
      message[len++] = words[body % 44];
      ++body;
      ++col;
    }
  }
  memcpy(message + len, "\r\n.\r\n", 5);
  message_len = len + 5;
}

static void usage(void) {
  fprintf(stderr,
          "usage: tls_load --port P [--host H] [--sni NAME] [--seconds S] [--concurrency N]\n"
          "                [--mode handshake|submit] [--proto smtp|imap] [--resume]\n"
          "                [--tls implicit|starttls] [--user U --password PW --from A --to A]\n"
          "                [--messages K] [--size BYTES]\n");
  exit(2);
}

int main(int argc, char **argv) {
  for (int i = 1; i < argc; ++i) {
    const char *a = argv[i];
    const char *v = i + 1 < argc ? argv[i + 1] : NULL;
#define OPT(name, action) \
  if (strcmp(a, name) == 0) { \
    if (!v) usage(); \
    action; \
    ++i; \
    continue; \
  }
    OPT("--host", host = v) OPT("--port", port = atoi(v)) OPT("--sni", sni = v)
    OPT("--seconds", seconds = atof(v)) OPT("--concurrency", concurrency = atoi(v)) OPT("--mode", mode = v)
    OPT("--proto", proto = v) OPT("--tls", tls = v) OPT("--user", user = v) OPT("--password", password = v)
    OPT("--from", mail_from = v) OPT("--to", rcpt_to = v) OPT("--messages", messages = atoi(v))
    OPT("--size", size = atoi(v))
    if (strcmp(a, "--resume") == 0) {
      resume = 1;
      continue;
    }
    usage();
  }
  if (port <= 0 || concurrency <= 0) usage();

  ctx = SSL_CTX_new(TLS_client_method());
  SSL_CTX_set_verify(ctx, SSL_VERIFY_NONE, NULL);
  SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
  SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF); /* sessions are kept per thread, by hand */

  if (strcmp(mode, "submit") == 0) {
    /* AUTH PLAIN: base64("\0user\0password") */
    unsigned char raw[512];
    size_t ul = strlen(user), pl = strlen(password);
    if (ul + pl + 2 > sizeof raw) usage();
    raw[0] = 0;
    memcpy(raw + 1, user, ul);
    raw[1 + ul] = 0;
    memcpy(raw + 2 + ul, password, pl);
    EVP_EncodeBlock((unsigned char *)auth_b64, raw, (int)(ul + pl + 2));
    make_message();
  }

  clock_gettime(CLOCK_MONOTONIC, &deadline);
  deadline.tv_sec += (time_t)seconds;
  deadline.tv_nsec += (long)((seconds - (double)(time_t)seconds) * 1e9);
  if (deadline.tv_nsec >= 1000000000L) {
    deadline.tv_sec += 1;
    deadline.tv_nsec -= 1000000000L;
  }
  double t0 = now();
  pthread_t *th = calloc((size_t)concurrency, sizeof *th);
  struct lat *lats = calloc((size_t)concurrency, sizeof *lats);
  pthread_attr_t attr;
  pthread_attr_init(&attr);
  pthread_attr_setstacksize(&attr, 256 * 1024);
  for (int i = 0; i < concurrency; ++i)
    if (pthread_create(&th[i], &attr, worker, &lats[i]) != 0) {
      perror("pthread_create");
      return 1;
    }
  for (int i = 0; i < concurrency; ++i) pthread_join(th[i], NULL);
  double elapsed = now() - t0;
  struct rusage ru;
  getrusage(RUSAGE_SELF, &ru);
  size_t total = 0;
  for (int i = 0; i < concurrency; ++i) total += lats[i].n;
  double *all = malloc((total + 1) * sizeof *all), p50 = 0, p99 = 0;
  for (int i = 0, k = 0; i < concurrency; ++i)
    for (size_t j = 0; j < lats[i].n; ++j) all[k++] = lats[i].v[j];
  if (total) {
    qsort(all, total, sizeof *all, cmp_double);
    p50 = all[total / 2];
    p99 = all[(size_t)((double)(total - 1) * 0.99)];
  }
  printf("ops=%ld msgs=%ld errors=%ld handshakes=%ld resumed=%ld elapsed=%.6f p50=%.6f p99=%.6f utime=%.6f stime=%.6f "
         "version=%s cipher=%s group=%s\n",
         atomic_load(&ops), atomic_load(&msgs), atomic_load(&errors), atomic_load(&handshakes),
         atomic_load(&resumed), elapsed, p50, p99, ru.ru_utime.tv_sec + ru.ru_utime.tv_usec / 1e6,
         ru.ru_stime.tv_sec + ru.ru_stime.tv_usec / 1e6, info_version, info_cipher, info_group);
  return 0;
}
