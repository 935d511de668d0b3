/*
 * Benchmark client: Paho C synchronous API in callback mode, the way C users
 * write it for speed: MQTTClient_setCallbacks before connecting; a publish
 * waits on a condition variable signalled from deliveryComplete (one message
 * in flight); messages are counted in messageArrived.
 *
 * Modes: pub, pubw, recv, lat, reconnect (see bench/src/lib.rs), pub5 and pub5u
 * (MQTT 5 publishMessage5, pub5u with a user property), plus the orchestrator's
 * helpers: prep (create a persistent session subscribed to TOPIC) and count
 * (the checker: drain a persistent session and count the messages of RUN).
 */
#include <pthread.h>

#include "common.h"

static const char *NAME = "c_cb";

struct ctx {
	pthread_mutex_t lock;
	pthread_cond_t changed;
	long acks;          /* deliveryComplete calls */
	struct seen seen;
	int64_t first, last; /* first message, last new message of the run */
	int lost;
	/* The main thread waits for this many acks / new messages: the callbacks
	 * signal only then (a signal per message would wake it for nothing). */
	long want_acks, want_distinct;
};

static struct ctx g = {PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, 0, {0}, 0, 0, 0, 0, 0};

static void on_lost(void *context, char *cause)
{
	(void)context;
	(void)cause;
	pthread_mutex_lock(&g.lock);
	g.lost = 1;
	pthread_cond_broadcast(&g.changed);
	pthread_mutex_unlock(&g.lock);
}

static int on_message(void *context, char *topic, int topic_len, MQTTClient_message *m)
{
	(void)context;
	(void)topic_len;
	int64_t now = now_ns();
	pthread_mutex_lock(&g.lock);
	if (!g.first)
		g.first = now;
	if (seen_record(&g.seen, m->payload, m->payloadlen)) {
		g.last = now;
		if (g.seen.distinct >= g.want_distinct)
			pthread_cond_signal(&g.changed);
	}
	pthread_mutex_unlock(&g.lock);
	MQTTClient_freeMessage(&m);
	MQTTClient_free(topic);
	return 1;
}

static void on_delivered(void *context, MQTTClient_deliveryToken token)
{
	(void)context;
	(void)token;
	pthread_mutex_lock(&g.lock);
	g.acks++;
	if (g.acks >= g.want_acks)
		pthread_cond_signal(&g.changed);
	pthread_mutex_unlock(&g.lock);
}

/* Connects; window > 0: reliable = 0 and maxInflightMessages = window (else the
 * library's default, reliable: one message in flight). */
static MQTTClient connect_client(const struct args *a, int clean, long window, double *connect_ms)
{
	MQTTClient c;
	MQTTClient_connectOptions opts = MQTTClient_connectOptions_initializer;
	/* BENCH_PERSISTENCE=file:DIR (bench.py's persistence case): the
	 * library's file persistence in DIR; unset: none. */
	const char *pers = getenv("BENCH_PERSISTENCE");
	int ptype = MQTTCLIENT_PERSISTENCE_NONE;
	void *pctx = NULL;
	if (pers != NULL)
	{
		if (strncmp(pers, "file:", 5) != 0)
			die("BENCH_PERSISTENCE must be file:DIR", -1);
		ptype = MQTTCLIENT_PERSISTENCE_DEFAULT;
		pctx = (void *)(pers + 5);
	}
	int64_t t0 = now_ns();
	int rc = MQTTClient_create(&c, a->uri, a->client_id, ptype, pctx);
	if (rc != MQTTCLIENT_SUCCESS)
		die("create", rc);
	if ((rc = MQTTClient_setCallbacks(c, NULL, on_lost, on_message, on_delivered)) != MQTTCLIENT_SUCCESS)
		die("setCallbacks", rc);
	opts.keepAliveInterval = 30;
	opts.cleansession = clean;
	if (window > 0) {
		opts.reliable = 0;
		opts.maxInflightMessages = (int)window;
	}
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

/* Waits until `acks` deliveries are complete and `distinct` new messages
 * arrived, or IDLE_MS pass without progress; returns whether they did. */
static int wait_for(long acks, long distinct)
{
	int ok = 1;
	pthread_mutex_lock(&g.lock);
	g.want_acks = acks;
	g.want_distinct = distinct;
	while (g.acks < acks || g.seen.distinct < distinct) {
		struct timespec ts;
		long before = g.seen.distinct + g.acks;
		clock_gettime(CLOCK_REALTIME, &ts);
		ts.tv_sec += IDLE_MS / 1000;
		if (g.lost || (pthread_cond_timedwait(&g.changed, &g.lock, &ts) != 0 &&
			       before == g.seen.distinct + g.acks)) {
			ok = g.acks >= acks && g.seen.distinct >= distinct;
			break;
		}
	}
	pthread_mutex_unlock(&g.lock);
	return ok;
}

static void do_publish(const struct args *a)
{
	double connect_ms;
	MQTTClient c = connect_client(a, 1, 0, &connect_ms);
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
		if (a->qos > 0 && !wait_for(seq + 1, 0))
			die("no acknowledgement", 0);
	}
	int64_t elapsed = now_ns() - t0;
	double disconnect_ms = close_client(c);
	report_begin(NAME, a);
	report_throughput(a->count, elapsed);
	report_end(connect_ms, disconnect_ms);
}

