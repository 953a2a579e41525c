// A service outside Herald scheduling a post through Kafka, with the Java client alone.
//
//   java -cp "<kafka-clients and its dependencies>/*" ScheduleProducer.java \
//        send   <client.properties> <bootstrap> <topic prefix> <tenant> <connection id> <platform>
//   java ... ScheduleProducer.java \
//        follow <client.properties> <bootstrap> <topic prefix> <job id> <seconds>
//
// `send` writes one `schedule` command to publish.schedule (key: the job id, acks=all with
// idempotence) and prints the job id. `follow` reads publish.status and publish.dlq with a
// consumer group of its own and prints every event of that job until it is final: a
// status PUBLISHED, DEAD_LETTERED or CANCELLED, or a dead letter (a refused command is one:
// reason invalid_message). Exit 0 then, 1 when nothing final came in time.
//
// <client.properties> holds the security settings (SASL_SSL, SCRAM, a PEM truststore); the
// same file works as HERALD_KAFKA_CONFIG_FILE for Herald's own services.

import java.io.FileReader;
import java.time.Duration;
import java.time.Instant;
import java.util.List;
import java.util.Properties;
import java.util.UUID;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.apache.kafka.clients.consumer.KafkaConsumer;
import org.apache.kafka.clients.producer.KafkaProducer;
import org.apache.kafka.clients.producer.ProducerRecord;
import org.apache.kafka.common.serialization.StringDeserializer;
import org.apache.kafka.common.serialization.StringSerializer;

public class ScheduleProducer {
    public static void main(String[] args) throws Exception {
        Properties props = new Properties();
        try (FileReader in = new FileReader(args[1])) {
            props.load(in);
        }
        props.put("bootstrap.servers", args[2]);
        String prefix = args[3];
        if (args[0].equals("send")) {
            System.out.println(send(props, prefix, args[4], args[5], args[6]));
        } else {
            System.exit(follow(props, prefix, args[4], Integer.parseInt(args[5])) ? 0 : 1);
        }
    }

    static String send(Properties props, String prefix, String tenant, String connection,
                       String platform) throws Exception {
        props.put("key.serializer", StringSerializer.class.getName());
        props.put("value.serializer", StringSerializer.class.getName());
        props.put("acks", "all");
        props.put("enable.idempotence", "true");
        String jobId = UUID.randomUUID().toString();
        String value = String.format(
            "{\"schema_version\":\"1.2\",\"command\":\"schedule\",\"job_id\":\"%s\","
                + "\"tenant_id\":\"%s\",\"idempotency_key\":\"schedule:%s\","
                + "\"trace_id\":\"%s\",\"platform\":\"%s\",\"connection_id\":\"%s\","
                + "\"media_asset_ids\":[\"https://cdn.example.com/java.jpg\"],"
                + "\"caption\":\"from Java\",\"scheduled_at\":\"%s\"}",
            jobId, tenant, jobId, UUID.randomUUID().toString().replace("-", ""), platform,
            connection, Instant.now().toString());
        try (KafkaProducer<String, String> producer = new KafkaProducer<>(props)) {
            // The key is the job id: one job's commands share a partition, so keep their order.
            producer.send(new ProducerRecord<>(prefix + "publish.schedule", jobId, value)).get();
        }
        return jobId;
    }

    static final Pattern STATUS = Pattern.compile("\"status\"\\s*:\\s*\"(\\w+)\"");
    static final Pattern REASON = Pattern.compile("\"reason\"\\s*:\\s*\"(\\w+)\"");

    static boolean follow(Properties props, String prefix, String jobId, int seconds) {
        props.put("key.deserializer", StringDeserializer.class.getName());
        props.put("value.deserializer", StringDeserializer.class.getName());
        props.put("group.id", "follow-" + jobId);
        props.put("auto.offset.reset", "earliest");
        String status = prefix + "publish.status", dlq = prefix + "publish.dlq";
        long deadline = System.currentTimeMillis() + seconds * 1000L;
        try (KafkaConsumer<String, String> consumer = new KafkaConsumer<>(props)) {
            consumer.subscribe(List.of(status, dlq));
            while (System.currentTimeMillis() < deadline) {
                for (ConsumerRecord<String, String> r : consumer.poll(Duration.ofMillis(500))) {
                    // Both topics are keyed by the job id; a status event may come twice.
                    if (!jobId.equals(r.key())) continue;
                    System.out.println(r.topic() + " " + r.value());
                    Matcher m = (r.topic().equals(dlq) ? REASON : STATUS).matcher(r.value());
                    if (r.topic().equals(dlq)
                            || (m.find() && List.of("PUBLISHED", "DEAD_LETTERED", "CANCELLED")
                                .contains(m.group(1)))) {
                        return true;
                    }
                }
            }
        }
        return false;
    }
}
