/*
 * Benchmark client: Paho C synchronous API used the plain way, without
 * callbacks: MQTTClient_publishMessage + MQTTClient_waitForCompletion at
 * QoS 1/2 (the library polls in 100 ms steps there, so this is capped near
 * 10 msg/s and run with small counts), MQTTClient_receive to receive.
 *
 * Modes: pub, recv, lat, reconnect (see bench/src/lib.rs for the conventions).
 */
#include "common.h"

static const char *NAME = "c_sync";

static MQTTClient connect_client(const struct args *a, int clean, double *connect_ms)
{
	MQTTClient c;
	MQTTClient_connectOptions opts = MQTTClient_connectOptions_initializer;
	int64_t t0 = now_ns();
	int rc = MQTTClient_create(&c, a->uri, a->client_id, MQTTCLIENT_PERSISTENCE_NONE, NULL);
	if (rc != MQTTCLIENT_SUCCESS)
		die("create", rc);
	opts.keepAliveInterval = 30;
	opts.cleansession = clean;
	if ((rc = MQTTClient_connect(c, &opts)) != MQTTCLIENT_SUCCESS)
		die("connect", rc);
	*connect_ms = ms_between(t0, now_ns());
	return c;
}

static double close_client(MQTTClient c)
{
	int64_t t0 = now_ns();
	int rc = MQTTClient_disconnect(c, 10000);
	if (rc != MQTTCLIENT_SUCCESS)
		die("disconnect", rc);
	MQTTClient_destroy(&c);
	return ms_between(t0, now_ns());
}

static void do_publish(const struct args *a)
{
	double connect_ms;
	MQTTClient c = connect_client(a, 1, &connect_ms);
	struct payload p;
	payload_init(&p, a->run, a->size);
	MQTTClient_message msg = MQTTClient_message_initializer;
	msg.payloadlen = (int)p.len;
	msg.qos = a->qos;
	int64_t t0 = now_ns();
	for (long seq = 0; seq < a->count; seq++) {
		MQTTClient_deliveryToken token = 0;
		msg.payload = payload_fill(&p, seq);
		int rc = MQTTClient_publishMessage(c, a->topic, &msg, &token);
		if (rc != MQTTCLIENT_SUCCESS)
			die("publishMessage", rc);
		if (a->qos > 0 && (rc = MQTTClient_waitForCompletion(c, token, WAIT_MS)) != MQTTCLIENT_SUCCESS)
			die("waitForCompletion", rc);
	}
	int64_t elapsed = now_ns() - t0;
	double disconnect_ms = close_client(c);
	report_begin(NAME, a);
	report_throughput(a->count, elapsed);
	report_end(connect_ms, disconnect_ms);
}

/* Receives one message; returns 1 when it was new for the run. */
static int receive_one(MQTTClient c, struct seen *s, int *got)
{
	char *topic = NULL;
	int topic_len = 0;
	MQTTClient_message *m = NULL;
	int rc = MQTTClient_receive(c, &topic, &topic_len, &m, IDLE_MS);
	*got = 0;
	if (rc != MQTTCLIENT_SUCCESS && rc != MQTTCLIENT_TOPICNAME_TRUNCATED)
		die("receive", rc);
	if (!m)
		return 0;
	*got = 1;
	int fresh = seen_record(s, m->payload, m->payloadlen);
	MQTTClient_freeMessage(&m);
	MQTTClient_free(topic);
	return fresh;
}

static void do_receive(const struct args *a)
{
	double connect_ms;
	struct seen s;
	int64_t first = 0, last = 0;
	seen_init(&s, a->run, a->count);
	MQTTClient c = connect_client(a, 0, &connect_ms);
	while (!seen_complete(&s)) {
		int got;
		int fresh = receive_one(c, &s, &got);
		if (!got)
			break;
		int64_t now = now_ns();
		if (!first)
			first = now;
		if (fresh)
			last = now;
	}
	double disconnect_ms = close_client(c);
	report_begin(NAME, a);
	report_receive(&s, first, last);
	report_end(connect_ms, disconnect_ms);
}

static void do_latency(const struct args *a)
{
	double connect_ms;
	struct seen s;
	struct payload p;
	seen_init(&s, a->run, a->count);
	payload_init(&p, a->run, a->size);
	int64_t *samples = calloc((size_t)a->count + 1, sizeof *samples);
	long n = 0;
	MQTTClient c = connect_client(a, 1, &connect_ms);
	int rc = MQTTClient_subscribe(c, a->topic, 1);
	if (rc != MQTTCLIENT_SUCCESS)
		die("subscribe", rc);
	MQTTClient_message msg = MQTTClient_message_initializer;
	msg.payloadlen = (int)p.len;
	msg.qos = 1;
	MQTTClient_deliveryToken token = 0;
	for (long seq = 0; seq < a->count; seq++) {
		int64_t t0 = now_ns();
		msg.payload = payload_fill(&p, seq);
		/* With one message in flight, publish itself waits (100 ms steps)
		 * when the previous PUBACK has not been read yet; MQTTClient_receive
		 * reads PUBACKs while it waits for the message. */
		if ((rc = MQTTClient_publishMessage(c, a->topic, &msg, &token)) != MQTTCLIENT_SUCCESS)
			die("publishMessage", rc);
		for (;;) {
			int got;
			if (receive_one(c, &s, &got)) {
				samples[n++] = now_ns() - t0;
				break;
			}
			if (!got) {
				fprintf(stderr, "error: latency: message did not come back\n");
				exit(1);
			}
		}
	}
	if ((rc = MQTTClient_waitForCompletion(c, token, WAIT_MS)) != MQTTCLIENT_SUCCESS)
		die("waitForCompletion", rc);
	double disconnect_ms = close_client(c);
	report_begin(NAME, a);
	report_latency(s.distinct, samples, n);
	report_end(connect_ms, disconnect_ms);
}

/* Rounds of disconnect, then connect again, on one client. */
static void do_reconnect(const struct args *a)
{
	double connect_ms;
	struct rounds r;
	MQTTClient c = connect_client(a, 1, &connect_ms);
	reconnect_rounds(c, a->count, &r);
	double disconnect_ms = close_client(c);
	report_begin(NAME, a);
	report_rounds(&r);
	report_end(connect_ms, disconnect_ms);
}

int main(int argc, char **argv)
{
	struct args a;
	parse_args(&a, argc, argv, NAME);
	if (strcmp(a.mode, "pub") == 0)
		do_publish(&a);
	else if (strcmp(a.mode, "recv") == 0)
		do_receive(&a);
	else if (strcmp(a.mode, "lat") == 0)
		do_latency(&a);
	else if (strcmp(a.mode, "reconnect") == 0)
		do_reconnect(&a);
	else {
		fprintf(stderr, "error: unknown mode %s\n", a.mode);
		return 1;
	}
	return 0;
}
