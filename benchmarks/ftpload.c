/* ftpload: a small C FTP load client for benchmarks/bench.py, so that the
 * client is never the bottleneck (a Python client on the same 2 cores
 * would be).
 *
 *   ftpload sessions HOST PORT USER PASS FILE THREADS TOTAL
 *       THREADS threads share TOTAL sessions; each session: connect,
 *       USER/PASS, PWD, TYPE I, EPSV, RETR FILE (read to EOF), QUIT.
 *   ftpload idle HOST PORT USER PASS COUNT
 *       opens COUNT logged-in control connections, prints "ready" on
 *       stdout, waits until its standard input ends, then NOOP on each
 *       (counting dead ones) and QUIT.
 *   ftpload retr|stor HOST PORT USER PASS FILE SIZE
 *       one session, one binary transfer of SIZE bytes (STOR sends a
 *       4 MiB random block over and over); seconds = from the command to
 *       the 226 reply.
 *
 * Prints one line: "ok=N fail=N bytes=N seconds=S first_error=..." .
 * Build: cc -O2 -pthread -o ftpload ftpload.c
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

static const char *host, *user, *pass, *file;
static int port;
static long total, next_session;
static long ok_count, fail_count, byte_count;
static char first_error[256];
static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;

typedef struct {
    int fd;
    char buf[8192];
    int len;
} conn_t;

static void fail(const char *what) {
    pthread_mutex_lock(&mu);
    if (!first_error[0]) snprintf(first_error, sizeof first_error, "%s (errno %d)", what, errno);
    pthread_mutex_unlock(&mu);
}

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec + t.tv_nsec / 1e9;
}

static int dial(int p) {
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0) return -1;
    struct timeval tv = {60, 0};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    struct sockaddr_in a = {0};
    a.sin_family = AF_INET;
    a.sin_port = htons(p);
    inet_pton(AF_INET, host, &a.sin_addr);
    if (connect(fd, (struct sockaddr *)&a, sizeof a) < 0) {
        close(fd);
        return -1;
    }
    return fd;
}

/* Close a connection whose conversation is over with a reset (SO_LINGER 0)
 * rather than a FIN: the server, which closed first, then keeps no socket
 * in TIME_WAIT. Thousands of those (a sessions run leaves two per session)
 * make every later bind and connect search a crowded port range, and
 * bench.py would have to wait a minute for them to expire. */
static void close_now(int fd) {
    struct linger l = {1, 0};
    setsockopt(fd, SOL_SOCKET, SO_LINGER, &l, sizeof l);
    close(fd);
}

/* Read one complete reply (multi-line aware); returns its code or -1. The
 * reply text (last line) is left in line. */
static int reply(conn_t *c, char *line, int cap) {
    int code = -1;
    for (;;) {
        char *nl = memchr(c->buf, '\n', c->len);
        if (!nl) {
            if (c->len == (int)sizeof c->buf) return -1;
            int n = recv(c->fd, c->buf + c->len, sizeof c->buf - c->len, 0);
            if (n <= 0) return -1;
            c->len += n;
            continue;
        }
        int ll = nl - c->buf + 1;
        int copy = ll < cap - 1 ? ll : cap - 1;
        memcpy(line, c->buf, copy);
        line[copy] = 0;
        memmove(c->buf, c->buf + ll, c->len - ll);
        c->len -= ll;
        if (ll >= 4 && line[0] >= '0' && line[0] <= '9' && line[3] == ' ') {
            int this = atoi(line);
            if (code == -1 || this == code) return this;
        } else if (ll >= 4 && line[3] == '-' && code == -1) {
            code = atoi(line);
        }
    }
}

static int cmd(conn_t *c, const char *text, char *line, int cap) {
    char out[512];
    int n = snprintf(out, sizeof out, "%s\r\n", text);
    if (send(c->fd, out, n, MSG_NOSIGNAL) != n) return -1;
    return reply(c, line, cap);
}

static int login(conn_t *c) {
    char line[1024], text[300];
    c->len = 0;
    c->fd = dial(port);
    if (c->fd < 0) return fail("connect"), -1;
    if (reply(c, line, sizeof line) != 220) return fail("greeting"), -1;
    snprintf(text, sizeof text, "USER %s", user);
    int code = cmd(c, text, line, sizeof line);
    if (code == 230) return 0; /* vsftpd's anonymous login needs no PASS */
    if (code != 331) return fail("USER"), -1;
    snprintf(text, sizeof text, "PASS %s", pass);
    if (cmd(c, text, line, sizeof line) != 230) return fail("PASS"), -1;
    return 0;
}

static long one_session(void) {
    conn_t c;
    char line[1024], text[600];
    long got = -1;
    if (login(&c) < 0) goto out;
    if (cmd(&c, "PWD", line, sizeof line) != 257) { fail("PWD"); goto out; }
    if (cmd(&c, "TYPE I", line, sizeof line) != 200) { fail("TYPE"); goto out; }
    if (cmd(&c, "EPSV", line, sizeof line) != 229) { fail("EPSV"); goto out; }
    char *p = strstr(line, "(|||");
    if (!p) { fail("EPSV reply"); goto out; }
    int dport = atoi(p + 4);
    int dfd = dial(dport);
    if (dfd < 0) { fail("data connect"); goto out; }
    snprintf(text, sizeof text, "RETR %s", file);
    int code = cmd(&c, text, line, sizeof line);
    if (code != 150 && code != 125) { close(dfd); fail("RETR"); goto out; }
    static __thread char data[1 << 20];
    long n = 0;
    for (;;) {
        int k = recv(dfd, data, sizeof data, 0);
        if (k < 0) { close(dfd); fail("data recv"); goto out; }
        if (k == 0) break;
        n += k;
    }
    if (reply(&c, line, sizeof line) != 226) { close(dfd); fail("226"); goto out; }
    close_now(dfd); /* after the 226: the server has its end of file */
    if (cmd(&c, "QUIT", line, sizeof line) != 221) { fail("QUIT"); goto out; }
    got = n;
    close_now(c.fd);
    return got;
out:
    if (c.fd >= 0) close(c.fd);
    return got;
}

