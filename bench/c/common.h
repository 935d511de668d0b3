/*
 * Helpers shared by the C benchmark clients (c_sync.c, c_cb.c): the command
 * line, payloads, message counting and the JSON line each run prints. Same
 * conventions as bench/src/lib.rs:
 *
 *   PROGRAM MODE HOST PORT QOS COUNT SIZE RUN TOPIC [CLIENT_ID]
 *
 * Payloads are "RUN:SEQ:" (SEQ: 10 digits) padded with 'x' to SIZE bytes.
 */
#ifndef BENCH_COMMON_H
#define BENCH_COMMON_H

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "MQTTClient.h"

#define IDLE_MS 10000L
#define WAIT_MS 30000L

struct args {
	const char *mode, *host, *run, *topic;
	int port, qos;
	long count, size;
	char uri[256];
	char client_id[256];
};

static void die(const char *what, int rc)
{
	fprintf(stderr, "error: %s (rc %d: %s)\n", what, rc, MQTTClient_strerror(rc));
	exit(1);
}

static void parse_args(struct args *a, int argc, char **argv, const char *program)
{
	if (argc < 9) {
		fprintf(stderr, "usage: %s MODE HOST PORT QOS COUNT SIZE RUN TOPIC [CLIENT_ID]\n", program);
		exit(1);
	}
	a->mode = argv[1];
	a->host = argv[2];
	a->port = atoi(argv[3]);
	a->qos = atoi(argv[4]);
	a->count = atol(argv[5]);
	a->size = atol(argv[6]);
	a->run = argv[7];
	a->topic = argv[8];
	if (a->qos < 0 || a->qos > 2 || a->count < 0 || a->size < 0 || a->port <= 0) {
		fprintf(stderr, "error: bad arguments\n");
		exit(1);
	}
	snprintf(a->uri, sizeof a->uri, "tcp://%s:%d", a->host, a->port);
	if (argc > 9)
		snprintf(a->client_id, sizeof a->client_id, "%s", argv[9]);
	else
		snprintf(a->client_id, sizeof a->client_id, "%s-%s-%s", program, a->mode, a->run);
}

static inline int64_t now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

static inline double ms_between(int64_t from, int64_t to)
{
	return (double)(to - from) / 1e6;
}

struct payload {
	char *buf;
	size_t len, prefix;
};

static void payload_init(struct payload *p, const char *run, long size)
{
	size_t r = strlen(run);
	p->prefix = r + 1;
	p->len = (size_t)size > r + 12 ? (size_t)size : r + 12;
	p->buf = malloc(p->len);
	if (!p->buf)
		die("out of memory", 0);
	memset(p->buf, 'x', p->len);
	memcpy(p->buf, run, r);
	p->buf[r] = ':';
}

static inline char *payload_fill(struct payload *p, long seq)
{
	unsigned long n = (unsigned long)seq;
	for (int i = 9; i >= 0; i--) {
		p->buf[p->prefix + i] = (char)('0' + n % 10);
		n /= 10;
	}
	p->buf[p->prefix + 10] = ':';
	return p->buf;
}

struct seen {
	const char *run;
	size_t run_len;
	unsigned char *seen;
	long count, distinct, duplicates, foreign;
	char first_foreign[40]; /* start of the first foreign payload, for diagnosis */
};

static void seen_init(struct seen *s, const char *run, long count)
{
	s->run = run;
	s->run_len = strlen(run);
	s->seen = calloc((size_t)count + 1, 1);
	if (!s->seen)
		die("out of memory", 0);
	s->count = count;
	s->distinct = s->duplicates = s->foreign = 0;
	s->first_foreign[0] = 0;
}

static void seen_foreign(struct seen *s, const char *p, int len)
{
	if (s->foreign++ == 0) {
		int n = len < (int)sizeof s->first_foreign - 1 ? len : (int)sizeof s->first_foreign - 1;
		for (int i = 0; i < n; i++)
			s->first_foreign[i] = (p[i] >= 32 && p[i] < 127 && p[i] != '"' && p[i] != '\\') ? p[i] : '?';
		s->first_foreign[n > 0 ? n : 0] = 0;
	}
}

/* Records a payload; returns 1 for a new message of the run. */
static int seen_record(struct seen *s, const void *payload, int len)
{
	const char *p = payload;
	size_t r = s->run_len;
	if (len < 0 || (size_t)len < r + 12 || memcmp(p, s->run, r) != 0 || p[r] != ':') {
		seen_foreign(s, p, len);
		return 0;
	}
	long seq = 0;
	for (size_t i = r + 1; i < r + 11; i++) {
		if (p[i] < '0' || p[i] > '9') {
			seen_foreign(s, p, len);
			return 0;
		}
		seq = seq * 10 + (p[i] - '0');
	}
	if (seq >= s->count) {
		seen_foreign(s, p, len);
		return 0;
	}
	if (s->seen[seq]) {
		s->duplicates++;
		return 0;
	}
	s->seen[seq] = 1;
	s->distinct++;
	return 1;
}

static inline int seen_complete(const struct seen *s)
{
	return s->distinct == s->count;
}

