/* Input for bindgen: the public headers of the Paho MQTT C synchronous client.
 * MQTTClient.h pulls in MQTTProperties.h, MQTTReasonCodes.h, MQTTSubscribeOpts.h
 * and MQTTClientPersistence.h. */
#include <MQTTClient.h>