/* One timed transfer: RETR to nothing, or STOR of size bytes. */
static double one_transfer(int upload, long size) {
    conn_t c;
    char line[1024], text[600];
    double t = -1;
    if (login(&c) < 0) goto out;
    if (cmd(&c, "TYPE I", line, sizeof line) != 200) { fail("TYPE"); goto out; }
    if (cmd(&c, "EPSV", line, sizeof line) != 229) { fail("EPSV"); goto out; }
    char *p = strstr(line, "(|||");
    if (!p) { fail("EPSV reply"); goto out; }
    int dfd = dial(atoi(p + 4));
    if (dfd < 0) { fail("data connect"); goto out; }
    int bufsize = 4 << 20;
    char *buf = malloc(bufsize);
    for (int i = 0; i < bufsize; i++) buf[i] = (char)(rand() >> 7);
    double t0 = now();
    snprintf(text, sizeof text, "%s %s", upload ? "STOR" : "RETR", file);
    int code = cmd(&c, text, line, sizeof line);
    if (code != 150 && code != 125) { close(dfd); free(buf); fail("transfer command"); goto out; }
    long n = 0;
    if (upload) {
        while (n < size) {
            long k = size - n < bufsize ? size - n : bufsize;
            long w = send(dfd, buf, k, MSG_NOSIGNAL);
            if (w <= 0) break;
            n += w;
        }
    } else {
        for (;;) {
            long k = recv(dfd, buf, bufsize, 0);
            if (k <= 0) break;
            n += k;
        }
    }
    close(dfd);
    free(buf);
    if (reply(&c, line, sizeof line) != 226) { fail("226"); goto out; }
    if (n != size) { fail("size mismatch"); goto out; }
    t = now() - t0;
    cmd(&c, "QUIT", line, sizeof line);
out:
    if (c.fd >= 0) close(c.fd);
    return t;
}

static void *worker(void *arg) {
    (void)arg;
    for (;;) {
        pthread_mutex_lock(&mu);
        long i = next_session++;
        pthread_mutex_unlock(&mu);
        if (i >= total) return NULL;
        long n = one_session();
        pthread_mutex_lock(&mu);
        if (n >= 0) ok_count++, byte_count += n;
        else fail_count++;
        pthread_mutex_unlock(&mu);
    }
}

int main(int argc, char **argv) {
    struct rlimit rl;
    getrlimit(RLIMIT_NOFILE, &rl);
    rl.rlim_cur = rl.rlim_max;
    setrlimit(RLIMIT_NOFILE, &rl);
    if (argc == 9 && !strcmp(argv[1], "sessions")) {
        host = argv[2], port = atoi(argv[3]), user = argv[4], pass = argv[5], file = argv[6];
        int threads = atoi(argv[7]);
        total = atol(argv[8]);
        pthread_t *t = calloc(threads, sizeof *t);
        double t0 = now();
        for (int i = 0; i < threads; i++) pthread_create(&t[i], NULL, worker, NULL);
        for (int i = 0; i < threads; i++) pthread_join(t[i], NULL);
        printf("ok=%ld fail=%ld bytes=%ld seconds=%.6f first_error=%s\n", ok_count, fail_count,
               byte_count, now() - t0, first_error);
        return 0;
    }
    if (argc == 8 && (!strcmp(argv[1], "retr") || !strcmp(argv[1], "stor"))) {
        host = argv[2], port = atoi(argv[3]), user = argv[4], pass = argv[5], file = argv[6];
        long size = atol(argv[7]);
        double t = one_transfer(argv[1][0] == 's', size);
        printf("ok=%d fail=%d bytes=%ld seconds=%.6f first_error=%s\n", t >= 0, t < 0, size, t,
               first_error);
        return 0;
    }
    if (argc == 7 && !strcmp(argv[1], "idle")) {
        host = argv[2], port = atoi(argv[3]), user = argv[4], pass = argv[5];
        int count = atoi(argv[6]), hold = 0;
        conn_t *cs = calloc(count, sizeof *cs);
        char line[1024];
        for (int i = 0; i < count; i++) {
            if (login(&cs[i]) < 0) {
                fail_count++;
                if (cs[i].fd >= 0) close(cs[i].fd);
                cs[i].fd = -1;
            } else ok_count++;
        }
        printf("ready ok=%ld fail=%ld\n", ok_count, fail_count);
        fflush(stdout);
        char b;
        while (read(hold, &b, 1) > 0) {}
        long dead = 0;
        for (int i = 0; i < count; i++) {
            if (cs[i].fd < 0) continue;
            if (cmd(&cs[i], "NOOP", line, sizeof line) != 200) dead++;
            else if (cmd(&cs[i], "QUIT", line, sizeof line) == 221) {
                close_now(cs[i].fd);
                continue;
            }
            close(cs[i].fd);
        }
        printf("ok=%ld fail=%ld dead=%ld seconds=0 first_error=%s\n", ok_count, fail_count, dead,
               first_error);
        return 0;
    }
    fprintf(stderr, "usage: see the comment at the top of ftpload.c\n");
    return 2;
}