static long acks_so_far(void)
{
	pthread_mutex_lock(&g.lock);
	long n = g.acks;
	pthread_mutex_unlock(&g.lock);
	return n;
}

/* The window from BENCH_WINDOW (mode pubw), or exit. */
static long window_from_env(void)
{
	const char *v = getenv("BENCH_WINDOW");
	char *end = NULL;
	long n = v ? strtol(v, &end, 10) : 0;
	if (v == NULL || *v == 0 || *end != 0 || n < 1 || n > 65535) {
		fprintf(stderr, "error: pubw needs BENCH_WINDOW (1-65535)\n");
		exit(1);
	}
	return n;
}

/* QoS 1/2 with up to BENCH_WINDOW messages unacknowledged: the library's
 * window is set to the same size (maxInflightMessages), and the program keeps
 * to it itself, waiting on the condition variable that deliveryComplete
 * signals. It must: when the window is full, Paho C 1.3.16's
 * MQTTClient_publishMessage does not return MQTTCLIENT_MAX_MESSAGES_INFLIGHT,
 * it waits in MQTTClient_yield, which sleeps 100 ms in callback mode.
 * deliveryComplete is called after the library has taken the message out of
 * its window, so an acknowledged message always leaves room. The time runs
 * until the last acknowledgement is in. */
static void do_publish_window(const struct args *a)
{
	long window = window_from_env();
	double connect_ms;
	if (a->qos == 0) {
		fprintf(stderr, "error: pubw is for QoS 1 and 2\n");
		exit(1);
	}
	MQTTClient c = connect_client(a, 1, window, &connect_ms);
	struct payload p;
	payload_init(&p, a->run, a->size);
	MQTTClient_message msg = MQTTClient_message_initializer;
	msg.payloadlen = (int)p.len;
	msg.qos = a->qos;
	int64_t t0 = now_ns();
	for (long seq = 0; seq < a->count; seq++) {
		MQTTClient_deliveryToken token = 0;
		/* Room for one more: at most window - 1 of seq published unacknowledged. */
		if (seq >= window && !wait_for(seq - window + 1, 0))
			die("no acknowledgement", 0);
		msg.payload = payload_fill(&p, seq);
		int rc;
		while ((rc = MQTTClient_publishMessage(c, a->topic, &msg, &token)) ==
		       MQTTCLIENT_MAX_MESSAGES_INFLIGHT) {
			/* Not expected (see above); if a library returns it, wait for
			 * the next acknowledgement and try again. */
			if (!wait_for(acks_so_far() + 1, 0))
				die("no acknowledgement", 0);
		}
		if (rc != MQTTCLIENT_SUCCESS)
			die("publishMessage", rc);
	}
	if (!wait_for(a->count, 0))
		die("no acknowledgement", 0);
	int64_t elapsed = now_ns() - t0;
	double disconnect_ms = close_client(c);
	report_begin(NAME, a);
	report_throughput(a->count, elapsed);
	report_end(connect_ms, disconnect_ms);
}

/* MQTT 5: the publish loop of do_publish through MQTTClient_publishMessage5,
 * with one user property ("k", "v") on every message when `user_property`. */
static void do_publish5(const struct args *a, int user_property)
{
	MQTTClient c;
	MQTTClient_createOptions create = MQTTClient_createOptions_initializer;
	MQTTClient_connectOptions opts = MQTTClient_connectOptions_initializer5;
	MQTTResponse resp;
	create.MQTTVersion = MQTTVERSION_5;
	int64_t t0 = now_ns();
	int rc = MQTTClient_createWithOptions(&c, a->uri, a->client_id, MQTTCLIENT_PERSISTENCE_NONE,
			NULL, &create);
	if (rc != MQTTCLIENT_SUCCESS)
		die("createWithOptions", rc);
	if ((rc = MQTTClient_setCallbacks(c, NULL, on_lost, on_message, on_delivered)) != MQTTCLIENT_SUCCESS)
		die("setCallbacks", rc);
	opts.keepAliveInterval = 30;
	opts.cleanstart = 1;
	resp = MQTTClient_connect5(c, &opts, NULL, NULL);
	rc = resp.reasonCode;
	MQTTResponse_free(resp);
	if (rc != MQTTCLIENT_SUCCESS)
		die("connect5", rc);
	double connect_ms = ms_between(t0, now_ns());
	struct payload p;
	payload_init(&p, a->run, a->size);
	MQTTClient_message msg = MQTTClient_message_initializer;
	msg.payloadlen = (int)p.len;
	msg.qos = a->qos;
	if (user_property) {
		MQTTProperty prop;
		prop.identifier = MQTTPROPERTY_CODE_USER_PROPERTY;
		prop.value.data.data = (char *)"k";
		prop.value.data.len = 1;
		prop.value.value.data = (char *)"v";
		prop.value.value.len = 1;
		if ((rc = MQTTProperties_add(&msg.properties, &prop)) != 0)
			die("MQTTProperties_add", rc);
	}
	t0 = now_ns();
	for (long seq = 0; seq < a->count; seq++) {
		MQTTClient_deliveryToken token = 0;
		msg.payload = payload_fill(&p, seq);
		resp = MQTTClient_publishMessage5(c, a->topic, &msg, &token);
		rc = resp.reasonCode;
		MQTTResponse_free(resp);
		if (rc != MQTTCLIENT_SUCCESS)
			die("publishMessage5", rc);
		if (a->qos > 0 && !wait_for(seq + 1, 0))
			die("no acknowledgement", 0);
	}
	int64_t elapsed = now_ns() - t0;
	MQTTProperties_free(&msg.properties);
	double disconnect_ms = close_client(c);
	report_begin(NAME, a);
	report_throughput(a->count, elapsed);
	report_end(connect_ms, disconnect_ms);
}

