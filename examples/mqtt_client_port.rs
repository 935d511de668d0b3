//! The Paho C tutorial's board demo `mqttClient.c`, ported line for line to read side
//! by side with it (the hardened daemon is `examples/mqtt_client`). The C values are the
//! defaults; `--broker` `--client-id` `--username` `--password` (or `MQTT_BROKER`, ...),
//! `--temp-path`, `--led-path` and `--interval` (the C `sleep(30)`) override them.
use std::{fs::File, io::Read, path::Path, process::ExitCode, time::Duration};

use paho_mqtt_sync::{
    Callbacks, Client, ConnectOptions, Error, Message, Persistence, QoS, WillOptions,
};

// C: #define BROKER_ADDRESS, CLIENTID, USERNAME, PASSWORD (the tutorial's placeholders)
const BROKER_ADDRESS: &str = "tcp://iot.ranye-iot.net:1883";
const CLIENTID: &str = "您的客户端 ID";
const USERNAME: &str = "您的用户名";
const PASSWORD: &str = "您的密码";
// C: #define WILL_TOPIC, LED_TOPIC, TEMP_TOPIC
const WILL_TOPIC: &str = "dt_mqtt/will";
const LED_TOPIC: &str = "dt_mqtt/led";
const TEMP_TOPIC: &str = "dt_mqtt/temperature";

/// C: `system("echo VALUE > FILE")`, without a shell; a failure is reported, then ignored.
fn echo(value: &str, file: &Path) {
    if let Err(e) = std::fs::write(file, format!("{value}\n")) {
        eprintln!("echo {value} > {}: {e}", file.display());
    }
}

/// C: `static int msgarrvd(...)`: LED commands on LED_TOPIC.
fn msgarrvd(led: &Path, topic_name: &str, message: &Message) -> bool {
    if topic_name == LED_TOPIC {
        // C strcmp()s a payload that has no NUL after it; compare the exact bytes.
        if message.payload() == b"2" {
            echo("heartbeat", &led.join("trigger")); // "2": heartbeat mode
        }
        if message.payload() == b"1" {
            echo("none", &led.join("trigger")); // "1": steady on
            echo("1", &led.join("brightness"));
        } else if message.payload() == b"0" {
            echo("none", &led.join("trigger")); // "0": off
            echo("0", &led.join("brightness"));
        } // anything else: ignored
    }
    // C: MQTTClient_freeMessage / MQTTClient_free: the crate frees both.
    true // C: return 1 (handled)
}

/// C: `static void connlost(...)`.
fn connlost(cause: Option<&str>) {
    println!("\nConnection lost");
    // C hands printf a NULL here (MQTT 3 gives no cause); glibc prints "(null)".
    println!(" cause: {}", cause.unwrap_or("(null)"));
}

/// C: `printf("Failed to ..., return code %d\n", rc); rc = EXIT_FAILURE;`
fn failed(what: &str, e: &Error) -> ExitCode {
    println!("Failed to {what}, return code {}", e.code());
    ExitCode::FAILURE
}

/// `--flag VALUE`, else the environment variable `env`, else `default`.
fn setting(flag: &str, env: Option<&str>, default: &str) -> String {
    let args: Vec<String> = std::env::args().collect();
    let arg = args.windows(2).find(|w| w[0] == flag).map(|w| w[1].clone());
    let env = env.and_then(|v| std::env::var(v).ok().filter(|v| !v.is_empty()));
    arg.or(env).unwrap_or_else(|| default.to_owned())
}

fn main() -> ExitCode {
    let temp_path = setting("--temp-path", None, "/sys/class/thermal/thermal_zone0/temp");
    let led = setting("--led-path", None, "/sys/class/leds/sys-led");
    let interval = setting("--interval", None, "30").parse().unwrap_or(30);
    // C: int rc; (every way out of the C program is a failure: the loop never ends)
    let mut rc;
    // C never calls MQTTClient_create (its `client` is uninitialized); create it here.
    let broker = setting("--broker", Some("MQTT_BROKER"), BROKER_ADDRESS);
    let client_id = setting("--client-id", Some("MQTT_CLIENT_ID"), CLIENTID);
    let client = match Client::create(&broker, &client_id, Persistence::None) {
        Ok(client) => client,
        Err(e) => return failed("create client", &e),
    };
    // C: the clean-up labels are the ends of these blocks; `break` is the `goto`.
    'destroy_exit: {
        // C: MQTTClient_setCallbacks(client, NULL, connlost, msgarrvd, NULL)
        let callbacks = Callbacks::new()
            .on_connection_lost(connlost)
            .on_message_arrived(move |t, m| msgarrvd(Path::new(&led), t, m));
        if let Err(e) = client.set_callbacks(callbacks) {
            rc = failed("set callbacks", &e);
            break 'destroy_exit;
        }
        // C: will_opts (topic, message, retained 1, QoS 0) and conn_opts.
        let will_opts = WillOptions::new(WILL_TOPIC, "Unexpected disconnection")
            .retained(true)
            .qos(QoS::AtMostOnce);
        let conn_opts = ConnectOptions::new()
            .will(will_opts)
            .keep_alive_interval(Duration::from_secs(30))
            .clean_session(false)
            .username(&setting("--username", Some("MQTT_USERNAME"), USERNAME))
            .password(setting("--password", Some("MQTT_PASSWORD"), PASSWORD));
        // C: MQTTClient_connect(client, &conn_opts)
        if let Err(e) = client.connect(&conn_opts) {
            rc = failed("connect", &e);
            break 'destroy_exit;
        }
        println!("MQTT server connected!"); // C prints this line in Chinese
        'disconnect_exit: {
            // C: publish "Online" (6 bytes, QoS 0, retained) to WILL_TOPIC
            let pubmsg = Message::new("Online", QoS::AtMostOnce, true);
            if let Err(e) = client.publish_message(WILL_TOPIC, &pubmsg) {
                rc = failed("publish message", &e);
                break 'disconnect_exit;
            }
            // C: MQTTClient_subscribe(client, LED_TOPIC, 0)
            if let Err(e) = client.subscribe(LED_TOPIC, QoS::AtMostOnce) {
                rc = failed("subscribe", &e);
                break 'disconnect_exit;
            }
            'unsubscribe_exit: {
                // C: for (;;) publish the SoC temperature, then sleep(30)
                loop {
                    // C: open/read/close, errors ignored (an empty message then).
                    let mut temp_str = [0u8; 10];
                    let n = File::open(&temp_path)
                        .and_then(|mut fd| fd.read(&mut temp_str))
                        .unwrap_or(0);
                    // C's strlen() runs off a full buffer; use read's byte count.
                    let tempmsg = Message::new(&temp_str[..n], QoS::AtMostOnce, true);
                    if let Err(e) = client.publish_message(TEMP_TOPIC, &tempmsg) {
                        rc = failed("publish message", &e);
                        break 'unsubscribe_exit;
                    }
                    std::thread::sleep(Duration::from_secs(interval));
                }
            }
            // C: unsubscribe_exit: C sets rc to each clean-up call's result, so it can end
            // with 0 after a failure (it does when the broker goes away); here it cannot.
            if let Err(e) = client.unsubscribe(LED_TOPIC) {
                rc = failed("unsubscribe", &e);
            }
        }
        // C: disconnect_exit: MQTTClient_disconnect(client, 10000)
        if let Err(e) = client.disconnect(Duration::from_secs(10)) {
            rc = failed("disconnect", &e);
        }
    }
    drop(client); // C: destroy_exit: MQTTClient_destroy(&client)
    rc
}
