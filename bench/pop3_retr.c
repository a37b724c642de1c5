/* bench/pop3_retr.c: the client of pop3_vs_dovecot.py's RETR + DELE test, in C so that the client is not
 * what is measured (a Python client costs as much CPU per command as the servers do, and the test is one
 * command at a time).
 *
 *   pop3_retr PORT USER PASSWORD [WINDOW]
 *
 * Logs in on 127.0.0.1:PORT with USER/PASS, then for every message of STAT: RETR n (the whole reply read
 * up to its terminating line), DELE n; then QUIT. With WINDOW > 1 (RFC 2449 PIPELINING), up to WINDOW of
 * these commands are sent ahead of their replies; the default, 1, waits for each reply. Prints "MESSAGES BYTES", BYTES being the sum of the
 * RETR replies between the status line and the terminating ".\r\n", still dot-stuffed. Exits 1 with a
 * message on stderr when a reply is not +OK or the connection fails. */
#define _GNU_SOURCE /* memmem */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

static int sock;
static char* buf;
static size_t cap = 1 << 20, start, end; /* unread bytes: buf[start, end) */

static void die(const char* what, const char* detail) {
  fprintf(stderr, "pop3_retr: %s%s%s\n", what, detail ? ": " : "", detail ? detail : "");
  exit(1);
}

/* Reads more from the socket, keeping buf[keep, end). Returns the new offset of `keep`. */
static size_t more(size_t keep) {
  if (keep > 0) {
    memmove(buf, buf + keep, end - keep);
    end -= keep;
    start -= keep;
  }
  if (end == cap) {
    cap *= 2;
    if (!(buf = realloc(buf, cap))) die("out of memory", NULL);
  }
  ssize_t n = recv(sock, buf + end, cap - end, 0);
  if (n <= 0) die("connection closed by the server", NULL);
  end += (size_t)n;
  return 0;
}

/* The next line without its CRLF (NUL-terminated in place); exits unless it starts with +OK. */
static char* ok_line(const char* command) {
  for (;;) {
    char* lf = memchr(buf + start, '\n', end - start);
    if (lf) {
      char* line = buf + start;
      start = (size_t)(lf - buf) + 1;
      *lf = 0;
      if (lf > line && lf[-1] == '\r') lf[-1] = 0;
      if (strncmp(line, "+OK", 3) != 0) die(command, line);
      return line;
    }
    start = more(start);
  }
}

/* The body of a multi-line reply; returns its length without the terminating ".\r\n". */
static size_t multiline(void) {
  size_t searched = 0; /* bytes of the body already searched for CRLF "." CRLF */
  for (;;) {
    size_t len = end - start;
    if (len >= 3 && memcmp(buf + start, ".\r\n", 3) == 0) { /* an empty body */
      start += 3;
      return 0;
    }
    char* t = memmem(buf + start + searched, len - searched, "\r\n.\r\n", 5);
    if (t) {
      size_t body = (size_t)(t + 2 - (buf + start));
      start += body + 3;
      return body;
    }
    searched = len >= 4 ? len - 4 : 0;
    start = more(start);
  }
}

static void cmd(const char* text) {
  size_t n = strlen(text);
  if (send(sock, text, n, 0) != (ssize_t)n) die("send", text);
}

int main(int argc, char** argv) {
  if (argc != 4 && argc != 5) die("usage: pop3_retr PORT USER PASSWORD [WINDOW]", NULL);
  long window = argc == 5 ? atol(argv[4]) : 1;
  if (window < 1) die("WINDOW must be at least 1", NULL);
  if (!(buf = malloc(cap))) die("out of memory", NULL);
  struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((unsigned short)atoi(argv[1]))};
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  sock = socket(AF_INET, SOCK_STREAM, 0);
  int one = 1;
  if (sock < 0 || connect(sock, (struct sockaddr*)&a, sizeof a) != 0) die("connect", NULL);
  setsockopt(sock, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  char line[1200];
  ok_line("greeting");
  snprintf(line, sizeof line, "USER %s\r\n", argv[2]);
  cmd(line);
  ok_line("USER");
  snprintf(line, sizeof line, "PASS %s\r\n", argv[3]);
  cmd(line);
  ok_line("PASS");
  cmd("STAT\r\n");
  long messages = atol(ok_line("STAT") + 3);
  unsigned long long bytes = 0;
  /* command k (0-based) is RETR k/2+1 when k is even, DELE k/2+1 when odd; `sent` commands are out and the
   * replies of the first `done` are read */
  long total = 2 * messages, sent = 0;
  for (long done = 0; done < total; ++done) {
    while (sent < total && sent - done < window) {
      snprintf(line, sizeof line, "%s %ld\r\n", sent % 2 ? "DELE" : "RETR", sent / 2 + 1);
      cmd(line);
      ++sent;
    }
    if (done % 2 == 0) {
      ok_line("RETR");
      bytes += multiline();
    } else {
      ok_line("DELE");
    }
  }
  cmd("QUIT\r\n");
  ok_line("QUIT");
  printf("%ld %llu\n", messages, bytes);
  return 0;
}
