/*
 * Minimal publisher with Paho C, for the binary size and memory comparison:
 * connect, publish one QoS 1 message, wait for it, disconnect.
 * Usage: min_pub HOST PORT
 */
#include <stdio.h>

#include "MQTTClient.h"

int main(int argc, char **argv)
{
	char uri[256];
	MQTTClient c;
	MQTTClient_connectOptions opts = MQTTClient_connectOptions_initializer;
	MQTTClient_deliveryToken token;
	int rc;

	snprintf(uri, sizeof uri, "tcp://%s:%s", argc > 1 ? argv[1] : "127.0.0.1", argc > 2 ? argv[2] : "1883");
	if ((rc = MQTTClient_create(&c, uri, "min-c", MQTTCLIENT_PERSISTENCE_NONE, NULL)) != MQTTCLIENT_SUCCESS)
		return rc;
	if ((rc = MQTTClient_connect(c, &opts)) != MQTTCLIENT_SUCCESS)
		return rc;
	if ((rc = MQTTClient_publish(c, "bench/min", 5, "hello", 1, 0, &token)) != MQTTCLIENT_SUCCESS)
		return rc;
	if ((rc = MQTTClient_waitForCompletion(c, token, 10000)) != MQTTCLIENT_SUCCESS)
		return rc;
	rc = MQTTClient_disconnect(c, 1000);
	MQTTClient_destroy(&c);
	return rc;
}
