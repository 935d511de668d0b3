/* Prints the memory layout of every Paho C type the Rust bindings use, as the
 * C compiler for the target sees it: one line per fact,
 *
 *     sizeof   <type>            <bytes>
 *     alignof  <type>            <bytes>
 *     offsetof <type>.<field>    <bytes from the start of <type>>
 *
 * Nested anonymous structs/unions are named by their C access path
 * (`MQTTClient_connectOptions.returned`), their fields' offsets are counted
 * from the start of the outer struct. tests/layout.rs prints the same table
 * from the Rust bindings and compares the two; scripts/layout-check.sh builds
 * this file with the target's gcc and runs it (under qemu for ARM).
 *
 * Build: <target>-gcc -std=gnu11 -I<Paho C headers> layout.c -o layout
 */
#include <stddef.h>
#include <stdio.h>

#include <MQTTClient.h>

/* A named type: its size and alignment. */
#define TYPE(name, type)                                                        \
    printf("sizeof %s %zu\nalignof %s %zu\n", name, sizeof(type), name,         \
           (size_t)_Alignof(type))

/* A struct's field (dotted paths reach into nested anonymous members). */
#define FIELD(type, path)                                                       \
    printf("offsetof %s.%s %zu\n", #type, #path, offsetof(type, path))

/* The type of a struct member that has no name of its own. */
#define MEMBER_TYPE(type, path)                                                 \
    TYPE(#type "." #path, __typeof__(((type *)0)->path))

int main(void)
{
    printf("# Paho C layout, C compiler view: sizeof(void *) = %zu, "
           "sizeof(long) = %zu\n", sizeof(void *), sizeof(long));

    /* Scalars and handles. */
    TYPE("MQTTClient", MQTTClient);
    TYPE("MQTTClient_deliveryToken", MQTTClient_deliveryToken);
    TYPE("MQTTClient_token", MQTTClient_token);
    TYPE("MQTTPropertyCodes", enum MQTTPropertyCodes);
    TYPE("MQTTPropertyTypes", enum MQTTPropertyTypes);
    TYPE("MQTTReasonCodes", enum MQTTReasonCodes);
    TYPE("MQTTCLIENT_TRACE_LEVELS", enum MQTTCLIENT_TRACE_LEVELS);
    /* C declares the callbacks as function types; Rust sees pointers to them
     * (`Option<unsafe extern "C" fn ..>`). */
    TYPE("MQTTClient_traceCallback", MQTTClient_traceCallback *);
    TYPE("MQTTClient_messageArrived", MQTTClient_messageArrived *);

    /* MQTTProperties.h */
    TYPE("MQTTLenString", MQTTLenString);
    FIELD(MQTTLenString, len);
    FIELD(MQTTLenString, data);

    TYPE("MQTTProperty", MQTTProperty);
    FIELD(MQTTProperty, identifier);
    FIELD(MQTTProperty, value);
    MEMBER_TYPE(MQTTProperty, value);
    FIELD(MQTTProperty, value.byte);
    FIELD(MQTTProperty, value.integer2);
    FIELD(MQTTProperty, value.integer4);
    FIELD(MQTTProperty, value.data);
    FIELD(MQTTProperty, value.value);

    TYPE("MQTTProperties", MQTTProperties);
    FIELD(MQTTProperties, count);
    FIELD(MQTTProperties, max_count);
    FIELD(MQTTProperties, length);
    FIELD(MQTTProperties, array);

    /* MQTTSubscribeOpts.h */
    TYPE("MQTTSubscribe_options", MQTTSubscribe_options);
    FIELD(MQTTSubscribe_options, struct_id);
    FIELD(MQTTSubscribe_options, struct_version);
    FIELD(MQTTSubscribe_options, noLocal);
    FIELD(MQTTSubscribe_options, retainAsPublished);
    FIELD(MQTTSubscribe_options, retainHandling);

    /* MQTTClientPersistence.h */
    TYPE("MQTTClient_persistence", MQTTClient_persistence);
    FIELD(MQTTClient_persistence, context);
    FIELD(MQTTClient_persistence, popen);
    FIELD(MQTTClient_persistence, pclose);
    FIELD(MQTTClient_persistence, pput);
    FIELD(MQTTClient_persistence, pget);
    FIELD(MQTTClient_persistence, premove);
    FIELD(MQTTClient_persistence, pkeys);
    FIELD(MQTTClient_persistence, pclear);
    FIELD(MQTTClient_persistence, pcontainskey);

    /* MQTTClient.h */
    TYPE("MQTTClient_init_options", MQTTClient_init_options);
    FIELD(MQTTClient_init_options, struct_id);
    FIELD(MQTTClient_init_options, struct_version);
    FIELD(MQTTClient_init_options, do_openssl_init);

    TYPE("MQTTClient_message", MQTTClient_message);
    FIELD(MQTTClient_message, struct_id);
    FIELD(MQTTClient_message, struct_version);
    FIELD(MQTTClient_message, payloadlen);
    FIELD(MQTTClient_message, payload);
    FIELD(MQTTClient_message, qos);
    FIELD(MQTTClient_message, retained);
    FIELD(MQTTClient_message, dup);
    FIELD(MQTTClient_message, msgid);
    FIELD(MQTTClient_message, properties);

    TYPE("MQTTClient_createOptions", MQTTClient_createOptions);
    FIELD(MQTTClient_createOptions, struct_id);
    FIELD(MQTTClient_createOptions, struct_version);
    FIELD(MQTTClient_createOptions, MQTTVersion);

    TYPE("MQTTClient_willOptions", MQTTClient_willOptions);
    FIELD(MQTTClient_willOptions, struct_id);
    FIELD(MQTTClient_willOptions, struct_version);
    FIELD(MQTTClient_willOptions, topicName);
    FIELD(MQTTClient_willOptions, message);
    FIELD(MQTTClient_willOptions, retained);
    FIELD(MQTTClient_willOptions, qos);
    FIELD(MQTTClient_willOptions, payload);
    MEMBER_TYPE(MQTTClient_willOptions, payload);
    FIELD(MQTTClient_willOptions, payload.len);
    FIELD(MQTTClient_willOptions, payload.data);

    TYPE("MQTTClient_SSLOptions", MQTTClient_SSLOptions);
    FIELD(MQTTClient_SSLOptions, struct_id);
    FIELD(MQTTClient_SSLOptions, struct_version);
    FIELD(MQTTClient_SSLOptions, trustStore);
    FIELD(MQTTClient_SSLOptions, keyStore);
    FIELD(MQTTClient_SSLOptions, privateKey);
    FIELD(MQTTClient_SSLOptions, privateKeyPassword);
    FIELD(MQTTClient_SSLOptions, enabledCipherSuites);
    FIELD(MQTTClient_SSLOptions, enableServerCertAuth);
    FIELD(MQTTClient_SSLOptions, sslVersion);
    FIELD(MQTTClient_SSLOptions, verify);
    FIELD(MQTTClient_SSLOptions, CApath);
    FIELD(MQTTClient_SSLOptions, ssl_error_cb);
    FIELD(MQTTClient_SSLOptions, ssl_error_context);
    FIELD(MQTTClient_SSLOptions, ssl_psk_cb);
    FIELD(MQTTClient_SSLOptions, ssl_psk_context);
    FIELD(MQTTClient_SSLOptions, disableDefaultTrustStore);
    FIELD(MQTTClient_SSLOptions, protos);
    FIELD(MQTTClient_SSLOptions, protos_len);

    TYPE("MQTTClient_nameValue", MQTTClient_nameValue);
    FIELD(MQTTClient_nameValue, name);
    FIELD(MQTTClient_nameValue, value);

    TYPE("MQTTClient_connectOptions", MQTTClient_connectOptions);
    FIELD(MQTTClient_connectOptions, struct_id);
    FIELD(MQTTClient_connectOptions, struct_version);
    FIELD(MQTTClient_connectOptions, keepAliveInterval);
    FIELD(MQTTClient_connectOptions, cleansession);
    FIELD(MQTTClient_connectOptions, reliable);
    FIELD(MQTTClient_connectOptions, will);
    FIELD(MQTTClient_connectOptions, username);
    FIELD(MQTTClient_connectOptions, password);
    FIELD(MQTTClient_connectOptions, connectTimeout);
    FIELD(MQTTClient_connectOptions, retryInterval);
    FIELD(MQTTClient_connectOptions, ssl);
    FIELD(MQTTClient_connectOptions, serverURIcount);
    FIELD(MQTTClient_connectOptions, serverURIs);
    FIELD(MQTTClient_connectOptions, MQTTVersion);
    FIELD(MQTTClient_connectOptions, returned);
    MEMBER_TYPE(MQTTClient_connectOptions, returned);
    FIELD(MQTTClient_connectOptions, returned.serverURI);
    FIELD(MQTTClient_connectOptions, returned.MQTTVersion);
    FIELD(MQTTClient_connectOptions, returned.sessionPresent);
    FIELD(MQTTClient_connectOptions, binarypwd);
    MEMBER_TYPE(MQTTClient_connectOptions, binarypwd);
    FIELD(MQTTClient_connectOptions, binarypwd.len);
    FIELD(MQTTClient_connectOptions, binarypwd.data);
    FIELD(MQTTClient_connectOptions, maxInflightMessages);
    FIELD(MQTTClient_connectOptions, cleanstart);
    FIELD(MQTTClient_connectOptions, httpHeaders);
    FIELD(MQTTClient_connectOptions, httpProxy);
    FIELD(MQTTClient_connectOptions, httpsProxy);

    TYPE("MQTTResponse", MQTTResponse);
    FIELD(MQTTResponse, version);
    FIELD(MQTTResponse, reasonCode);
    FIELD(MQTTResponse, reasonCodeCount);
    FIELD(MQTTResponse, reasonCodes);
    FIELD(MQTTResponse, properties);

    return fflush(stdout) == 0 ? 0 : 1;
}