static long peak_rss_kib(void)
{
	FILE *f = fopen("/proc/self/status", "r");
	char line[256];
	long kib = 0;
	if (!f)
		return 0;
	while (fgets(line, sizeof line, f))
		if (strncmp(line, "VmHWM:", 6) == 0) {
			kib = atol(line + 6);
			break;
		}
	fclose(f);
	return kib;
}

/* Starts the JSON line (closed by report_end). */
static void report_begin(const char *client, const struct args *a)
{
	printf("{\"client\":\"%s\",\"mode\":\"%s\",\"qos\":%d,\"count\":%ld,\"size\":%ld,\"run\":\"%s\"",
	       client, a->mode, a->qos, a->count, a->size, a->run);
}

static void report_end(double connect_ms, double disconnect_ms)
{
	printf(",\"connect_ms\":%.6f,\"disconnect_ms\":%.6f,\"peak_rss_kib\":%ld}\n", connect_ms,
	       disconnect_ms, peak_rss_kib());
	fflush(stdout);
}

static void report_throughput(long messages, int64_t elapsed_ns)
{
	double s = (double)elapsed_ns / 1e9;
	printf(",\"messages\":%ld,\"elapsed_s\":%.6f,\"rate\":%.6f", messages, s, s > 0 ? messages / s : 0.0);
}

static void report_receive(const struct seen *s, int64_t first, int64_t last)
{
	double span = (first && last) ? (double)(last - first) / 1e9 : 0.0;
	double n = s->distinct > 0 ? (double)(s->distinct - 1) : 0.0;
	printf(",\"received\":%ld,\"duplicates\":%ld,\"foreign\":%ld,\"first_foreign\":\"%s\",\"elapsed_s\":%.6f,"
	       "\"rate\":%.6f",
	       s->distinct, s->duplicates, s->foreign, s->first_foreign, span, span > 0 ? n / span : 0.0);
}

static int cmp_i64(const void *x, const void *y)
{
	int64_t a = *(const int64_t *)x, b = *(const int64_t *)y;
	return (a > b) - (a < b);
}

static double percentile_us(const int64_t *sorted, long n, double p)
{
	if (n == 0)
		return 0.0;
	long rank = (long)((p / 100.0) * (double)n + 0.999999999);
	if (rank < 1)
		rank = 1;
	if (rank > n)
		rank = n;
	return (double)sorted[rank - 1] / 1e3;
}

static void report_latency(long received, int64_t *samples, long n)
{
	double sum = 0;
	qsort(samples, (size_t)n, sizeof *samples, cmp_i64);
	for (long i = 0; i < n; i++)
		sum += (double)samples[i];
	printf(",\"received\":%ld,\"samples\":%ld,\"p50_us\":%.6f,\"p99_us\":%.6f,\"mean_us\":%.6f", received, n,
	       percentile_us(samples, n, 50.0), percentile_us(samples, n, 99.0), n ? sum / (double)n / 1e3 : 0.0);
}

/* The reconnect mode: per round, how long the disconnect and the following
 * connect took. */
struct rounds {
	long n;
	double *connect_ms, *disconnect_ms;
};

/* COUNT rounds of MQTTClient_disconnect, then MQTTClient_connect with the
 * options of the first connect (clean session, keepalive 30 s), on the
 * connected client c; each call is timed alone. */
static void reconnect_rounds(MQTTClient c, long count, struct rounds *r)
{
	r->n = 0;
	r->connect_ms = calloc((size_t)count + 1, sizeof *r->connect_ms);
	r->disconnect_ms = calloc((size_t)count + 1, sizeof *r->disconnect_ms);
	if (!r->connect_ms || !r->disconnect_ms)
		die("out of memory", 0);
	for (long i = 0; i < count; i++) {
		MQTTClient_connectOptions opts = MQTTClient_connectOptions_initializer;
		opts.keepAliveInterval = 30;
		opts.cleansession = 1;
		int64_t t0 = now_ns();
		int rc = MQTTClient_disconnect(c, 10000);
		int64_t t1 = now_ns();
		if (rc != MQTTCLIENT_SUCCESS)
			die("disconnect", rc);
		rc = MQTTClient_connect(c, &opts);
		int64_t t2 = now_ns();
		if (rc != MQTTCLIENT_SUCCESS)
			die("connect again", rc);
		if (!MQTTClient_isConnected(c)) {
			fprintf(stderr, "error: reconnect: not connected after connect\n");
			exit(1);
		}
		r->disconnect_ms[i] = ms_between(t0, t1);
		r->connect_ms[i] = ms_between(t1, t2);
		r->n++;
	}
}

static void report_list(const char *key, const double *v, long n)
{
	printf(",\"%s\":[", key);
	for (long i = 0; i < n; i++)
		printf("%s%.6f", i ? "," : "", v[i]);
	printf("]");
}

static void report_rounds(const struct rounds *r)
{
	printf(",\"rounds\":%ld", r->n);
	report_list("round_connect_ms", r->connect_ms, r->n);
	report_list("round_disconnect_ms", r->disconnect_ms, r->n);
}

#endif