static long messages_seen(void)
{
	pthread_mutex_lock(&g.lock);
	long n = g.seen.distinct + g.seen.duplicates + g.seen.foreign;
	pthread_mutex_unlock(&g.lock);
	return n;
}

static void do_receive(const struct args *a)
{
	double connect_ms;
	seen_init(&g.seen, a->run, a->count);
	MQTTClient c = connect_client(a, 0, 0, &connect_ms);
	wait_for(0, a->count);
	if (strcmp(a->mode, "count") == 0) {
		/* The checker drains its session until 200 ms pass without a message,
		 * so nothing of this run is left for the next one. */
		long before;
		do {
			before = messages_seen();
			struct timespec ts = {0, 200 * 1000 * 1000};
			nanosleep(&ts, NULL);
		} while (messages_seen() != before);
	}
	double disconnect_ms = close_client(c);
	pthread_mutex_lock(&g.lock);
	report_begin(NAME, a);
	report_receive(&g.seen, g.first, g.last);
	pthread_mutex_unlock(&g.lock);
	report_end(connect_ms, disconnect_ms);
}

static void do_latency(const struct args *a)
{
	double connect_ms;
	struct payload p;
	seen_init(&g.seen, a->run, a->count);
	payload_init(&p, a->run, a->size);
	int64_t *samples = calloc((size_t)a->count + 1, sizeof *samples);
	long n = 0;
	MQTTClient c = connect_client(a, 1, 0, &connect_ms);
	int rc = MQTTClient_subscribe(c, a->topic, 1);
	if (rc != MQTTCLIENT_SUCCESS)
		die("subscribe", rc);
	MQTTClient_message msg = MQTTClient_message_initializer;
	msg.payloadlen = (int)p.len;
	msg.qos = 1;
	for (long seq = 0; seq < a->count; seq++) {
		MQTTClient_deliveryToken token = 0;
		int64_t t0 = now_ns();
		msg.payload = payload_fill(&p, seq);
		if ((rc = MQTTClient_publishMessage(c, a->topic, &msg, &token)) != MQTTCLIENT_SUCCESS)
			die("publishMessage", rc);
		/* Both the message back and its PUBACK (either may come first). */
		if (!wait_for(seq + 1, seq + 1))
			die("latency: no acknowledgement or message did not come back", 0);
		samples[n++] = g.last - t0;
	}
	double disconnect_ms = close_client(c);
	report_begin(NAME, a);
	report_latency(g.seen.distinct, samples, n);
	report_end(connect_ms, disconnect_ms);
}

/* Creates (or refreshes) a persistent session subscribed to TOPIC at QOS. */
static void do_prep(const struct args *a)
{
	double connect_ms;
	seen_init(&g.seen, a->run, 0);
	MQTTClient c = connect_client(a, 0, 0, &connect_ms);
	int rc = MQTTClient_subscribe(c, a->topic, a->qos);
	if (rc != MQTTCLIENT_SUCCESS)
		die("subscribe", rc);
	double disconnect_ms = close_client(c);
	report_begin(NAME, a);
	report_end(connect_ms, disconnect_ms);
}

/* Rounds of disconnect, then connect again, on one client. */
static void do_reconnect(const struct args *a)
{
	double connect_ms;
	struct rounds r;
	MQTTClient c = connect_client(a, 1, 0, &connect_ms);
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
	else if (strcmp(a.mode, "pubw") == 0)
		do_publish_window(&a);
	else if (strcmp(a.mode, "pub5") == 0 || strcmp(a.mode, "pub5u") == 0)
		do_publish5(&a, strcmp(a.mode, "pub5u") == 0);
	else if (strcmp(a.mode, "recv") == 0 || strcmp(a.mode, "count") == 0)
		do_receive(&a);
	else if (strcmp(a.mode, "lat") == 0)
		do_latency(&a);
	else if (strcmp(a.mode, "reconnect") == 0)
		do_reconnect(&a);
	else if (strcmp(a.mode, "prep") == 0)
		do_prep(&a);
	else {
		fprintf(stderr, "error: unknown mode %s\n", a.mode);
		return 1;
	}
	return 0;
}
